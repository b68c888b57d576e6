"""Session affinity tokens, header sessions, IP picks and ZDF modes (spec §3, §6.6)."""

from __future__ import annotations

from collections import Counter

import pytest

from originguard.health.affinity import (
    COOKIE_NAME,
    CookieAffinity,
    HeaderAffinity,
    cookie_flags,
    failover_plan,
    pick_by_ip,
    session_key,
)
from originguard.health.settings import AffinitySettings

SECRET = b"0123456789abcdef0123456789abcdef"
ORIGINS = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]


def test_cookie_pins_the_origin_until_it_expires() -> None:
    affinity = CookieAffinity(SECRET, ttl=82800)
    token = affinity.issue("10.0.0.2:80", now=1000)
    assert affinity.resolve(token, ORIGINS, now=1000 + 82799) == "10.0.0.2:80"
    assert affinity.resolve(token, ORIGINS, now=1000 + 82800) is None


def test_cookie_does_not_reveal_the_origin_address() -> None:
    token = CookieAffinity(SECRET, ttl=1800).issue("10.0.0.2:80", now=0)
    assert "10.0.0.2" not in token and "10.0.0.2" not in repr(token.encode())


def test_tampered_cookie_means_pick_again() -> None:
    affinity = CookieAffinity(SECRET, ttl=1800)
    token = affinity.issue("10.0.0.1:80", now=0)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert affinity.resolve(flipped, ORIGINS, now=1) is None
    assert affinity.resolve("not-a-token!", ORIGINS, now=1) is None
    assert affinity.resolve("", ORIGINS, now=1) is None


def test_cookie_signed_with_another_secret_or_scope_is_rejected() -> None:
    token = CookieAffinity(SECRET, ttl=1800).issue("10.0.0.1:80", now=0)
    assert CookieAffinity(b"x" * 32, ttl=1800).resolve(token, ORIGINS, now=1) is None
    assert CookieAffinity(SECRET, ttl=1800, scope="other-lb").resolve(token, ORIGINS, 1) is None


def test_pinned_origin_that_is_no_longer_usable_means_pick_again() -> None:
    affinity = CookieAffinity(SECRET, ttl=1800)
    token = affinity.issue("10.0.0.3:80", now=0)
    assert affinity.resolve(token, ORIGINS[:2], now=1) is None


def test_set_cookie_is_http_only_with_max_age_and_flags() -> None:
    affinity = CookieAffinity(SECRET, ttl=82800)
    header = affinity.set_cookie("tok", secure=True, samesite="Lax")
    assert header == f"{COOKIE_NAME}=tok; Path=/; Max-Age=82800; HttpOnly; SameSite=Lax; Secure"


@pytest.mark.parametrize(
    ("secure", "samesite", "always_https", "expected"),
    [
        ("auto", "auto", False, (False, "Lax")),
        ("auto", "auto", True, (True, "None")),
        ("never", "strict", True, (False, "Strict")),
        ("always", "lax", False, (True, "Lax")),
    ],
)
def test_cookie_flags_follow_always_use_https_in_auto_mode(
    secure: str, samesite: str, always_https: bool, expected: tuple[bool, str]
) -> None:
    settings = AffinitySettings.model_validate(
        {"mode": "cookie", "secure": secure, "samesite": samesite}
    )
    assert cookie_flags(settings, always_https) == expected


def test_ip_pick_is_stable_and_follows_weights() -> None:
    weighted = [("a", 1.0), ("b", 1.0), ("c", 0.5)]
    assert pick_by_ip("198.51.100.7", weighted) == pick_by_ip("198.51.100.7", weighted)
    picks = Counter(pick_by_ip(f"10.1.{n // 256}.{n % 256}", weighted) for n in range(20000))
    assert abs(picks["c"] / 20000 - 0.2) < 0.02 and abs(picks["a"] / 20000 - 0.4) < 0.02


def test_ip_pick_moves_only_clients_of_a_removed_origin() -> None:
    before = {
        f"10.2.0.{n}": pick_by_ip(f"10.2.0.{n}", [("a", 1), ("b", 1), ("c", 1)]) for n in range(200)
    }
    after = {ip: pick_by_ip(ip, [("a", 1), ("b", 1)]) for ip in before}
    assert all(after[ip] == origin for ip, origin in before.items() if origin != "c")


def test_header_session_key_needs_the_chosen_headers() -> None:
    headers = {"x-session": "abc", "cookie": "sid=42; theme=dark"}
    key = session_key(["X-Session"], headers, require_all=False)
    assert key is not None and key == session_key(["x-session"], {"x-session": "abc"}, False)
    assert session_key(["x-session", "x-user"], headers, require_all=True) is None
    assert session_key(["x-session", "x-user"], headers, require_all=False) is not None
    assert session_key(["cookie:sid"], headers, require_all=True) is not None
    assert session_key(["cookie:sid,other"], headers, require_all=True) is None
    assert session_key(["x-none"], headers, require_all=False) is None


def test_header_session_expires_after_idle_ttl_and_refreshes_on_use() -> None:
    table = HeaderAffinity(ttl=1800)
    table.bind("k", "10.0.0.1:80", now=0)
    assert table.lookup("k", ORIGINS, now=1700) == "10.0.0.1:80"
    assert table.lookup("k", ORIGINS, now=3400) == "10.0.0.1:80"  # idle clock reset at 1700
    assert table.lookup("k", ORIGINS, now=5300) is None


def test_header_session_to_an_unusable_origin_is_dropped() -> None:
    table = HeaderAffinity(ttl=1800)
    table.bind("k", "10.0.0.3:80", now=0)
    assert table.lookup("k", ORIGINS[:2], now=1) is None and len(table) == 0


def test_header_session_table_is_bounded() -> None:
    table = HeaderAffinity(ttl=1800, max_entries=2)
    for n in range(3):
        table.bind(f"k{n}", "o", now=n)
    assert len(table) == 2 and table.lookup("k0", ["o"], now=3) is None


def test_zdf_none_gives_a_pinned_session_no_failover() -> None:
    plan = failover_plan("none", pinned=True)
    assert not plan.may_retry


def test_zdf_temporary_retries_but_keeps_the_pin() -> None:
    plan = failover_plan("temporary", pinned=True)
    assert plan.may_retry and not plan.repin


def test_zdf_sticky_retries_and_moves_the_pin() -> None:
    plan = failover_plan("sticky", pinned=True)
    assert plan.may_retry and plan.repin


def test_unpinned_request_gets_the_ordinary_one_retry() -> None:
    assert failover_plan("none", pinned=False).may_retry
