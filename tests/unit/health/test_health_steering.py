"""The zone's load balancer at run time (spec §3, §6.3-§6.6): real config, routing and
balancers; health set by feeding probe results; time is a variable."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from originguard.config import Config
from originguard.exchange import Attempt, Exchange
from originguard.health.probe import FailureReason, ProbeResult
from originguard.health.state import OriginHealth
from originguard.health.steering import ZoneSteering
from originguard.http.messages import RequestHead
from originguard.routing import PoolRuntime, ZoneRuntime, build_zones, origin_key

UP = ProbeResult(True, 0.01, 200)
DOWN = ProbeResult(False, 0.01, 500, FailureReason.CODE_MISMATCH)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(
    lb: dict[str, Any],
    pools: dict[str, list[int]] | None = None,
    origin_settings: dict[int, dict[str, Any]] | None = None,
) -> tuple[ZoneSteering, dict[str, OriginHealth], Clock]:
    pools = pools or {"main": [1, 2]}
    config = Config.model_validate(
        {
            "health": {"monitors": {"web": {"interval": 10}}},
            "zones": [
                {
                    "name": "site",
                    "hostnames": ["site.test"],
                    "pools": [
                        {
                            "name": name,
                            "steering": "round_robin",
                            "origins": [
                                {"address": f"127.0.0.1:{p}", **(origin_settings or {}).get(p, {})}
                                for p in ports
                            ],
                        }
                        for name, ports in pools.items()
                    ],
                    "load_balancer": lb,
                }
            ],
        }
    )
    zone = build_zones(config).zones[0]
    states: dict[str, OriginHealth] = {}
    for pool in zone.pools:
        for origin in pool.origins:
            states[origin_key("site", pool.name, origin.address)] = OriginHealth()
    clock = Clock()
    assert zone.config.load_balancer is not None
    steering = ZoneSteering(zone, zone.config.load_balancer, states, {}, clock=clock)
    return steering, states, clock


def probe(
    steering: ZoneSteering, states: dict[str, OriginHealth], pool: str, port: int, ok: bool
) -> None:
    states[origin_key("site", pool, f"127.0.0.1:{port}")].observe(UP if ok else DOWN, 0.0)
    steering.refresh()


def exchange(zone: ZoneRuntime, cookie: str | None = None, ip: str = "203.0.113.7") -> Exchange:
    headers = [(b"host", b"site.test")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    head = RequestHead(b"GET", b"/", b"/", b"", b"1.1", headers, b"site.test")
    conn: Any = SimpleNamespace(scheme=b"http")
    return Exchange(conn, head, None, "ray", 0.0, client_ip=ip, zone=zone)


def pick(steering: ZoneSteering, ex: Exchange, exclude: list[Any] | None = None) -> str | None:
    pool = steering.active_pool()
    if pool is None:
        return None
    picked = steering.select(ex, pool, exclude or [])
    return None if picked is None else picked[1].address


def served(steering: ZoneSteering, ex: Exchange) -> str:
    """Finish `ex` as served by its last pick; return its Set-Cookie value ('' if none)."""
    headers: list[tuple[bytes, bytes]] = []
    steering.on_response(ex, headers)
    steering.forget(ex)
    return next((v.decode() for k, v in headers if k == b"set-cookie"), "")


def test_unhealthy_origin_gets_no_traffic_and_returns_after_recovery() -> None:
    steering, states, _ = setup({"pools": [{"name": "main", "monitor": "web"}]})
    zone = steering.zone
    probe(steering, states, "main", 1, True)
    probe(steering, states, "main", 2, False)
    assert {pick(steering, exchange(zone)) for _ in range(6)} == {"127.0.0.1:1"}
    probe(steering, states, "main", 2, True)
    assert {pick(steering, exchange(zone)) for _ in range(6)} == {"127.0.0.1:1", "127.0.0.1:2"}


def test_unknown_origins_count_as_down_so_the_fallback_serves() -> None:
    steering, _, _ = setup(
        {"pools": [{"name": "main", "monitor": "web"}, {"name": "spare"}]},
        {"main": [1], "spare": [9]},
    )
    assert pick(steering, exchange(steering.zone)) == "127.0.0.1:9"


@pytest.mark.parametrize(
    "drained", [{"weight": 0}, {"enabled": False}], ids=["weight-0", "disabled"]
)
def test_a_pool_with_no_usable_origin_is_passed_over_for_the_fallback(
    drained: dict[str, Any],
) -> None:
    steering, states, _ = setup(
        {"pools": [{"name": "main", "monitor": "web"}, {"name": "spare", "monitor": "web"}]},
        {"main": [1, 2], "spare": [9]},
        {1: drained, 2: drained},
    )
    for port in (1, 2):
        probe(steering, states, "main", port, True)
    probe(steering, states, "spare", 9, True)
    assert not steering.is_serving("main")
    assert pick(steering, exchange(steering.zone)) == "127.0.0.1:9"


def test_minimum_origins_makes_a_half_healthy_pool_critical() -> None:
    steering, states, _ = setup(
        {
            "pools": [
                {"name": "main", "monitor": "web", "minimum_origins": 2},
                {"name": "spare"},
            ]
        },
        {"main": [1, 2], "spare": [9]},
    )
    probe(steering, states, "main", 1, True)
    probe(steering, states, "main", 2, False)
    assert steering.pool_states["main"] == "critical"
    assert pick(steering, exchange(steering.zone)) == "127.0.0.1:9"


def test_disabled_fallback_leaves_no_pool_and_the_edge_answers_530() -> None:
    steering, states, _ = setup(
        {"pools": [{"name": "main", "monitor": "web"}, {"name": "spare", "enabled": False}]},
        {"main": [1], "spare": [9]},
    )
    probe(steering, states, "main", 1, False)
    assert steering.active_pool() is None


def test_fallback_origins_serve_even_when_their_own_checks_fail() -> None:
    steering, states, _ = setup(
        {"pools": [{"name": "main", "monitor": "web"}, {"name": "spare", "monitor": "web"}]},
        {"main": [1], "spare": [9]},
    )
    probe(steering, states, "main", 1, False)
    probe(steering, states, "spare", 9, False)
    assert pick(steering, exchange(steering.zone)) == "127.0.0.1:9"


def test_failover_retry_crosses_pools_only_when_configured() -> None:
    for across, expected in ((False, None), (True, "127.0.0.1:9")):
        steering, _, _ = setup(
            {"pools": [{"name": "main"}, {"name": "spare"}], "failover_across_pools": across},
            {"main": [1], "spare": [9]},
        )
        ex = exchange(steering.zone)
        main = steering.active_pool()
        assert main is not None
        first = steering.select(ex, main, [])
        assert first is not None
        again = steering.select(ex, main, [first[1]])
        assert (again[1].address if again else None) == expected


def test_cookie_affinity_pins_and_a_tampered_cookie_is_ignored() -> None:
    steering, _, _ = setup({"pools": [{"name": "main"}], "affinity": {"mode": "cookie"}})
    zone = steering.zone
    ex = exchange(zone)
    first = pick(steering, ex)
    ex.attempts.append(Attempt(first or "", 200))
    cookie = served(steering, ex).split(";")[0]
    assert cookie.startswith("__oglb=")
    for _ in range(5):
        again = exchange(zone, cookie)
        assert pick(steering, again) == first
        assert served(steering, again) == ""  # still pinned: no new cookie
    tampered = exchange(zone, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
    pick(steering, tampered)
    tampered.attempts.append(Attempt("x", 200))
    assert served(steering, tampered).startswith("__oglb=")


def test_expired_cookie_picks_again() -> None:
    steering, _, clock = setup(
        {"pools": [{"name": "main"}], "affinity": {"mode": "cookie", "ttl": "30m"}}
    )
    ex = exchange(steering.zone)
    pick(steering, ex)
    ex.attempts.append(Attempt("x", 200))
    cookie = served(steering, ex).split(";")[0]
    clock.now += 1801
    late = exchange(steering.zone, cookie)
    pick(steering, late)
    late.attempts.append(Attempt("x", 200))
    assert served(steering, late).startswith("__oglb=")


def pinned_then_failed(mode: str) -> tuple[ZoneSteering, Exchange, PoolRuntime, Any]:
    steering, _, _ = setup(
        {
            "pools": [{"name": "main"}],
            "affinity": {"mode": "cookie", "zero_downtime_failover": mode},
        }
    )
    ex = exchange(steering.zone)
    pick(steering, ex)
    ex.attempts.append(Attempt("x", 200))
    cookie = served(steering, ex).split(";")[0]
    pinned = exchange(steering.zone, cookie)
    pool = steering.active_pool()
    assert pool is not None
    first = steering.select(pinned, pool, [])
    assert first is not None
    return steering, pinned, pool, first[1]


def test_zdf_none_gives_a_pinned_session_no_failover_retry() -> None:
    steering, ex, pool, origin = pinned_then_failed("none")
    assert steering.select(ex, pool, [origin]) is None


def test_zdf_temporary_retries_elsewhere_but_keeps_the_pin() -> None:
    steering, ex, pool, origin = pinned_then_failed("temporary")
    retry = steering.select(ex, pool, [origin])
    assert retry is not None and retry[1] is not origin
    ex.attempts.append(Attempt(retry[1].address, 200))
    assert served(steering, ex) == ""


def test_zdf_temporary_keeps_the_pin_when_the_stand_in_origin_fails_too() -> None:
    steering, states, _ = setup(
        {
            "pools": [{"name": "main", "monitor": "web"}],
            "affinity": {"mode": "cookie", "zero_downtime_failover": "temporary"},
        },
        {"main": [1, 2, 3]},
    )
    for port in (1, 2, 3):
        probe(steering, states, "main", port, True)
    first = exchange(steering.zone)
    home = pick(steering, first)
    first.attempts.append(Attempt(str(home), 200))
    cookie = served(steering, first).split(";")[0]
    probe(steering, states, "main", int(str(home).rsplit(":", 1)[1]), False)  # home is down

    ex = exchange(steering.zone, cookie)
    pool = steering.active_pool()
    assert pool is not None
    stand_in = steering.select(ex, pool, [])
    assert stand_in is not None and stand_in[1].address != home
    retry = steering.select(ex, pool, [stand_in[1]])  # the stand-in refused: 521
    assert retry is not None
    ex.attempts.append(Attempt(retry[1].address, 200))
    assert served(steering, ex) == ""  # the cookie still names the home origin


def test_zdf_sticky_moves_the_pin_to_the_origin_that_served() -> None:
    steering, ex, pool, origin = pinned_then_failed("sticky")
    retry = steering.select(ex, pool, [origin])
    assert retry is not None and retry[1] is not origin
    ex.attempts.append(Attempt(retry[1].address, 200))
    cookie = served(steering, ex).split(";")[0]
    assert pick(steering, exchange(steering.zone, cookie)) == retry[1].address


def test_ip_cookie_first_pick_is_stable_per_client_ip() -> None:
    steering, _, _ = setup(
        {"pools": [{"name": "main"}], "affinity": {"mode": "ip_cookie"}},
        {"main": [1, 2, 3, 4]},
    )
    zone = steering.zone
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        picks = set()
        for _ in range(4):
            ex = exchange(zone, ip=ip)
            picks.add(pick(steering, ex))
            steering.forget(ex)
        assert len(picks) == 1


def test_header_affinity_binds_a_session_header_to_one_origin() -> None:
    steering, _, _ = setup(
        {"pools": [{"name": "main"}], "affinity": {"mode": "header", "headers": ["cookie:sid"]}},
        {"main": [1, 2, 3]},
    )
    zone = steering.zone
    ex = exchange(zone, "sid=abc")
    first = pick(steering, ex)
    ex.attempts.append(Attempt(first or "", 200))
    assert served(steering, ex) == ""  # server-side binding, no cookie of ours
    assert {pick(steering, exchange(zone, "sid=abc")) for _ in range(5)} == {first}


def test_ejected_origin_is_skipped_and_panic_mode_uses_all_when_all_are_out() -> None:
    steering, _, clock = setup(
        {
            "pools": [{"name": "main"}],
            "outlier": {"consecutive_failures": 2, "max_ejection_percent": 100},
        }
    )
    outliers = steering.outliers["main"]
    for _ in range(2):
        outliers.record("127.0.0.1:2", 502, clock.now)
    assert {pick(steering, exchange(steering.zone)) for _ in range(4)} == {"127.0.0.1:1"}
    for _ in range(2):
        outliers.record("127.0.0.1:1", 500, clock.now)
    both = {pick(steering, exchange(steering.zone)) for _ in range(4)}
    assert both == {"127.0.0.1:1", "127.0.0.1:2"}  # panic: all out means all in


def test_slow_start_ramps_a_recovered_origin_up_over_the_window() -> None:
    steering, _, clock = setup(
        {
            "pools": [{"name": "main"}],
            "outlier": {"consecutive_failures": 1, "base_ejection": "10s"},
            "slow_start": {"window": "100s", "min_weight_percent": 10},
        }
    )
    pool = steering.zone.pools[0]
    two = pool.origins[1]
    steering.outliers["main"].record(two.address, 500, clock.now)
    clock.now += 10  # the ejection ends
    assert pool.balancer.weight(two) == 0.1
    clock.now += 50
    assert abs(pool.balancer.weight(two) - 0.5) < 1e-9
    clock.now += 50
    assert pool.balancer.weight(two) == 1.0
