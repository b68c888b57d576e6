"""Challenges and the og_clearance cookie: signed, bound to client and browser, expiring."""

from __future__ import annotations

import asyncio
import json

from exchanges import Clock, build, guard, make_exchange

from originguard.protect.challenge import (
    COOKIE,
    VERIFY_PATH,
    Challenger,
    leading_zero_bits,
    solve,
)
from originguard.protect.verdict import request_view

NOW = 1_700_000_000.0
CHALLENGER = Challenger("site", b"k" * 32, ttl=1800, difficulty=8)


def view(client_ip: str = "203.0.113.7", ua: bytes = b"Mozilla/5.0 test"):  # type: ignore[no-untyped-def]
    return request_view(
        make_exchange("/", client_ip=client_ip, headers=[(b"user-agent", ua)]), None
    )


def with_cookie(value: str, **kw: object):  # type: ignore[no-untyped-def]
    headers = [(b"cookie", f"a=b; {COOKIE}={value}".encode())]
    ex = make_exchange("/", headers=headers, **kw)  # type: ignore[arg-type]
    return request_view(ex, None)


def test_a_clearance_passes_its_own_kind_and_weaker_ones() -> None:
    interactive, _ = CHALLENGER.clearance(2, view(), NOW)
    js, _ = CHALLENGER.clearance(1, view(), NOW)
    assert CHALLENGER.is_cleared("challenge", with_cookie(interactive), NOW)
    assert CHALLENGER.is_cleared("js_challenge", with_cookie(interactive), NOW)
    assert CHALLENGER.is_cleared("js_challenge", with_cookie(js), NOW)
    assert not CHALLENGER.is_cleared("challenge", with_cookie(js), NOW)


def test_a_clearance_expires() -> None:
    value, max_age = CHALLENGER.clearance(1, view(), NOW)
    assert max_age == 1800
    assert CHALLENGER.is_cleared("js_challenge", with_cookie(value), NOW + 1799)
    assert not CHALLENGER.is_cleared("js_challenge", with_cookie(value), NOW + 1800)


def test_a_clearance_is_bound_to_the_client_64_and_the_user_agent() -> None:
    value, _ = CHALLENGER.clearance(1, view(client_ip="2001:db8::1"), NOW)
    assert CHALLENGER.is_cleared(
        "js_challenge", with_cookie(value, client_ip="2001:db8::ffff"), NOW
    )
    assert not CHALLENGER.is_cleared(
        "js_challenge", with_cookie(value, client_ip="2001:db8:0:1::1"), NOW
    )
    value, _ = CHALLENGER.clearance(1, view(), NOW)
    assert not CHALLENGER.is_cleared(
        "js_challenge", with_cookie(value, client_ip="203.0.113.8"), NOW
    )
    other_ua = request_view(
        make_exchange(
            "/", headers=[(b"user-agent", b"curl/8"), (b"cookie", f"{COOKIE}={value}".encode())]
        ),
        None,
    )
    assert not CHALLENGER.is_cleared("js_challenge", other_ua, NOW)


def test_a_forged_or_relevelled_clearance_fails() -> None:
    value, _ = CHALLENGER.clearance(1, view(), NOW)
    level, expires, mac = value.split(".")
    assert not CHALLENGER.is_cleared("js_challenge", with_cookie(f"2.{expires}.{mac}"), NOW)
    assert not CHALLENGER.is_cleared(
        "js_challenge", with_cookie(f"1.{int(expires) + 9}.{mac}"), NOW
    )
    other = Challenger("site", b"x" * 32, 1800, 8)
    assert not other.is_cleared("js_challenge", with_cookie(value), NOW)
    assert not CHALLENGER.is_cleared("js_challenge", with_cookie("garbage"), NOW)
    # Latin-1 superscript two (str.isdigit() says yes, int() says no), and a huge expiry.
    for expiry in (b"\xb2", b"9" * 5000):
        cookie = b"%s=1.%s.%s" % (COOKIE.encode(), expiry, mac.encode())
        odd = request_view(make_exchange("/", headers=[(b"cookie", cookie)]), None)
        assert not CHALLENGER.is_cleared("js_challenge", odd, NOW)
    assert CHALLENGER.check_token("js_challenge.\u00b2.salt.mac", view(), NOW) is None


def test_tokens_check_and_expire() -> None:
    token = CHALLENGER.issue("js_challenge", view(), NOW)
    assert CHALLENGER.check_token(token, view(), NOW + 10) == "js_challenge"
    assert CHALLENGER.check_token(token, view(), NOW + 601) is None
    assert CHALLENGER.check_token(token, view(client_ip="198.51.100.1"), NOW) is None
    assert CHALLENGER.check_token(token.replace("js_challenge", "challenge"), view(), NOW) is None


def test_proof_of_work_has_the_leading_zero_bits() -> None:
    assert leading_zero_bits(b"\x00\x00\x80") == 16
    assert leading_zero_bits(b"\x00\x0f") == 12
    token = CHALLENGER.issue("js_challenge", view(), NOW)
    nonce = solve(token, 8)
    assert CHALLENGER._proves(token, str(nonce))


SECURITY = "under_attack: true\nchallenge: {secret: 0123456789abcdef0123, difficulty: 8}\n"


def _answer(ex):  # type: ignore[no-untyped-def]
    clock = Clock(NOW)
    security, _ = build(SECURITY, clock)
    return asyncio.run(guard(security, ex))


def test_under_attack_serves_the_js_challenge_page_to_everyone_without_clearance() -> None:
    page = _answer(make_exchange("/shop?item=1"))
    assert page.status == 403
    headers = dict(page.headers)
    assert headers[b"og-mitigated"] == b"challenge"
    assert headers[b"cache-control"] == b"no-store"
    assert b'name="token"' in page.body and b'value="/shop?item=1"' in page.body
    assert b"<script>" in page.body


def test_api_clients_get_403_json_instead_of_a_page() -> None:
    page = _answer(make_exchange("/api", headers=[(b"accept", b"application/json")]))
    assert page.status == 403 and dict(page.headers)[b"og-mitigated"] == b"challenge"
    assert json.loads(page.body)["challenge"] == "js_challenge"


def _verify(form: bytes, clock: Clock, **kw: object):  # type: ignore[no-untyped-def]
    security, metrics = build(SECURITY, clock)
    ex = make_exchange(VERIFY_PATH, method="POST", body=form, **kw)  # type: ignore[arg-type]
    return asyncio.run(guard(security, ex)), metrics


def test_a_solved_js_challenge_sets_the_cookie_and_sends_the_visitor_back() -> None:
    clock = Clock(NOW)
    security, _ = build(SECURITY, clock)
    page = asyncio.run(guard(security, make_exchange("/shop")))
    token = page.body.split(b'name="token" value="')[1].split(b'"')[0].decode()
    nonce = solve(token, 8)
    answer, metrics = _verify(f"token={token}&nonce={nonce}&return=/shop".encode(), clock)
    assert answer.status == 303
    headers = dict(answer.headers)
    assert headers[b"location"] == b"/shop"
    cookie = headers[b"set-cookie"].decode()
    assert cookie.startswith(COOKIE + "=1.") and "HttpOnly" in cookie and "Max-Age=1800" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    # The cookie lets the same browser through the under-attack challenge.
    cleared = make_exchange("/shop", headers=[(b"cookie", f"{COOKIE}={value}".encode())])
    assert asyncio.run(guard(security, cleared)) is None
    passed = metrics.registry.get_sample_value(
        "og_challenge_answers_total", {"zone": "site", "result": "passed"}
    )
    assert passed == 1


def test_a_wrong_nonce_gets_the_page_again() -> None:
    clock = Clock(NOW)
    token = Challenger("site", b"0123456789abcdef0123", 1800, 8).issue("js_challenge", view(), NOW)
    nonce = solve(token, 8) + 1
    while (
        leading_zero_bits(__import__("hashlib").sha256(f"{token}:{nonce}".encode()).digest()) >= 8
    ):
        nonce += 1
    answer, _ = _verify(f"token={token}&nonce={nonce}".encode(), clock)
    assert answer.status == 403 and dict(answer.headers)[b"og-mitigated"] == b"challenge"


def test_the_interactive_challenge_needs_the_proof_too_and_never_redirects_off_site() -> None:
    clock = Clock(NOW)
    rule = "{name: b, expression: 'http.request.uri.path eq \"/button\"', action: challenge}"
    button = f"rules: [{rule}]\nchallenge: {{secret: 0123456789abcdef0123, difficulty: 8}}\n"
    security, _ = build(button, clock)
    page = asyncio.run(guard(security, make_exchange("/button")))
    token = page.body.split(b'name="token" value="')[1].split(b'"')[0].decode()
    assert token.startswith("challenge.") and b"<button" in page.body
    unproven, _ = _verify(f"token={token}&return=/".encode(), clock)
    assert unproven.status == 403  # a click alone is not enough: no cheaper level-2 clearance
    nonce = solve(token, 8)
    answer, _ = _verify(f"token={token}&nonce={nonce}&return=//evil.example/".encode(), clock)
    assert answer.status == 303
    assert dict(answer.headers)[b"location"] == b"/"
    assert dict(answer.headers)[b"set-cookie"].startswith(COOKIE.encode() + b"=2.")


def test_verify_wants_a_post_with_a_small_body() -> None:
    clock = Clock(NOW)
    security, _ = build(SECURITY, clock)
    get = asyncio.run(guard(security, make_exchange(VERIFY_PATH)))
    assert get.status == 405
    big, _ = _verify(b"token=" + b"x" * 5000, clock)
    assert big.status == 400
    crowded, _ = _verify(b"&".join(b"a%d=1" % i for i in range(10)), clock)
    assert crowded.status == 400
