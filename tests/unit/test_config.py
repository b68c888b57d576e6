from pathlib import Path

import pydantic
import pytest
import yaml  # type: ignore[import-untyped]

from originguard import config_reference
from originguard.config import Config, ConfigError, ListenAddress, dump, host_port, load, loads

MINIMAL = """\
zones:
  - name: shop
    hostnames: [shop.example.com]
    pools:
      - name: main
        origins:
          - address: "10.0.0.1:8080"
"""

TOKEN = "s3cret-token-0123456789"


def errors_of(text: str, source: str = "edge.yaml", env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loads(text, source, env=env or {})
    return caught.value.messages


def zone(name: str, *hostnames: str) -> str:
    hosts = ", ".join(f'"{h}"' for h in hostnames)
    return (
        f"  - name: {name}\n"
        f"    hostnames: [{hosts}]\n"
        f"    pools: [{{name: p, origins: [{{address: 'o.internal:80'}}]}}]\n"
    )


def test_defaults_fill_in_everything_but_zones() -> None:
    config = loads(MINIMAL, env={})

    assert config.listen == (ListenAddress("127.0.0.1", 8080),)
    assert str(config.admin.listen) == "127.0.0.1:9090"
    assert config.admin.token is None
    assert config.trusted_proxies == ()
    assert config.node_id == "og1"
    assert config.limits.max_head_size == 32 * 1024
    assert config.limits.max_header_count == 100
    assert config.limits.max_url_size == 16 * 1024
    assert config.limits.max_body_size == 100 * 1024 * 1024
    assert config.limits.head_timeout == 30.0
    assert config.limits.keepalive_timeout == 400.0
    assert config.access_log.enabled is True
    assert config.access_log.path == "-"
    shop = config.zones[0]
    assert shop.host_header is None
    assert shop.failover_codes == (521, 522, 523)
    assert shop.timeouts.connect == 19.0
    assert shop.timeouts.response_head == 120.0
    assert shop.timeouts.idle == 60.0
    pool = shop.pools[0]
    assert (pool.enabled, pool.steering, pool.max_idle_connections) == (True, "random", 32)
    origin = pool.origins[0]
    assert (origin.host, origin.port, origin.weight, origin.enabled) == (
        "10.0.0.1",
        8080,
        1.0,
        True,
    )


def test_unknown_key_error_names_file_line_path_and_the_keys_that_exist() -> None:
    text = MINIMAL + "limits:\n  max_body_size: 10MB\n  max_bodysize: 10MB\n"

    assert errors_of(text) == [
        "edge.yaml:10: limits.max_bodysize: unknown key (expected one of: max_head_size, "
        "max_header_count, max_url_size, max_body_size, head_timeout, body_timeout, "
        "send_timeout, keepalive_timeout, drain_timeout, max_connections)"
    ]


def test_wrong_type_in_a_nested_list_reports_the_line_of_that_item() -> None:
    text = MINIMAL + "          - address: '10.0.0.2:8080'\n            weight: 2\n"

    assert errors_of(text) == [
        "edge.yaml:9: zones.0.pools.0.origins.1.weight: Input should be less than or equal to 1"
    ]


def test_every_problem_is_reported_in_line_order() -> None:
    text = "node_id: Bad!\nlimits:\n  head_timeout: soon\n" + MINIMAL.replace("10.0.0.1:8080", "x")

    messages = errors_of(text)

    assert [m.split(": ")[0:2] for m in messages] == [
        ["edge.yaml:1", "node_id"],
        ["edge.yaml:3", "limits.head_timeout"],
        ["edge.yaml:10", "zones.0.pools.0.origins.0.address"],
    ]
    assert "invalid duration 'soon'" in messages[1]
    assert "has no port" in messages[2]


def test_missing_field_is_reported_at_the_line_of_its_parent_mapping() -> None:
    text = "zones:\n  - name: shop\n    hostnames: [a.example.com]\n"

    assert errors_of(text) == ["edge.yaml:2: zones.0.pools: Field required"]


def test_missing_zones_is_reported_at_the_top_of_the_file() -> None:
    assert errors_of("node_id: og2\n") == ["edge.yaml:1: zones: Field required"]


def test_yaml_syntax_error_becomes_file_line_message() -> None:
    [message] = errors_of("zones:\n  - name: [unclosed\n")

    assert message.startswith("edge.yaml:3: ")


def test_duplicate_yaml_key_is_an_error_not_a_silent_override() -> None:
    assert errors_of(MINIMAL + "node_id: a\nnode_id: b\n") == [
        "edge.yaml:9: node_id: duplicate key"
    ]


def test_top_level_must_be_a_mapping() -> None:
    assert errors_of("- zones\n") == ["edge.yaml:1: the top level must be a mapping of sections"]


def test_env_variables_are_substituted_in_any_string() -> None:
    text = MINIMAL.replace("10.0.0.1:8080", "${ORIGIN_HOST}:${ORIGIN_PORT:-80}") + (
        "node_id: ${NODE}\nlimits:\n  max_header_count: ${HEADERS}\n"
    )

    config = loads(text, env={"ORIGIN_HOST": "app.internal", "NODE": "fra1", "HEADERS": "50"})

    assert config.zones[0].pools[0].origins[0].address == "app.internal:80"
    assert config.node_id == "fra1"
    assert config.limits.max_header_count == 50


def test_env_default_also_covers_a_variable_set_to_empty() -> None:
    config = loads(MINIMAL + "node_id: ${NODE:-og9}\n", env={"NODE": ""})

    assert config.node_id == "og9"


def test_double_dollar_brace_is_a_literal_reference() -> None:
    config = loads(MINIMAL + "access_log:\n  path: /var/log/$${NOT_A_VAR}.log\n", env={})

    assert config.access_log.path == "/var/log/${NOT_A_VAR}.log"


def test_missing_env_variable_is_an_error_naming_file_and_line() -> None:
    text = MINIMAL + "admin:\n  listen: 0.0.0.0:9090\n  token: ${OG_ADMIN_TOKEN}\n"

    assert errors_of(text) == [
        "edge.yaml:10: admin.token: environment variable OG_ADMIN_TOKEN is not set"
    ]


def test_malformed_env_reference_is_an_error() -> None:
    [message] = errors_of(MINIMAL + "node_id: ${NODE\n")

    assert message.startswith("edge.yaml:8: node_id: malformed '${NODE'")


def test_env_value_is_not_itself_substituted_again() -> None:
    config = loads(MINIMAL + "access_log:\n  path: ${P}\n", env={"P": "${HOME}"})

    assert config.access_log.path == "${HOME}"


def test_admin_token_is_required_when_admin_listens_beyond_loopback() -> None:
    assert errors_of(MINIMAL + "admin:\n  listen: 0.0.0.0:9090\n") == [
        "edge.yaml:8: admin.token: required because listen '0.0.0.0:9090' is reachable "
        "beyond this host"
    ]


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:9090", "127.0.0.2:9090", "[::1]:9090", "localhost:9"]
)
def test_admin_token_is_optional_on_loopback(listen: str) -> None:
    config = loads(MINIMAL + f'admin:\n  listen: "{listen}"\n', env={})

    assert config.admin.token is None


def test_admin_token_from_the_environment_satisfies_the_requirement() -> None:
    text = MINIMAL + "admin:\n  listen: 0.0.0.0:9090\n  token: ${OG_ADMIN_TOKEN}\n"

    config = loads(text, env={"OG_ADMIN_TOKEN": TOKEN})

    assert config.admin.token is not None
    assert config.admin.token.get_secret_value() == TOKEN


def test_admin_token_must_not_be_trivially_short() -> None:
    assert errors_of(MINIMAL + "admin:\n  token: short\n") == [
        "edge.yaml:9: admin.token: must be at least 16 characters long"
    ]


def test_hostname_in_two_zones_is_reported_at_the_second_one() -> None:
    text = (
        "zones:\n" + zone("a", "www.example.com") + zone("b", "api.example.com", "WWW.example.com")
    )

    assert errors_of(text) == [
        "edge.yaml:6: zones.1.hostnames.1: hostname 'www.example.com' already belongs to zone 'a'"
    ]


def test_zone_names_are_unique() -> None:
    text = "zones:\n" + zone("a", "a.example.com") + zone("a", "b.example.com")

    assert errors_of(text) == ["edge.yaml:5: zones.1.name: zone 'a' is defined twice"]


def test_pool_names_are_unique_within_a_zone() -> None:
    text = MINIMAL + "      - name: main\n        origins: [{address: 'b:80'}]\n"

    assert errors_of(text) == ["edge.yaml:8: zones.0.pools.1.name: pool 'main' is defined twice"]


def test_the_same_origin_twice_in_a_pool_is_an_error() -> None:
    text = MINIMAL + "          - address: '10.0.0.1:8080'\n"

    assert errors_of(text) == [
        "edge.yaml:8: zones.0.pools.0.origins.1.address: origin '10.0.0.1:8080' is listed twice"
    ]


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("*.Example.COM", "*.example.com"),
        ("*.example.com", "*.example.com"),
        ("www.example.com.", "www.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_hostnames_are_lower_cased_and_may_have_a_leading_wildcard(
    written: str, stored: str
) -> None:
    config = loads("zones:\n" + zone("a", written), env={})

    assert config.zones[0].hostnames == (stored,)


@pytest.mark.parametrize(
    "hostname",
    [
        "a.*.example.com",
        "*",
        "*example.com",
        "**.example.com",
        "www.*",
        "*.",
        "10.0.0.1",
        "[::1]",
        "example.com:443",
        "-bad.example.com",
        "bad_.example.com",
        "b\u00fccher.example",
        "a..example.com",
        "1.2.3",
    ],
)
def test_hostnames_must_be_dns_names_with_at_most_a_leading_wildcard_label(hostname: str) -> None:
    [message] = errors_of("zones:\n" + zone("a", hostname))

    assert message.startswith("edge.yaml:3: zones.0.hostnames.0: ")


def test_a_hostname_written_as_a_url_is_told_to_drop_scheme_and_path() -> None:
    [message] = errors_of("zones:\n" + zone("a", "https://www.example.com/shop"))

    assert message.endswith("without scheme or path: 'www.example.com'")


def test_failover_codes_must_be_connect_failure_codes() -> None:
    [message] = errors_of(
        MINIMAL.replace("    pools:", "    failover_codes: [522, 524]\n    pools:")
    )

    assert message.startswith("edge.yaml:4: zones.0.failover_codes.1: Input should be 521")


def test_ipv6_listen_addresses_are_bracketed_host_port() -> None:
    config = loads(MINIMAL + 'listen: ["[::1]:8080", "0.0.0.0:80", "[2001:DB8::1]:443"]\n', env={})

    assert [(a.host, a.port) for a in config.listen] == [
        ("::1", 8080),
        ("0.0.0.0", 80),
        ("2001:db8::1", 443),
    ]
    assert [str(a) for a in config.listen] == ["[::1]:8080", "0.0.0.0:80", "[2001:db8::1]:443"]


def test_addresses_print_an_ipv6_host_in_brackets() -> None:
    assert [host_port(a) for a in [("::", 80), ("127.0.0.1", 80)]] == ["[::]:80", "127.0.0.1:80"]


def test_a_single_listen_string_is_a_list_of_one() -> None:
    config = loads(MINIMAL + 'listen: "[::]:8443"\n', env={})

    assert config.listen == (ListenAddress("::", 8443),)


@pytest.mark.parametrize("listen", ["::1:8080", "[::1]", "[::1]8080", "[zz::1]:80", "127.0.0.1"])
def test_malformed_listen_addresses_are_rejected(listen: str) -> None:
    [message] = errors_of(MINIMAL + f'listen: "{listen}"\n')

    assert message.startswith("edge.yaml:8: listen.0: ")


@pytest.mark.parametrize("listen", ["8080", '":8080"'])
def test_a_bare_port_is_told_which_addresses_to_write(listen: str) -> None:
    [message] = errors_of(MINIMAL + f"listen: {listen}\n")

    assert message == (
        "edge.yaml:8: listen.0: give the address too: '0.0.0.0:8080' (every IPv4 address), "
        "'[::]:8080' (IPv6) or '127.0.0.1:8080' (this machine only)"
    )


def test_an_origin_written_as_a_url_is_told_to_drop_the_scheme() -> None:
    [message] = errors_of(MINIMAL.replace("10.0.0.1:8080", "http://10.0.0.1:8080/"))

    assert message.endswith("without scheme or path: '10.0.0.1:8080'")


def test_origin_address_is_parsed_into_host_and_port() -> None:
    text = (
        MINIMAL + "          - address: '[2001:db8::7]:443'\n          - address: App.Internal:81\n"
    )

    origins = loads(text, env={}).zones[0].pools[0].origins

    assert [(o.address, o.host, o.port) for o in origins] == [
        ("10.0.0.1:8080", "10.0.0.1", 8080),
        ("[2001:db8::7]:443", "2001:db8::7", 443),
        ("app.internal:81", "app.internal", 81),
    ]


@pytest.mark.parametrize(
    "address", ["app.internal", "app:0", "app:65536", "app:+80", "app:8\u0660"]
)
def test_origin_address_needs_a_port_from_1_to_65535(address: str) -> None:
    [message] = errors_of(MINIMAL.replace("10.0.0.1:8080", address))

    assert message.startswith("edge.yaml:7: zones.0.pools.0.origins.0.address: ")


def test_loaded_config_cannot_be_changed() -> None:
    config = loads(MINIMAL, env={})

    with pytest.raises(pydantic.ValidationError):
        config.node_id = "other"


def test_dump_shows_defaults_in_readable_units_and_redacts_the_token() -> None:
    text = MINIMAL + f"admin:\n  listen: 0.0.0.0:9090\n  token: {TOKEN}\n"

    printed = dump(loads(text, env={}))

    assert TOKEN not in printed
    data = yaml.safe_load(printed)
    assert data["admin"] == {"listen": "0.0.0.0:9090", "token": "***"}
    assert data["limits"]["max_head_size"] == "32KB"
    assert data["limits"]["max_body_size"] == "100MB"
    assert data["limits"]["head_timeout"] == "30s"
    assert data["zones"][0]["timeouts"]["connect"] == "19s"
    assert data["listen"] == ["127.0.0.1:8080"]


def test_dumped_config_loads_back_to_the_same_config() -> None:
    config = loads(MINIMAL + 'trusted_proxies: ["10.0.0.0/8", "2001:db8::/32"]\n', env={})

    assert loads(dump(config), env={}) == config


def test_load_names_the_file_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(MINIMAL + "bogus: 1\n")

    with pytest.raises(ConfigError) as caught:
        load(path, env={})

    assert caught.value.messages[0].startswith(f"{path}:8: bogus: unknown key")


def test_load_of_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load(tmp_path / "absent.yaml")


def test_config_can_be_built_in_code_with_the_same_validation() -> None:
    config = Config.model_validate(
        {
            "zones": [
                {
                    "name": "a",
                    "hostnames": ["A.test"],
                    "pools": [{"name": "p", "origins": [{"address": "[::1]:9000"}]}],
                }
            ]
        }
    )

    assert config.zones[0].hostnames == ("a.test",)
    assert config.zones[0].pools[0].origins[0].host == "::1"


def test_reference_example_is_a_valid_config() -> None:
    config = loads(config_reference.EXAMPLE, env={"OG_ADMIN_TOKEN": TOKEN})

    assert config.zones[0].pools[0].steering == "round_robin"


def test_docs_config_md_matches_the_models() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "config.md"

    assert path.read_text(encoding="utf-8") == config_reference.render(), (
        "docs/config.md is stale; regenerate it with: "
        ".venv/bin/python -m originguard.config_reference > docs/config.md"
    )
