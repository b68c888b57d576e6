"""Small, feature-shaped protocols for state that several edge processes may have to share.

Each protocol has a memory implementation (``state/memory.py``) and may have others (Redis);
every implementation must pass the same contract suite in ``tests/contract/``. Times are
passed in (``now``, float seconds on a clock every sharer agrees on, i.e. wall time), so the
arithmetic is testable without sleeping.

    WindowCounter   rate-limit counters: a sliding-window estimate over two fixed windows,
                    plus a per-key "mitigated until" deadline (spec §7.3 mitigation_timeout)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WindowSample:
    """The two fixed windows around ``now`` for one key.

    ``start`` is the start of the current window (a multiple of the period), ``current`` the
    hits in it and ``previous`` the hits in the window just before.
    """

    start: float
    current: int
    previous: int

    def estimate(self, period: float, now: float) -> float:
        """Hits in the ``period`` seconds up to ``now``, assuming the previous window's hits
        were spread evenly: the part of it still inside the sliding window counts pro rata."""
        elapsed = min(max((now - self.start) / period, 0.0), 1.0)
        return self.previous * (1.0 - elapsed) + self.current


def window_start(period: float, now: float) -> float:
    """Start of the fixed window of length ``period`` that contains ``now``."""
    return math.floor(now / period) * period


def seconds_until_below(sample: WindowSample, period: float, limit: int, now: float) -> float:
    """How long until one more hit would keep the estimate at or under ``limit``, if no other
    hit arrives meanwhile (the ``Retry-After`` of a throttled request). 0 when it already would.
    """
    budget = limit - 1  # what the estimate must fall to before one more hit fits
    if budget < 0:
        return period
    if sample.estimate(period, now) <= budget:
        return 0.0
    end = sample.start + period
    if sample.current <= budget:
        # Within this window: previous * (1 - f) + current <= budget.
        fraction = 1.0 - (budget - sample.current) / sample.previous
        return max(sample.start + fraction * period - now, 0.0)
    # In the next window the current hits become "previous"; nothing new is counted yet.
    fraction = 1.0 - budget / sample.current
    return max(end + fraction * period - now, 0.0)


class WindowCounter(Protocol):
    """Sliding-window hit counters keyed by strings.

    Implementations keep, per key, the hit counts of the current and previous fixed window
    of ``period`` seconds (windows start at multiples of the period) and a mitigation deadline.
    Keys are opaque; a caller puts the rule and its characteristics in them.
    """

    async def sample(self, key: str, period: float, now: float) -> WindowSample:
        """The windows around ``now`` without counting anything."""
        ...

    async def add(self, key: str, period: float, now: float, amount: int = 1) -> WindowSample:
        """Count ``amount`` hits at ``now``; the windows after counting."""
        ...

    async def add_within(
        self, key: str, period: float, limit: int, now: float
    ) -> tuple[bool, WindowSample]:
        """Count one hit only if the estimate after it stays at or under ``limit``, atomically.

        Returns whether it was counted and the windows (after counting, when it was).
        """
        ...

    async def mitigate(self, key: str, until: float) -> None:
        """Remember that ``key`` is mitigated until ``until`` (a later deadline wins)."""
        ...

    async def mitigated_until(self, key: str, now: float) -> float | None:
        """The deadline set by ``mitigate`` if it is still after ``now``, else None."""
        ...
