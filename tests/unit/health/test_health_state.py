"""Health transitions, pool health and pool steering (spec §6.2-§6.4)."""

from __future__ import annotations

import random
from collections import Counter

from originguard.health.probe import FailureReason, ProbeResult
from originguard.health.settings import LoadBalancerSettings
from originguard.health.state import (
    Health,
    LbHealth,
    OriginHealth,
    PoolChoice,
    PoolHealth,
    lb_health,
    pool_health,
    select_pool,
    usable_origins,
)

UP = ProbeResult(True, 0.01, 200)
DOWN = ProbeResult(False, 5.0, None, FailureReason.HTTP_TIMEOUT)

H, U, K = Health.HEALTHY, Health.UNHEALTHY, Health.UNKNOWN


def lb(steering: str = "off", **extra: object) -> LoadBalancerSettings:
    pools = extra.pop("pools", [{"name": "primary"}, {"name": "secondary"}, {"name": "backup"}])
    return LoadBalancerSettings.model_validate({"pools": pools, "steering": steering, **extra})


def test_origin_is_unknown_until_its_first_result() -> None:
    origin = OriginHealth()
    assert origin.state is Health.UNKNOWN and not origin.is_healthy


def test_zero_hysteresis_flips_on_the_first_result() -> None:
    origin = OriginHealth()
    assert origin.observe(UP, now=1.0) is not None and origin.state is H
    transition = origin.observe(DOWN, now=2.0)
    assert transition is not None
    assert (transition.old, transition.new, transition.at) == (H, U, 2.0)
    assert transition.reason is FailureReason.HTTP_TIMEOUT


def test_healthy_origin_needs_consecutive_down_failures_in_a_row() -> None:
    origin = OriginHealth(consecutive_up=1, consecutive_down=3)
    origin.observe(UP, 0)
    origin.observe(DOWN, 1)
    origin.observe(DOWN, 2)
    origin.observe(UP, 3)  # breaks the streak
    origin.observe(DOWN, 4)
    origin.observe(DOWN, 5)
    assert origin.state is H
    assert origin.observe(DOWN, 6) is not None and origin.state is U


def test_unhealthy_origin_needs_consecutive_up_successes_in_a_row() -> None:
    origin = OriginHealth(consecutive_up=2)
    origin.observe(DOWN, 0)
    origin.observe(UP, 1)
    origin.observe(DOWN, 2)
    origin.observe(UP, 3)
    assert origin.state is U
    origin.observe(UP, 4)
    assert origin.state is H and origin.changed_at == 4


def test_unknown_origin_goes_down_on_first_failure_but_up_only_after_the_streak() -> None:
    failing = OriginHealth(consecutive_down=3)
    failing.observe(DOWN, 0)
    assert failing.state is U
    recovering = OriginHealth(consecutive_up=3)
    recovering.observe(UP, 0)
    recovering.observe(UP, 1)
    assert recovering.state is K
    recovering.observe(UP, 2)
    assert recovering.state is H


def test_history_keeps_the_last_n_results_with_reason_and_latency() -> None:
    origin = OriginHealth(history_size=3)
    for second in range(5):
        origin.observe(DOWN if second % 2 else UP, float(second))
    assert [record.at for record in origin.history] == [2.0, 3.0, 4.0]
    assert origin.history[1].reason is FailureReason.HTTP_TIMEOUT
    assert origin.history[1].latency == 5.0
    assert origin.last_reason is FailureReason.HTTP_TIMEOUT


def test_pool_states_follow_minimum_origins() -> None:
    assert pool_health([H, H, H], 1, monitored=True) is PoolHealth.HEALTHY
    assert pool_health([H, U, H], 2, monitored=True) is PoolHealth.DEGRADED
    assert pool_health([H, U, U], 2, monitored=True) is PoolHealth.CRITICAL
    assert pool_health([K, K], 1, monitored=True) is PoolHealth.UNKNOWN
    assert pool_health([U, U], 1, monitored=False) is PoolHealth.UNMONITORED
    assert pool_health([H], 1, monitored=True, enabled=False) is PoolHealth.DISABLED


def test_unknown_origins_count_as_down_when_monitored() -> None:
    assert pool_health([H, K, K], 2, monitored=True) is PoolHealth.CRITICAL
    health = {"a": H, "b": K}
    assert usable_origins(["a", "b"], health, monitored=True) == ["a"]
    assert usable_origins(["a", "b"], health, monitored=False) == ["a", "b"]


def test_failover_uses_the_first_serving_pool_in_order() -> None:
    rng = random.Random(1)
    health = {"primary": PoolHealth.CRITICAL, "secondary": PoolHealth.DEGRADED}
    health["backup"] = PoolHealth.HEALTHY
    assert select_pool(lb(), health, {}, rng) == PoolChoice("secondary")
    health["primary"] = PoolHealth.HEALTHY
    assert select_pool(lb(), health, {}, rng) == PoolChoice("primary")


def test_a_pool_still_unknown_is_skipped_and_an_unmonitored_one_serves() -> None:
    health = {"primary": PoolHealth.UNKNOWN, "secondary": PoolHealth.UNMONITORED}
    assert select_pool(lb(), health, {}, random.Random(0)).pool == "secondary"


def test_fallback_pool_takes_traffic_whatever_its_health_when_no_pool_serves() -> None:
    health = dict.fromkeys(["primary", "secondary", "backup"], PoolHealth.CRITICAL)
    choice = select_pool(lb(fallback_pool="secondary"), health, {}, random.Random(0))
    assert choice == PoolChoice("secondary", fallback=True)
    assert select_pool(lb(), health, {}, random.Random(0)).pool == "backup"  # default: last


def test_no_pool_when_the_fallback_is_disabled_means_530() -> None:
    pools = [{"name": "primary"}, {"name": "backup", "enabled": False}]
    health = {"primary": PoolHealth.CRITICAL, "backup": PoolHealth.DISABLED}
    choice = select_pool(lb(pools=pools), health, {}, random.Random(0))
    assert choice.is_unavailable and choice.pool is None


def test_random_steering_shares_follow_pool_weights() -> None:
    pools = [{"name": "a", "weight": 0.2}, {"name": "b", "weight": 0.6}, {"name": "c"}]
    health = {"a": PoolHealth.HEALTHY, "b": PoolHealth.HEALTHY, "c": PoolHealth.HEALTHY}
    rng = random.Random(42)
    draws = Counter(
        select_pool(lb("random", pools=pools), health, {}, rng).pool for _ in range(20000)
    )
    assert abs(draws["a"] / 20000 - 0.2 / 1.8) < 0.01
    assert abs(draws["b"] / 20000 - 0.6 / 1.8) < 0.01
    assert abs(draws["c"] / 20000 - 1.0 / 1.8) < 0.01


def test_random_steering_spreads_a_critical_pools_share_over_the_others() -> None:
    pools = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    health = {"a": PoolHealth.CRITICAL, "b": PoolHealth.HEALTHY, "c": PoolHealth.HEALTHY}
    rng = random.Random(7)
    draws = Counter(
        select_pool(lb("random", pools=pools), health, {}, rng).pool for _ in range(10000)
    )
    assert draws["a"] == 0 and abs(draws["b"] / 10000 - 0.5) < 0.02


def test_least_outstanding_requests_favours_the_less_busy_pool() -> None:
    pools = [{"name": "a"}, {"name": "b"}]
    health = {"a": PoolHealth.HEALTHY, "b": PoolHealth.HEALTHY}
    rng = random.Random(3)
    steering = lb("least_outstanding_requests", pools=pools)
    draws = Counter(select_pool(steering, health, {"a": 9, "b": 0}, rng).pool for _ in range(10000))
    assert abs(draws["a"] / 10000 - (0.1 / 1.1)) < 0.015


def test_lb_health_is_critical_when_only_the_fallback_is_left() -> None:
    steering = lb()
    all_good = dict.fromkeys(["primary", "secondary", "backup"], PoolHealth.HEALTHY)
    assert lb_health(steering, all_good) is LbHealth.HEALTHY
    assert lb_health(steering, {**all_good, "primary": PoolHealth.CRITICAL}) is LbHealth.DEGRADED
    assert lb_health(steering, {}) is LbHealth.CRITICAL
