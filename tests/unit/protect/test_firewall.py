"""Custom rules through the filters (spec §7.2): first terminating match wins, every match is
an event, skip and log do not terminate."""

from __future__ import annotations

import json
import logging

import pytest
from exchanges import Clock, build, event_count, finish, guard, make_exchange, run

from originguard.protect.firewall import CompiledRule, first_terminating
from originguard.protect.rules import RequestView

RULES = """
rules:
  - name: trusted monitor
    expression: 'http.user_agent contains "monitor"'
    action: skip
    skip: [remaining_rules, rate_limits]
  - name: watch api
    expression: 'starts_with(http.request.uri.path, "/api")'
    action: log
  - name: no admin
    expression: 'http.request.uri.path contains "/admin" and not ip.src in $office'
    action: block
  - name: teapot
    expression: 'http.request.uri.path eq "/tea"'
    action: block
    response: {status: 418, content_type: application/json, body: '{"tea": false}'}
  - name: api block
    expression: 'http.request.uri.path eq "/api/secret"'
    action: block
"""
LISTS = "lists:\n  office: [192.0.2.0/24]\n"


def test_block_answers_403_access_denied_page_and_counts_the_match() -> None:
    security, metrics = build(RULES, Clock(), LISTS)
    ex = make_exchange("/admin/users")
    answer = run(guard(security, ex))
    assert answer.status == 403
    assert b"1020" in answer.body and b"Access denied" in answer.body
    assert (b"cache-control", b"no-store") in answer.headers
    assert event_count(metrics, "custom", "no admin", "block") == 1
    assert ex.reason == "custom rule 'no admin': block"


def test_block_with_a_list_exception_lets_the_office_through() -> None:
    security, _ = build(RULES, Clock(), LISTS)
    assert run(guard(security, make_exchange("/admin", client_ip="192.0.2.44"))) is None


def test_custom_block_response_has_its_status_type_and_body() -> None:
    security, _ = build(RULES, Clock(), LISTS)
    answer = run(guard(security, make_exchange("/tea")))
    assert answer.status == 418
    assert (b"content-type", b"application/json") in answer.headers
    assert answer.body == b'{"tea": false}'


def test_api_clients_get_the_block_as_json() -> None:
    security, _ = build(RULES, Clock(), LISTS)
    ex = make_exchange("/admin", headers=[(b"accept", b"application/json")])
    answer = run(guard(security, ex))
    document = json.loads(answer.body)
    assert document["error_code"] == 1020 and document["ray_id"] == ex.ray


def test_log_counts_and_goes_on_to_the_next_rule() -> None:
    security, metrics = build(RULES, Clock(), LISTS)
    assert run(guard(security, make_exchange("/api/open"))) is None
    answer = run(guard(security, make_exchange("/api/secret")))
    assert answer.status == 403
    assert event_count(metrics, "custom", "watch api", "log") == 2
    assert event_count(metrics, "custom", "api block", "block") == 1


def test_skip_remaining_rules_stops_the_phase_and_is_logged() -> None:
    security, metrics = build(RULES, Clock(), LISTS)
    ex = make_exchange("/admin", headers=[(b"user-agent", b"uptime-monitor/1.0")])
    assert run(guard(security, ex)) is None
    assert event_count(metrics, "custom", "trusted monitor", "skip") == 1
    assert event_count(metrics, "custom", "no admin", "block") == 0


def test_every_match_is_logged_as_a_json_security_event(caplog: pytest.LogCaptureFixture) -> None:
    security, _ = build(RULES, Clock(), LISTS)
    ex = make_exchange("/admin", query="x=1")
    with caplog.at_level(logging.INFO, logger="originguard.security"):
        run(guard(security, ex))
    event = json.loads(caplog.records[-1].getMessage())
    assert event["rule"] == "no admin" and event["action"] == "block"
    assert event["ray"] == ex.ray and event["client_ip"] == "203.0.113.7"
    assert event["path"] == "/admin?x=1" and event["phase"] == "custom"


def test_verdicts_are_forgotten_when_the_exchange_completes() -> None:
    security, _ = build(RULES, Clock(), LISTS)
    ex = make_exchange("/fine")
    run(guard(security, ex))
    verdicts = security.observers[0]
    assert len(verdicts) == 1  # type: ignore[arg-type]
    finish(security, ex, 200)
    assert len(verdicts) == 0  # type: ignore[arg-type]


def test_disabled_rules_do_not_run() -> None:
    security, _ = build(
        "rules:\n  - {name: disabled, expression: 'http.host eq \"site.test\"', action: block,"
        " enabled: false}\n",
        Clock(),
    )
    assert run(guard(security, make_exchange("/"))) is None


def test_challenge_rule_answers_the_page_then_lets_a_cleared_visitor_reach_later_rules() -> None:
    clock = Clock()
    security, metrics = build(
        "rules:\n"
        "  - {name: check, expression: 'http.request.uri.path eq \"/login\"', action: challenge}\n"
        "  - {name: after, expression: 'http.request.uri.path eq \"/login\"', action: log}\n"
        "challenge: {secret: 0123456789abcdef0123}\n",
        clock,
    )
    ex = make_exchange("/login")
    page = run(guard(security, ex))
    assert page.status == 403 and (b"og-mitigated", b"challenge") in page.headers
    challenger = security.request_filters[3].challengers["site"]  # type: ignore[attr-defined]
    view = security.observers[0].of(ex).view  # type: ignore[attr-defined]
    cookie, _ = challenger.clearance(2, view, clock())
    cleared = make_exchange("/login", headers=[(b"cookie", b"og_clearance=" + cookie.encode())])
    assert run(guard(security, cleared)) is None
    assert event_count(metrics, "custom", "check", "challenge_passed") == 1
    assert event_count(metrics, "custom", "after", "log") == 1


def test_first_terminating_skips_log_rules() -> None:
    rules = [
        CompiledRule("a", "log", lambda view: True),
        CompiledRule("b", "block", lambda view: False),
        CompiledRule("c", "js_challenge", lambda view: True),
    ]
    view: RequestView = make_exchange_view()
    found = first_terminating(rules, view)
    assert found is not None and found.name == "c"


def make_exchange_view() -> RequestView:
    from originguard.protect.verdict import request_view

    return request_view(make_exchange("/"), None)
