"""Health transitions, pool health and pool steering: pure functions of (input, now).

Spec §6.2-§6.4: ``consecutive_up/down`` hysteresis (0 = flip on the first result), "unknown"
until a first result and counted as down while monitored, pool Healthy/Degraded/Critical by
``minimum_origins``, failover over ordered pools, the fallback pool whose health is ignored,
and "no pool" when even the fallback is disabled (the edge then answers 530).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from originguard.health.probe import FailureReason, ProbeResult
from originguard.health.settings import LoadBalancerSettings, PoolPolicy


class Health(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class PoolHealth(StrEnum):
    HEALTHY = "healthy"  # every origin healthy
    DEGRADED = "degraded"  # some origin down, still >= minimum_origins healthy: serves
    CRITICAL = "critical"  # fewer than minimum_origins healthy: no traffic unless fallback
    UNKNOWN = "unknown"  # monitored, no result yet: counts as down
    UNMONITORED = "unmonitored"  # no monitor: health is ignored, always serves
    DISABLED = "disabled"  # enabled: false: no traffic, no probes


SERVING = frozenset({PoolHealth.HEALTHY, PoolHealth.DEGRADED, PoolHealth.UNMONITORED})


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """One probe result as kept in an origin's history (shown by the admin API)."""

    at: float
    ok: bool
    latency: float
    status: int | None
    reason: FailureReason | None


@dataclass(frozen=True, slots=True)
class Transition:
    """An origin's health flipped; feeds state-change alerts and logs."""

    old: Health
    new: Health
    at: float
    reason: FailureReason | None


def next_health(
    state: Health, streak: int, ok: bool, consecutive_up: int, consecutive_down: int
) -> tuple[Health, int]:
    """Apply one result. ``streak`` counts same-direction results against the current state.

    Returns the new state and streak. 0 and 1 both mean "flip on the first result". From
    UNKNOWN a failure flips at once (unknown already counts as down), while turning healthy
    needs ``consecutive_up`` successes like any other recovery.
    """
    if ok:
        if state is Health.HEALTHY:
            return state, 0
        streak += 1
        if streak >= max(1, consecutive_up):
            return Health.HEALTHY, 0
        return state, streak
    if state is Health.UNHEALTHY:
        return state, 0
    if state is Health.UNKNOWN:
        return Health.UNHEALTHY, 0
    streak += 1
    if streak >= max(1, consecutive_down):
        return Health.UNHEALTHY, 0
    return state, streak


@dataclass(slots=True)
class OriginHealth:
    """An origin's monitored health with hysteresis and its last ``history`` results."""

    consecutive_up: int = 0
    consecutive_down: int = 0
    history_size: int = 20
    state: Health = Health.UNKNOWN
    streak: int = 0
    changed_at: float | None = None
    last_reason: FailureReason | None = None
    history: deque[CheckRecord] = field(default_factory=deque)

    def observe(self, result: ProbeResult, now: float) -> Transition | None:
        """Record a probe result; return the transition if the state flipped."""
        self.history.append(
            CheckRecord(now, result.ok, result.latency, result.status, result.reason)
        )
        while len(self.history) > self.history_size:
            self.history.popleft()
        if not result.ok:
            self.last_reason = result.reason
        old = self.state
        self.state, self.streak = next_health(
            old, self.streak, result.ok, self.consecutive_up, self.consecutive_down
        )
        if self.state is old:
            return None
        self.changed_at = now
        return Transition(old, self.state, now, None if result.ok else result.reason)

    @property
    def is_healthy(self) -> bool:
        return self.state is Health.HEALTHY


def pool_health(
    origins: Iterable[Health], minimum_origins: int, *, monitored: bool, enabled: bool = True
) -> PoolHealth:
    """Spec §6.3 pool health from its origins' states."""
    if not enabled:
        return PoolHealth.DISABLED
    if not monitored:
        return PoolHealth.UNMONITORED
    states = list(origins)
    healthy = sum(1 for state in states if state is Health.HEALTHY)
    if healthy >= minimum_origins and states:
        return PoolHealth.HEALTHY if healthy == len(states) else PoolHealth.DEGRADED
    if all(state is Health.UNKNOWN for state in states):
        return PoolHealth.UNKNOWN
    return PoolHealth.CRITICAL


def usable_origins(
    origins: Sequence[str], health: Mapping[str, Health], *, monitored: bool
) -> list[str]:
    """Origins that may take traffic: all when unmonitored, else the healthy ones."""
    if not monitored:
        return list(origins)
    return [origin for origin in origins if health.get(origin) is Health.HEALTHY]


class LbHealth(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class PoolChoice:
    """Steering's decision. ``pool`` None means no pool may serve: answer 530 (spec §6.3)."""

    pool: str | None
    fallback: bool = False

    @property
    def is_unavailable(self) -> bool:
        return self.pool is None


def lb_health(lb: LoadBalancerSettings, health: Mapping[str, PoolHealth]) -> LbHealth:
    """Spec §6.3: healthy = all pools serve; critical = none does (fallback in use)."""
    serving = [health.get(pool.name) in SERVING for pool in lb.pools]
    if all(serving):
        return LbHealth.HEALTHY
    return LbHealth.DEGRADED if any(serving) else LbHealth.CRITICAL


def select_pool(
    lb: LoadBalancerSettings,
    health: Mapping[str, PoolHealth],
    in_flight: Mapping[str, int],
    rng: random.Random,
) -> PoolChoice:
    """Pick the pool for one request (spec §6.4 ``off``, ``random``, least outstanding)."""
    candidates = [pool for pool in lb.pools if health.get(pool.name) in SERVING]
    if not candidates:
        fallback = lb.fallback
        # spec §6.3: the fallback's health is never considered, only whether it is enabled.
        if fallback.enabled and health.get(fallback.name) is not PoolHealth.DISABLED:
            return PoolChoice(fallback.name, fallback=True)
        return PoolChoice(None)
    if lb.steering == "off":
        return PoolChoice(candidates[0].name)
    if lb.steering == "random":
        weights = [pool.weight for pool in candidates]
    else:
        # spec §6.4: weights scaled down in proportion to each pool's in-flight requests.
        weights = [pool.weight / (1 + max(0, in_flight.get(pool.name, 0))) for pool in candidates]
    return PoolChoice(_weighted(candidates, weights, rng).name)


def _weighted(
    pools: Sequence[PoolPolicy], weights: Sequence[float], rng: random.Random
) -> PoolPolicy:
    total = sum(weights)
    if total <= 0:
        return pools[0]  # every weight 0: keep failover order rather than refuse traffic
    point = rng.random() * total
    for pool, weight in zip(pools, weights, strict=True):
        point -= weight
        if point < 0:
            return pool
    return pools[-1]
