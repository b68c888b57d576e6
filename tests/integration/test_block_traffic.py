"""Blocking traffic through the real edge (spec §7): IP access, custom rules, rate limits and
challenges, each a transcript between a client c1, the edge and an origin s1 that records
what reached it. Client addresses come from X-Forwarded-For, which the edge believes only
because 127.0.0.1 is listed in trusted_proxies (except where a test says otherwise)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.client import Reply
from support.edge import Edge, run_cli, site_config
from support.origin import Origin

from originguard.protect.challenge import COOKIE, VERIFY_PATH, solve

pytestmark = pytest.mark.integration

SECURITY: dict[str, Any] = {
    "ip_access": [
        {"target": "ip", "value": "198.51.100.66", "mode": "block"},
        {"target": "ip_range", "value": "198.51.0.0/16", "mode": "block"},
        {"target": "ip", "value": "198.51.100.7", "mode": "allow"},
    ],
    "rules": [
        {"name": "partner", "expression": 'http.request.uri.path eq "/admin/partner"',
         "action": "skip"},
        {"name": "no admin",
         "expression": 'starts_with(http.request.uri.path, "/admin") and not ip.src in $office',
         "action": "block",
         "response": {"status": 403, "content_type": "text/plain", "body": "admins only"}},
        {"name": "watch", "expression": 'http.request.uri.path eq "/watched"', "action": "log"},
        {"name": "gate", "expression": 'http.request.uri.path eq "/gate"',
         "action": "js_challenge"},
        {"name": "button", "expression": 'http.request.uri.path eq "/button"',
         "action": "challenge"},
    ],
    "rate_limits": [
        {"name": "burst", "expression": 'http.request.uri.path eq "/limited"',
         "period": "10s", "requests_per_period": 3},
        {"name": "penalty", "expression": 'http.request.uri.path eq "/penalty"',
         "period": "10s", "requests_per_period": 2, "mitigation_timeout": "1m"},
        {"name": "failed logins", "expression": 'starts_with(http.request.uri.path, "/status/")',
         "counting_expression": "http.response.code eq 401",
         "period": "60s", "requests_per_period": 2},
    ],
    "challenge": {"secret": "integration-secret-0123456789", "difficulty": 10},
}  # fmt: skip


def edge_config(origin: Origin, security: dict[str, Any], **top: Any) -> dict[str, Any]:
    return site_config(
        origin.address,
        zone={"security": security},
        lists={"office": ["192.0.2.0/24"]},
        **top,
    )


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    origin = Origin("s1").start()
    yield origin
    origin.stop()


@pytest.fixture(scope="module")
def edge(module_edges: Any, origin: Origin) -> Edge:
    return module_edges(edge_config(origin, SECURITY, trusted_proxies=["127.0.0.1/32"]))


@pytest.fixture(autouse=True)
def fresh_record(origin: Origin) -> None:
    origin.forget()


def get(edge: Edge, target: str, client: str, *headers: tuple[str, str]) -> Reply:
    return edge.get(target, headers=[("X-Forwarded-For", client), *headers])


def seen(origin: Origin, path: str) -> int:
    return sum(1 for r in origin.requests if r.target.split("?")[0] == path)


def security_events(edge: Edge) -> list[dict[str, Any]]:
    found = re.findall(r"originguard\.security: (\{.*\})$", edge.stderr(), re.M)
    return [json.loads(text) for text in found]


# -- IP access ---------------------------------------------------------------------------------


def test_a_blocked_address_gets_403_and_the_origin_sees_nothing(edge: Edge, origin: Origin) -> None:
    reply = get(edge, "/anything", "198.51.100.66")
    assert reply.status == 403
    assert "Access denied" in reply.text and "1020" in reply.text
    assert seen(origin, "/anything") == 0


def test_an_allowed_address_inside_a_blocked_range_gets_through_and_skips_rules(
    edge: Edge, origin: Origin
) -> None:
    assert get(edge, "/x", "198.51.3.3").status == 403
    assert get(edge, "/x", "198.51.100.7").status == 200
    assert get(edge, "/admin/panel", "198.51.100.7").status == 200  # custom rules skipped


def test_an_ipv4_address_written_as_ipv4_mapped_ipv6_meets_the_ipv4_rules(
    edge: Edge, origin: Origin
) -> None:
    # Dual-stack proxies report IPv4 clients as ::ffff:a.b.c.d.
    assert get(edge, "/mapped", "::ffff:198.51.100.66").status == 403
    assert get(edge, "/admin/mapped", "::ffff:192.0.2.9").status == 200  # $office
    assert get(edge, "/admin/mapped", "::ffff:203.0.113.9").status == 403
    assert [r.header("og-connecting-ip") for r in origin.requests] == ["192.0.2.9"]


# -- custom rules ------------------------------------------------------------------------------


def test_custom_rule_block_answers_with_the_custom_body(edge: Edge, origin: Origin) -> None:
    reply = get(edge, "/admin/users", "203.0.113.10")
    assert reply.status == 403
    assert reply.body == b"admins only"
    assert reply.header("content-type") == "text/plain"
    assert seen(origin, "/admin/users") == 0
    assert get(edge, "/admin/users", "192.0.2.20").status == 200  # from the office list


def test_skip_lets_the_request_past_the_remaining_rules(edge: Edge) -> None:
    assert get(edge, "/admin/partner", "203.0.113.11").status == 200


def test_log_only_rule_passes_and_records_a_security_event(edge: Edge, origin: Origin) -> None:
    reply = get(edge, "/watched?q=1", "203.0.113.12")
    assert reply.status == 200 and seen(origin, "/watched") == 1
    ray = reply.header("og-ray")
    edge.wait_for_stderr(re.escape(f'"ray":"{ray}"'))
    event = next(e for e in security_events(edge) if e["ray"] == ray)
    assert event["rule"] == "watch" and event["action"] == "log"
    assert event["client_ip"] == "203.0.113.12" and event["path"] == "/watched?q=1"


def test_matches_are_counted_in_metrics(edge: Edge) -> None:
    get(edge, "/admin/x", "203.0.113.13")
    metrics = edge.admin("/metrics").text
    assert re.search(
        r'og_security_events_total\{action="block",phase="custom",rule="no admin",zone="site"\} '
        r"[1-9]",
        metrics,
    ), metrics


# -- rate limits -------------------------------------------------------------------------------


def test_rate_limit_trips_at_n_plus_one_with_429_and_the_origin_saw_only_n(
    edge: Edge, origin: Origin
) -> None:
    replies = [get(edge, "/limited", "203.0.113.20") for _ in range(4)]
    assert [r.status for r in replies] == [200, 200, 200, 429]
    assert 1 <= int(replies[-1].header("retry-after") or "0") <= 20
    assert seen(origin, "/limited") == 3
    assert get(edge, "/limited", "203.0.113.21").status == 200  # another client, own counter


def test_mitigation_timeout_blocks_the_key_for_the_whole_timeout(edge: Edge) -> None:
    statuses = [get(edge, "/penalty", "203.0.113.30").status for _ in range(3)]
    assert statuses == [200, 200, 429]
    reply = get(edge, "/penalty", "203.0.113.30")
    assert reply.status == 429
    assert 50 <= int(reply.header("retry-after") or "0") <= 60


def test_counting_expression_counts_only_401_responses(edge: Edge, origin: Origin) -> None:
    client = "203.0.113.40"
    assert [get(edge, "/status/200", client).status for _ in range(4)] == [200] * 4
    assert [get(edge, "/status/401", client).status for _ in range(2)] == [401, 401]
    assert get(edge, "/status/200", client).status == 429
    assert seen(origin, "/status/401") == 2


def test_a_spoofed_forwarded_for_from_an_untrusted_client_does_not_change_the_key(
    start_edge: Any, origin: Origin
) -> None:
    untrusted = start_edge(edge_config(origin, {"rate_limits": SECURITY["rate_limits"][:1]}))
    statuses = [get(untrusted, "/limited", f"10.9.9.{i}").status for i in range(4)]
    assert statuses == [200, 200, 200, 429]


# -- challenges --------------------------------------------------------------------------------


def _form_value(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, page
    return found.group(1)


def test_js_challenge_then_clearance_cookie_is_accepted(edge: Edge, origin: Origin) -> None:
    client, ua = "203.0.113.50", ("User-Agent", "Mozilla/5.0 integration")
    page = get(edge, "/gate?next=1", client, ua)
    assert page.status == 403 and page.header("og-mitigated") == "challenge"
    assert seen(origin, "/gate") == 0
    token = _form_value(page.text, "token")
    assert _form_value(page.text, "return") == "/gate?next=1"
    nonce = solve(token, 10)  # what the page's script computes
    form = f"token={token}&nonce={nonce}&return=%2Fgate%3Fnext%3D1".encode()
    answer = edge.request(
        "POST",
        VERIFY_PATH,
        headers=[("X-Forwarded-For", client), ua,
                 ("Content-Type", "application/x-www-form-urlencoded")],
        body=form,
    )  # fmt: skip
    assert answer.status == 303 and answer.header("location") == "/gate?next=1"
    cookie = (answer.header("set-cookie") or "").split(";")[0]
    assert cookie.startswith(COOKIE + "=")
    passed = get(edge, "/gate?next=1", client, ua, ("Cookie", cookie))
    assert passed.status == 200 and seen(origin, "/gate") == 1
    # Bound to the browser: the same cookie from another user agent is challenged again.
    other = get(edge, "/gate", client, ("User-Agent", "curl/8"), ("Cookie", cookie))
    assert other.status == 403


def test_interactive_challenge_is_the_proof_of_work_then_a_button(edge: Edge) -> None:
    client = "203.0.113.51"
    page = get(edge, "/button", client)
    assert page.status == 403 and "<button" in page.text and "disabled" in page.text
    token = _form_value(page.text, "token")

    def post(form: str) -> Reply:
        return edge.request(
            "POST", VERIFY_PATH, headers=[("X-Forwarded-For", client)], body=form.encode()
        )

    assert post(f"token={token}&return=/button").status == 403  # the click alone
    answer = post(f"token={token}&nonce={solve(token, 10)}&return=/button")
    cookie = (answer.header("set-cookie") or "").split(";")[0]
    assert get(edge, "/button", client, ("Cookie", cookie)).status == 200


def test_api_clients_get_a_json_challenge(edge: Edge) -> None:
    reply = get(edge, "/gate", "203.0.113.52", ("Accept", "application/json"))
    assert reply.status == 403 and reply.header("og-mitigated") == "challenge"
    assert json.loads(reply.body)["challenge"] == "js_challenge"


def test_a_blocked_post_with_an_unread_body_closes_the_connection(edge: Edge) -> None:
    from support.client import Client

    with Client(edge.port) as c1:
        c1.send(
            b"POST /admin/upload HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-For: 203.0.113.60\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"x" * 1000
        )
        reply = c1.read_reply()
        assert reply.status == 403
        assert reply.header("connection") == "close"


# -- config errors -----------------------------------------------------------------------------


def _bad_config(origin: Origin) -> dict[str, Any]:
    bad = {"rules": [{"name": "typo", "expression": 'http.host eq "a" andd ssl',
                      "action": "block"}]}  # fmt: skip
    return edge_config(origin, bad)


def test_a_bad_rule_fails_check_with_the_caret_message(tmp_path: Path, origin: Origin) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(_bad_config(origin), sort_keys=False))
    result = run_cli("check", "-c", str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert 'zones.0.security.rules.0.expression: rule "typo":' in lines[0]
    assert re.match(r"edge\.yaml:\d+: ", Path(lines[0]).name)
    assert lines[1] == '1 | http.host eq "a" andd ssl'
    assert lines[2].index("^") == lines[1].index("andd")


def test_a_reload_with_a_bad_rule_keeps_the_old_rules(start_edge: Any, origin: Origin) -> None:
    good = edge_config(origin, {"rules": SECURITY["rules"][1:2]})
    edge = start_edge(good)
    assert edge.get("/admin").status == 403
    log = edge.reload(_bad_config(origin))
    assert "reload rejected" in log and 'rule "typo"' in log
    assert edge.get("/admin").status == 403
    assert edge.get("/fine").status == 200


# -- a real browser ------------------------------------------------------------------------------


def headless_dom(edge: Edge, tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium opens http://site.test{path} on the edge; its stdout is the final DOM
    once the page's scripts have run (up to 15 s of virtual time)."""
    return subprocess.run(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
            f"--host-resolver-rules=MAP site.test 127.0.0.1:{edge.port}",
            "--virtual-time-budget=15000", "--dump-dom", f"http://site.test{path}",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium binary")
def test_headless_chromium_passes_the_js_challenge_and_reaches_the_origin(
    start_edge: Any, origin: Origin, tmp_path: Path
) -> None:
    security = {"under_attack": True, "challenge": {"secret": "browser-secret-0123456789",
                                                    "difficulty": 12}}  # fmt: skip
    edge = start_edge(edge_config(origin, security))
    browser = headless_dom(edge, tmp_path, "/hello")
    # The challenge page's script solved the proof of work, posted it, got the cookie and was
    # sent back: the DOM is the origin's answer, and the origin saw the page once.
    assert "s1 GET /hello" in browser.stdout, browser.stdout + browser.stderr
    assert seen(origin, "/hello") == 1


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium binary")
def test_headless_chromium_enables_the_interactive_button_after_the_proof_of_work(
    start_edge: Any, origin: Origin, tmp_path: Path
) -> None:
    rule = {"name": "button", "expression": 'http.request.uri.path eq "/button"',
            "action": "challenge"}
    security = {"rules": [rule], "challenge": {"secret": "browser-secret-0123456789",
                                               "difficulty": 12}}  # fmt: skip
    edge = start_edge(edge_config(origin, security))
    browser = headless_dom(edge, tmp_path, "/button")
    # The script found the nonce, filled it in and enabled the button; it waits for the click.
    dom = browser.stdout
    assert 'id="og-continue"' in dom and "I am human, continue" in dom, dom + browser.stderr
    assert "disabled" not in dom.split('id="og-continue"')[1].split(">")[0]
    assert re.search(r'name="nonce" value="\d+"', dom)  # a hidden input's value is its attribute
    assert seen(origin, "/button") == 0
