"""Small, feature-shaped protocols for state that several edge processes may have to share.

Each protocol has a memory implementation (``state/memory.py``) and may have others (Redis);
every implementation must pass the same contract suite in ``tests/contract/``. Times are
passed in (``now``, float seconds on a clock every sharer agrees on, i.e. wall time), so the
arithmetic is testable without sleeping.

    WindowCounter   rate-limit counters: a sliding-window estimate over two fixed windows,
                    plus a per-key "mitigated until" deadline (spec §7.3 mitigation_timeout)
    AdmissionQueue  waiting-room seats and line: who holds a session, who waits in which
                    arrival-minute bucket, admissions per minute (spec §9.3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol


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


# ---------------------------------------------------------------------------------------------
# AdmissionQueue: the waiting room's shared state (spec §9.3).

MINUTE = 60.0
# spec §9.2: a queued visitor's place is held 5 minutes after their last refresh.
QUEUE_GRACE = 5 * MINUTE
# spec §9.3: the queue page refreshes every 20 s; a queued visitor gets at most one admission
# attempt (FIFO turn or random draw) per interval, so reloading faster buys no better chance.
REFRESH_INTERVAL = 20.0
# Admission and departure rates are averaged over the last complete minutes.
RATE_WINDOW_MINUTES = 5

AdmittingMethod = Literal["fifo", "random", "passthrough"]


def minute_of(now: float) -> int:
    """The arrival bucket (FIFO group) of a visitor first seen at ``now``: its epoch minute."""
    return int(now // MINUTE)


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is asking, as far as their (verified) ticket says."""

    id: bytes
    bucket: int
    accepted_at: float | None  # set when the visitor holds a valid admitted ticket


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """What the room allows right now: its phase, reduced to what the state must know."""

    total_active_users: int
    new_users_per_minute: int
    session_duration: float
    session_renewal: bool
    queueing_method: AdmittingMethod
    may_admit: bool  # False under queue_all and during a pre-queue
    shuffle_event: str | None = None  # an event whose pre-queue is shuffled once, at its start


@dataclass(frozen=True, slots=True)
class Placement:
    """The state's answer: admitted, or queued at a position; plus the counts behind it."""

    admitted: bool
    is_new_admission: bool  # counted against new_users_per_minute
    bucket: int
    accepted_at: float | None
    position: int  # 1-based place in the queue; 0 when admitted
    queued: int
    active: int
    attempted_at: float  # last admission attempt: the page's "last updated"
    admission_rate: float  # admissions per minute, measured (queued answers only)
    departure_rate: float  # sessions ended per minute, measured (queued answers only)


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    """A room's counts for metrics, the admin API and the status endpoint."""

    active: int
    queued: int
    admitted_this_minute: int
    admission_rate: float
    departure_rate: float


class AdmissionQueue(Protocol):
    """Seats and line of waiting rooms, keyed by room id (opaque bytes).

    Every call checks and updates together: in memory with no ``await`` in between, in Redis as
    one script. That is what keeps ``total_active_users`` and ``new_users_per_minute`` exact
    when many requests race (issue 6: never more active users than seats, never more new
    admissions in a calendar minute than the threshold). The contract, tested for every
    implementation in ``tests/contract/test_admission_queue.py``:

    - A visitor with a live session stays admitted, renewed (unless ``session_renewal`` is off)
      to ``now + session_duration``; it is not a new admission.
    - Anyone else is admitted, when ``may_admit``, if a seat is free, this minute's admissions
      are under ``new_users_per_minute`` and (fifo) no earlier bucket holds a place, or (random)
      their draw, weighted by minutes waited, succeeds; ``passthrough`` admits everyone.
      Otherwise they take (or keep) a place in their bucket.
    - A visitor holding a valid admitted ticket the state does not know (a restart) gets a seat
      back if one is free, not counted as a new admission.
    - A queued visitor gets one attempt per ``REFRESH_INTERVAL``; a place not refreshed for
      ``QUEUE_GRACE`` is dropped; an ended session counts as a departure in its minute.
    - ``shuffle_event`` reorders the line once per event name into random buckets, oldest
      first, released ``new_users_per_minute`` at a time.
    """

    async def admit_or_queue(
        self, room: bytes, visitor: Visitor, limits: AdmissionLimits, now: float
    ) -> Placement: ...

    async def stats(self, room: bytes, now: float) -> AdmissionStats: ...

    def touch(self, room: bytes, visitor: bytes, limits: AdmissionLimits, now: float) -> bool:
        """Count activity of an admitted visitor: renew their live session, without waiting.

        The hot path of every admitted request. False when the state holds no live session for
        the visitor (after a restart, or once it lapsed): the caller then asks
        ``admit_or_queue``. A shared implementation records renewals locally and flushes them
        in batches; a session's expiry is never earlier than a renewal the caller was told of.
        """
        ...
