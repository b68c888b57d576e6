"""In-process implementations of the ``state/base.py`` protocols (one edge process).

    MemoryWindowCounter    WindowCounter in a dict
    MemoryAdmissionQueue   AdmissionQueue: sessions, places in arrival-minute buckets, counters

Each method mutates its dictionaries synchronously and never awaits, so two exchanges on
the event loop cannot interleave between a check and an update.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from dataclasses import dataclass, field

from originguard.state.base import (
    QUEUE_GRACE,
    RATE_WINDOW_MINUTES,
    REFRESH_INTERVAL,
    AdmissionLimits,
    AdmissionStats,
    Placement,
    Visitor,
    WindowSample,
    minute_of,
    window_start,
)

# Bound on distinct keys (rule x characteristics); past it, keys idle for two periods are
# dropped first and then the oldest ones (rule G7: bounded everything).
MAX_KEYS = 1_000_000


class _Windows:
    __slots__ = ("start", "current", "previous", "period")

    def __init__(self, start: float, period: float) -> None:
        self.start = start
        self.current = 0
        self.previous = 0
        self.period = period

    def roll(self, period: float, now: float) -> None:
        start = window_start(period, now)
        if start == self.start and period == self.period:
            return
        if period == self.period and start - self.start == period:
            self.previous = self.current
        else:  # more than one window passed (or the rule's period changed): nothing recent
            self.previous = 0
        self.current = 0
        self.start = start
        self.period = period

    def snapshot(self) -> WindowSample:
        return WindowSample(self.start, self.current, self.previous)


class MemoryWindowCounter:
    """``WindowCounter`` in a dict: O(1) per hit, idle keys swept as the dict grows."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._windows: dict[str, _Windows] = {}
        self._mitigated: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._windows)

    async def sample(self, key: str, period: float, now: float) -> WindowSample:
        windows = self._windows.get(key)
        if windows is None:
            return WindowSample(window_start(period, now), 0, 0)
        windows.roll(period, now)
        return windows.snapshot()

    async def add(self, key: str, period: float, now: float, amount: int = 1) -> WindowSample:
        windows = self._get(key, period, now)
        windows.current += amount
        return windows.snapshot()

    async def add_within(
        self, key: str, period: float, limit: int, now: float
    ) -> tuple[bool, WindowSample]:
        windows = self._get(key, period, now)
        before = windows.snapshot()
        if before.estimate(period, now) + 1 > limit:
            return False, before
        windows.current += 1
        return True, windows.snapshot()

    async def mitigate(self, key: str, until: float) -> None:
        if until > self._mitigated.get(key, 0.0):
            self._mitigated[key] = until

    async def mitigated_until(self, key: str, now: float) -> float | None:
        until = self._mitigated.get(key)
        if until is None:
            return None
        if until <= now:
            del self._mitigated[key]
            return None
        return until

    def _get(self, key: str, period: float, now: float) -> _Windows:
        windows = self._windows.get(key)
        if windows is None:
            if len(self._windows) >= self.max_keys:
                self._sweep(now)
            windows = self._windows[key] = _Windows(window_start(period, now), period)
        else:
            windows.roll(period, now)
        return windows

    def _sweep(self, now: float) -> None:
        """Drop keys whose windows can no longer affect an estimate; if none, the oldest."""
        stale = [k for k, w in self._windows.items() if now - w.start >= 2 * w.period]
        for key in stale:
            del self._windows[key]
        for key in [k for k, until in self._mitigated.items() if until <= now]:
            del self._mitigated[key]
        if len(self._windows) >= self.max_keys:
            # dicts keep insertion order: the first keys are the longest-lived.
            for key in list(self._windows)[: max(1, self.max_keys // 10)]:
                del self._windows[key]


# ---------------------------------------------------------------------------------------------
# AdmissionQueue


class _Bucket:
    """Queued visitors of one bucket in arrival order, with O(log n) 'how many are ahead'."""

    __slots__ = ("_tree", "live")

    def __init__(self) -> None:
        self._tree: list[int] = [0]  # Fenwick tree over arrival slots, 1-based
        self.live = 0

    def append(self) -> int:
        index = len(self._tree)
        low = index & -index
        # The new node covers slots (index - low, index]: itself plus what came before it.
        self._tree.append(1 + self._prefix(index - 1) - self._prefix(index - low))
        self.live += 1
        return index

    def remove(self, index: int) -> None:
        self.live -= 1
        while index < len(self._tree):
            self._tree[index] -= 1
            index += index & -index

    def ahead(self, index: int) -> int:
        return self._prefix(index - 1)

    def _prefix(self, index: int) -> int:
        total = 0
        while index > 0:
            total += self._tree[index]
            index -= index & -index
        return total


@dataclass(slots=True)
class _Place:
    bucket: int
    index: int
    last_refresh: float
    last_attempt: float


@dataclass(slots=True)
class _Session:
    accepted_at: float
    expires_at: float


@dataclass(slots=True)
class _QueueRoom:
    sessions: dict[bytes, _Session] = field(default_factory=dict)
    session_deadlines: list[tuple[float, bytes]] = field(default_factory=list)
    places: dict[bytes, _Place] = field(default_factory=dict)
    place_deadlines: list[tuple[float, bytes]] = field(default_factory=list)
    buckets: dict[int, _Bucket] = field(default_factory=dict)
    bucket_order: list[int] = field(default_factory=list)  # sorted keys of live buckets
    admissions: dict[int, int] = field(default_factory=dict)  # minute -> new admissions
    departures: dict[int, int] = field(default_factory=dict)  # minute -> sessions ended
    shuffled: set[str] = field(default_factory=set)
    pruned_at: int = 0  # minute of the last counter pruning

    def expire(self, now: float) -> None:
        # Each live session and place has one heap entry. Renewals only move `expires_at` /
        # `last_refresh`; an entry that comes due early is pushed back with the later deadline,
        # so the heaps stay as large as the room, not as the number of requests it served.
        while self.session_deadlines and self.session_deadlines[0][0] <= now:
            _, visitor = heapq.heappop(self.session_deadlines)
            session = self.sessions.get(visitor)
            if session is None:
                continue
            if session.expires_at <= now:
                del self.sessions[visitor]
                _bump(self.departures, minute_of(session.expires_at))
            else:
                heapq.heappush(self.session_deadlines, (session.expires_at, visitor))
        while self.place_deadlines and self.place_deadlines[0][0] <= now:
            _, visitor = heapq.heappop(self.place_deadlines)
            place = self.places.get(visitor)
            if place is None:
                continue
            # spec §9.2: a place is held 5 min after the last refresh, then dropped.
            if place.last_refresh + QUEUE_GRACE <= now:
                self.leave_queue(visitor)
            else:
                heapq.heappush(self.place_deadlines, (place.last_refresh + QUEUE_GRACE, visitor))
        current = minute_of(now)
        if current != self.pruned_at:
            self.pruned_at = current
            oldest = current - RATE_WINDOW_MINUTES - 1
            for counter in (self.admissions, self.departures):
                for minute in [m for m in counter if m < oldest]:
                    del counter[minute]

    def join_queue(self, visitor: bytes, bucket: int, now: float) -> _Place:
        queue = self.buckets.get(bucket)
        if queue is None:
            queue = self.buckets[bucket] = _Bucket()
            bisect.insort(self.bucket_order, bucket)
        place = _Place(bucket, queue.append(), now, -math.inf)
        self.places[visitor] = place
        heapq.heappush(self.place_deadlines, (now + QUEUE_GRACE, visitor))
        return place

    def refresh(self, place: _Place, now: float) -> None:
        place.last_refresh = now  # its heap entry is pushed back when it comes due (expire)

    def leave_queue(self, visitor: bytes) -> None:
        place = self.places.pop(visitor)
        queue = self.buckets[place.bucket]
        queue.remove(place.index)
        if queue.live == 0:
            del self.buckets[place.bucket]
            self.bucket_order.pop(bisect.bisect_left(self.bucket_order, place.bucket))

    def position(self, place: _Place) -> int:
        earlier = 0
        for bucket in self.bucket_order:
            if bucket >= place.bucket:
                break
            earlier += self.buckets[bucket].live
        return earlier + self.buckets[place.bucket].ahead(place.index) + 1

    def start_session(
        self, visitor: bytes, accepted_at: float, limits: AdmissionLimits, now: float
    ) -> None:
        expires_at = (now if limits.session_renewal else accepted_at) + limits.session_duration
        self.sessions[visitor] = _Session(accepted_at, expires_at)
        heapq.heappush(self.session_deadlines, (expires_at, visitor))

    def renew(self, session: _Session, limits: AdmissionLimits, now: float) -> None:
        if not limits.session_renewal:
            return
        session.expires_at = now + limits.session_duration  # heap entry moves lazily

    def shuffle(self, group_size: int, now: float, rng: random.Random) -> None:
        """Lottery at event start: the pre-queue in random order, released group by group."""
        waiting = list(self.places.items())
        rng.shuffle(waiting)
        for visitor, _ in waiting:
            self.leave_queue(visitor)
        groups = math.ceil(len(waiting) / group_size)
        first = minute_of(now) - groups
        for number, (visitor, old) in enumerate(waiting):
            place = self.join_queue(visitor, first + number // group_size, old.last_refresh)
            place.last_attempt = old.last_attempt

    def rate(self, counter: dict[int, int], now: float) -> float:
        current = minute_of(now)
        window = range(current - RATE_WINDOW_MINUTES, current)
        return sum(counter.get(minute, 0) for minute in window) / RATE_WINDOW_MINUTES


def _bump(counter: dict[int, int], minute: int) -> None:
    counter[minute] = counter.get(minute, 0) + 1


class MemoryAdmissionQueue:
    """``AdmissionQueue`` for one process. No method body awaits: each is atomic."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rooms: dict[bytes, _QueueRoom] = {}
        self._rng = rng if rng is not None else random.Random()

    async def admit_or_queue(
        self, room: bytes, visitor: Visitor, limits: AdmissionLimits, now: float
    ) -> Placement:
        return self.admit_or_queue_now(room, visitor, limits, now)

    async def stats(self, room: bytes, now: float) -> AdmissionStats:
        state = self._room(room)
        state.expire(now)
        return AdmissionStats(
            active=len(state.sessions),
            queued=len(state.places),
            admitted_this_minute=state.admissions.get(minute_of(now), 0),
            admission_rate=state.rate(state.admissions, now),
            departure_rate=state.rate(state.departures, now),
        )

    def touch(self, room: bytes, visitor: bytes, limits: AdmissionLimits, now: float) -> bool:
        state = self._rooms.get(room)
        if state is None:
            return False
        session = state.sessions.get(visitor)
        if session is None or session.expires_at <= now:
            return False  # lapsed: admit_or_queue decides (and counts the departure)
        state.renew(session, limits, now)
        return True

    def admit_or_queue_now(
        self, room: bytes, visitor: Visitor, limits: AdmissionLimits, now: float
    ) -> Placement:
        """The synchronous body of `admit_or_queue`: check and update in one step."""
        state = self._room(room)
        state.expire(now)
        if limits.shuffle_event is not None and limits.shuffle_event not in state.shuffled:
            state.shuffled.add(limits.shuffle_event)
            state.shuffle(limits.new_users_per_minute, now, self._rng)

        session = state.sessions.get(visitor.id)
        if session is not None:
            # An admitted visitor costs a dictionary hit: counting activity is all that happens.
            state.renew(session, limits, now)
            return self._placement(state, limits, visitor.id, now, admitted=True, new=False)

        place = state.places.get(visitor.id)
        if place is None and visitor.accepted_at is not None:
            # A valid admitted ticket the state no longer counts (a restart, or a longer session
            # after a settings change): back in if a seat is free, not charged as a new user.
            if limits.may_admit and (
                limits.queueing_method == "passthrough"
                or len(state.sessions) < limits.total_active_users
            ):
                state.start_session(visitor.id, visitor.accepted_at, limits, now)
                return self._placement(state, limits, visitor.id, now, admitted=True, new=False)

        if place is not None:
            state.refresh(place, now)
            if now - place.last_attempt < REFRESH_INTERVAL:
                return self._placement(state, limits, visitor.id, now, admitted=False, new=False)
        bucket = place.bucket if place is not None else visitor.bucket
        if self._may_enter(state, limits, bucket, now):
            if place is not None:
                state.leave_queue(visitor.id)
            state.start_session(visitor.id, now, limits, now)
            _bump(state.admissions, minute_of(now))
            return self._placement(state, limits, visitor.id, now, admitted=True, new=True)
        if place is None:
            place = state.join_queue(visitor.id, bucket, now)
        place.last_attempt = now
        return self._placement(state, limits, visitor.id, now, admitted=False, new=False)

    def _may_enter(
        self, state: _QueueRoom, limits: AdmissionLimits, bucket: int, now: float
    ) -> bool:
        if not limits.may_admit:
            return False
        if limits.queueing_method == "passthrough":
            return True
        if len(state.sessions) >= limits.total_active_users:
            return False
        if state.admissions.get(minute_of(now), 0) >= limits.new_users_per_minute:
            return False
        if not state.bucket_order:
            return True
        head = state.bucket_order[0]
        if limits.queueing_method == "fifo":
            # spec §9.3: a bucket is fully drained before the next one is released.
            return bucket <= head
        # Random: one draw, weighted by minutes waited, so earlier arrivals get more chances.
        current = minute_of(now)
        weight = current - bucket + 1
        heaviest = current - min(head, bucket) + 1
        return self._rng.random() * heaviest < weight

    def _placement(
        self,
        state: _QueueRoom,
        limits: AdmissionLimits,
        visitor: bytes,
        now: float,
        *,
        admitted: bool,
        new: bool,
    ) -> Placement:
        if admitted:
            session = state.sessions[visitor]
            return Placement(
                admitted=True,
                is_new_admission=new,
                bucket=minute_of(now),
                accepted_at=session.accepted_at,
                position=0,
                queued=len(state.places),
                active=len(state.sessions),
                attempted_at=now,
                admission_rate=0.0,  # only a queued visitor needs a wait estimate
                departure_rate=0.0,
            )
        place = state.places[visitor]
        return Placement(
            admitted=False,
            is_new_admission=False,
            bucket=place.bucket,
            accepted_at=None,
            position=state.position(place),
            queued=len(state.places),
            active=len(state.sessions),
            attempted_at=place.last_attempt,
            admission_rate=state.rate(state.admissions, now),
            departure_rate=state.rate(state.departures, now),
        )

    def _room(self, room: bytes) -> _QueueRoom:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _QueueRoom()
        return state
