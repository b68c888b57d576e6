"""Passive outlier detection on real traffic, and slow start for recovered origins [ours].

An origin that answers ``consecutive_failures`` requests in a row with a failure status is
ejected for ``base_ejection x n`` (n = its ejection count, capped at ``max_ejection``). At most
``max_ejection_percent`` of a pool is out at once (at least one origin may be). When every
candidate would be out, all are used (panic mode) rather than none. Pure: state + ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from originguard.health.settings import OutlierSettings


@dataclass(frozen=True, slots=True)
class Ejection:
    origin: str
    until: float
    duration: float
    count: int


@dataclass(frozen=True, slots=True)
class Usable:
    """The origins a request may use, and whether panic mode put ejected ones back."""

    origins: list[str]
    panic: bool = False


@dataclass(slots=True)
class _Record:
    failures: int = 0
    ejections: int = 0
    ejected_until: float = -math.inf


class PoolOutliers:
    """Outlier state for one pool's origins."""

    def __init__(self, origins: Sequence[str], settings: OutlierSettings) -> None:
        self._settings = settings
        self._records = {origin: _Record() for origin in origins}

    @property
    def settings(self) -> OutlierSettings:
        return self._settings

    @property
    def origins(self) -> list[str]:
        return list(self._records)

    def ejected_until(self, origin: str) -> float | None:
        """When the origin's current or last ejection ends, None if it was never ejected."""
        entry = self._records.get(origin)
        return None if entry is None or entry.ejections == 0 else entry.ejected_until

    def record(self, origin: str, status: int, now: float) -> Ejection | None:
        """Count one real response; return an ejection if this one tipped the origin over."""
        entry = self._records.get(origin)
        if entry is None or not self._settings.enabled:
            return None
        if not self._settings.is_failure(status):
            entry.failures = 0
            return None
        entry.failures += 1
        if entry.failures < self._settings.consecutive_failures or self.is_ejected(origin, now):
            return None
        if self.ejected_count(now) >= self.max_ejected:
            return None  # pool share cap reached; the streak stays and may eject later
        if now - entry.ejected_until > self._settings.max_ejection:
            entry.ejections = 0  # stayed well for a full max_ejection: start again from base
        entry.ejections += 1
        entry.failures = 0
        duration = min(self._settings.base_ejection * entry.ejections, self._settings.max_ejection)
        entry.ejected_until = now + duration
        return Ejection(origin, entry.ejected_until, duration, entry.ejections)

    def reinstate(self, origin: str, now: float) -> None:
        """End an ejection early [ours]: an active check just saw the origin recover, which is
        fresher evidence than the failures that ejected it. Slow start ramps from ``now``."""
        entry = self._records.get(origin)
        if entry is not None and now < entry.ejected_until:
            entry.ejected_until = now
            entry.failures = 0

    @property
    def max_ejected(self) -> int:
        share = len(self._records) * self._settings.max_ejection_percent / 100.0
        return max(1, math.floor(share))

    def is_ejected(self, origin: str, now: float) -> bool:
        entry = self._records.get(origin)
        return entry is not None and now < entry.ejected_until

    def ejected_count(self, now: float) -> int:
        return sum(1 for entry in self._records.values() if now < entry.ejected_until)

    def recovered_at(self, origin: str, now: float) -> float | None:
        """When the origin's last ejection ended (for slow start), or None."""
        entry = self._records.get(origin)
        if entry is None or entry.ejections == 0 or now < entry.ejected_until:
            return None
        return entry.ejected_until

    def usable(self, candidates: Sequence[str], now: float) -> Usable:
        """Drop ejected origins from ``candidates``; if none is left, use them all (panic)."""
        kept = [origin for origin in candidates if not self.is_ejected(origin, now)]
        if kept or not candidates:
            return Usable(kept)
        return Usable(list(candidates), panic=True)


def effective_weight(
    weight: float,
    recovered_at: float | None,
    window: float,
    now: float,
    min_fraction: float = 0.1,
) -> float:
    """Slow start: ramp linearly from ``min_fraction`` of ``weight`` to all of it in ``window``."""
    if window <= 0 or recovered_at is None or now >= recovered_at + window:
        return weight
    progress = max(0.0, now - recovered_at) / window
    return weight * max(min_fraction, progress)
