"""Passive outlier ejection and slow start, with an injected clock."""

from __future__ import annotations

import pytest

from originguard.health.outlier import PoolOutliers, effective_weight
from originguard.health.settings import OutlierSettings

SETTINGS = OutlierSettings(consecutive_failures=3, base_ejection=30, max_ejection=100)


def fail(pool: PoolOutliers, origin: str, times: int, now: float, status: int = 502) -> None:
    for _ in range(times):
        pool.record(origin, status, now)


def test_origin_is_ejected_after_consecutive_failures() -> None:
    pool = PoolOutliers(["a", "b"], SETTINGS)
    fail(pool, "a", 2, now=0)
    assert not pool.is_ejected("a", 0)
    ejection = pool.record("a", 521, now=1)
    assert ejection is not None and ejection.duration == 30 and ejection.until == 31
    assert pool.is_ejected("a", 30.9) and not pool.is_ejected("a", 31)


def test_a_success_resets_the_failure_streak() -> None:
    pool = PoolOutliers(["a", "b"], SETTINGS)
    fail(pool, "a", 2, now=0)
    pool.record("a", 200, now=0)
    fail(pool, "a", 2, now=0)
    assert not pool.is_ejected("a", 0)


def test_non_failure_statuses_do_not_count() -> None:
    pool = PoolOutliers(
        ["a", "b"], OutlierSettings(consecutive_failures=1, failure_statuses=["52x"])
    )
    pool.record("a", 500, now=0)
    pool.record("a", 404, now=0)
    assert not pool.is_ejected("a", 0)
    pool.record("a", 522, now=0)
    assert pool.is_ejected("a", 0)


def test_ejection_time_grows_with_each_ejection_and_is_capped() -> None:
    pool = PoolOutliers(["a", "b"], SETTINGS)
    durations = []
    now = 0.0
    for _ in range(5):
        fail(pool, "a", 2, now)
        ejection = pool.record("a", 503, now)
        assert ejection is not None
        durations.append(ejection.duration)
        now = ejection.until + 1  # fails again right after coming back
    assert durations == [30, 60, 90, 100, 100]


def test_ejection_count_restarts_after_a_calm_period() -> None:
    pool = PoolOutliers(["a", "b"], SETTINGS)
    fail(pool, "a", 3, now=0)
    fail(pool, "a", 3, now=31)  # second ejection: 60 s, until 91
    fail(pool, "a", 2, now=500)  # 409 s after it came back: more than max_ejection
    ejection = pool.record("a", 503, now=500)
    assert ejection is not None and ejection.duration == 30


def test_never_more_than_max_ejection_percent_of_a_pool_is_out() -> None:
    pool = PoolOutliers(["a", "b", "c", "d"], SETTINGS)  # 50 % of 4 = 2
    for origin in "abcd":
        fail(pool, origin, 3, now=0)
    assert pool.ejected_count(0) == 2
    assert [pool.is_ejected(origin, 0) for origin in "abcd"] == [True, True, False, False]


def test_a_blocked_streak_ejects_once_a_slot_frees() -> None:
    pool = PoolOutliers(["a", "b"], SETTINGS)  # 50 % of 2 = 1
    fail(pool, "a", 3, now=0)
    fail(pool, "b", 3, now=0)
    assert not pool.is_ejected("b", 0)
    assert pool.record("b", 500, now=31) is not None


def test_panic_mode_uses_every_origin_when_all_would_be_out() -> None:
    pool = PoolOutliers(["solo"], SETTINGS)
    fail(pool, "solo", 3, now=0)
    assert pool.is_ejected("solo", 1)
    usable = pool.usable(["solo"], now=1)
    assert usable.panic and usable.origins == ["solo"]


def test_ejected_origins_are_left_out_while_others_remain() -> None:
    pool = PoolOutliers(["a", "b", "c"], SETTINGS)
    fail(pool, "b", 3, now=0)
    usable = pool.usable(["a", "b", "c"], now=5)
    assert usable.origins == ["a", "c"] and not usable.panic
    assert pool.recovered_at("b", 5) is None and pool.recovered_at("b", 40) == 30


def test_slow_start_ramps_a_recovered_origin_to_full_weight() -> None:
    assert effective_weight(1.0, recovered_at=100, window=60, now=100) == pytest.approx(0.1)
    assert effective_weight(1.0, recovered_at=100, window=60, now=130) == pytest.approx(0.5)
    assert effective_weight(0.5, recovered_at=100, window=60, now=145) == pytest.approx(0.375)
    assert effective_weight(1.0, recovered_at=100, window=60, now=160) == 1.0


def test_slow_start_off_or_never_ejected_means_full_weight() -> None:
    assert effective_weight(0.8, recovered_at=100, window=0, now=100) == 0.8
    assert effective_weight(0.8, recovered_at=None, window=60, now=100) == 0.8
