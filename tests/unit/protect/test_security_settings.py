"""The `security:` section at load: a bad rule is reported with its name, the expression and a
caret; ranges, periods, timeouts and sizes are checked against the spec."""

from __future__ import annotations

import pytest
from exchanges import security_yaml

from originguard.config import ConfigError, loads


def errors(security: str, lists: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        loads(security_yaml(security), "edge.yaml") if not lists else loads(
            security_yaml(security, lists), "edge.yaml"
        )
    return "\n".join(caught.value.messages)


def test_a_syntax_error_names_the_rule_and_points_at_the_position() -> None:
    message = errors(
        "rules:\n"
        "  - name: ok\n"
        "    expression: 'http.host eq \"a\"'\n"
        "    action: log\n"
        "  - name: broken\n"
        "    expression: 'http.request.uri.path contians \"/x\"'\n"
        "    action: block\n"
    )
    first, code, caret = message.split("\n")
    assert first.startswith('edge.yaml:13: zones.0.security.rules.1.expression: rule "broken":')
    assert code == '1 | http.request.uri.path contians "/x"'
    assert caret.index("^") == code.index("contians")


def test_an_unknown_list_and_an_unknown_field_are_errors() -> None:
    assert "unknown list $office" in errors(
        "rules:\n  - {name: r, expression: 'ip.src in $office', action: block}\n"
    )
    assert 'rule "r"' in errors(
        "rules:\n  - {name: r, expression: 'http.nope eq \"x\"', action: block}\n"
    )


def test_named_lists_come_from_the_top_level() -> None:
    config = loads(
        security_yaml(
            "rules:\n  - {name: r, expression: 'ip.src in $office', action: block}\n",
            "lists:\n  office: [192.0.2.0/24, 2001:db8::/32]\n",
        )
    )
    assert config.lists["office"] == ("192.0.2.0/24", "2001:db8::/32")


def test_response_fields_are_only_for_counting_expressions() -> None:
    assert "rate_limits.0.expression" in errors(
        "rate_limits:\n  - {name: r, expression: 'http.response.code eq 401', period: 10s,"
        " requests_per_period: 1}\n"
    )
    loads(
        security_yaml(
            "rate_limits:\n  - {name: r, expression: 'ssl or not ssl', period: 10s,"
            " requests_per_period: 1, counting_expression: 'http.response.code eq 401'}\n"
        )
    )


def test_a_bad_counting_expression_is_reported_at_its_own_key() -> None:
    assert "rate_limits.0.counting_expression" in errors(
        "rate_limits:\n  - {name: r, expression: 'ssl', period: 10s,"
        " requests_per_period: 1, counting_expression: 'http.response.code eq'}\n"
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("period: 7s", "period: must be one of 10s"),
        ("period: 2h", "period: must be one of"),
        ("period: 10s, mitigation_timeout: 30s", "mitigation_timeout: must be 0"),
        ("period: 10s, characteristics: [ip.src, ip.src]", "listed twice"),
        ("period: 10s, characteristics: ['http.request.headers[\"X-Key\"]']", "lower-case"),
        ("period: 10s, characteristics: [ja5]", "is not a characteristic"),
        ("period: 10s, action: log, response: {status: 429}", "only be given with action: block"),
    ],
)
def test_rate_limit_values_outside_the_spec_are_refused(rule: str, expected: str) -> None:
    message = errors(
        f"rate_limits:\n  - {{name: r, expression: 'ssl', requests_per_period: 1, {rule}}}\n"
    )
    assert expected in message


def test_block_responses_are_4xx_and_at_most_2kb() -> None:
    assert "less than or equal to 499" in errors(
        "rules:\n  - {name: r, expression: 'ssl', action: block, response: {status: 503}}\n"
    )
    body = "x" * 2049
    assert "at most 2 KB" in errors(
        f"rules:\n  - {{name: r, expression: 'ssl', action: block, response: {{body: {body}}}}}\n"
    )


def test_skip_defaults_to_the_remaining_rules_and_needs_action_skip() -> None:
    config = loads(security_yaml("rules:\n  - {name: r, expression: 'ssl', action: skip}\n"))
    assert config.zones[0].security.rules[0].skip == ("remaining_rules",)
    assert "only meaningful with action: skip" in errors(
        "rules:\n  - {name: r, expression: 'ssl', action: log, skip: [rate_limits]}\n"
    )


def test_rule_names_are_unique_per_kind() -> None:
    assert "defined twice" in errors(
        "rules:\n  - {name: r, expression: 'ssl', action: log}\n"
        "  - {name: r, expression: 'ssl', action: log}\n"
    )


def test_a_short_challenge_secret_is_refused() -> None:
    assert "at least 16" in errors("challenge: {secret: short}\n")


def test_managed_challenge_is_accepted_everywhere_and_read_as_js_challenge() -> None:
    config = loads(
        security_yaml(
            "ip_access:\n"
            "  - {target: ip, value: 192.0.2.1, mode: managed_challenge}\n"
            "rules:\n"
            "  - {name: pasted, expression: 'http.host eq \"a\"', action: managed_challenge}\n"
            "rate_limits:\n"
            "  - name: pasted limit\n"
            "    expression: 'http.host eq \"a\"'\n"
            "    period: 60s\n"
            "    requests_per_period: 5\n"
            "    action: managed_challenge\n"
        )
    )
    security = config.zones[0].security
    assert security.ip_access[0].mode == "js_challenge"
    assert security.rules[0].action == "js_challenge"
    assert security.rate_limits[0].action == "js_challenge"


@pytest.mark.parametrize(
    ("target", "value", "database"),
    [("country", "XX", "country_database"), ("asn", "AS13335", "asn_database")],
)
def test_a_country_or_asn_rule_without_its_geoip_database_is_an_error(
    target: str, value: str, database: str
) -> None:
    message = errors(f"ip_access:\n  - {{target: {target}, value: {value}, mode: block}}\n")
    assert "zones.0.security.ip_access.0.target:" in message
    assert f"needs geoip.{database}" in message
