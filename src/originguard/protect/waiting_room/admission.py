"""Admission: who enters the origin, who waits, and where (spec §9.3).

`decide` is the room's whole policy as one function of (settings, ticket, state, now). The shared
part — counting sessions, the per-minute admissions, the queue — sits behind `RoomState`, whose
one call per request checks and updates together: in memory without an `await` in between, in
Redis as one Lua script. That is what keeps `total_active_users` and `new_users_per_minute`
honest when many requests race.

FIFO is by bucket (the minute a visitor first met a queueing room): a visitor may enter only when
no one from an earlier bucket is still holding a place, abandoned places included until their
5-minute grace ends (§9.3). Within the head bucket, whoever asks first while a slot is free gets
it. Random draws give each queued visitor one draw per refresh, weighted by minutes waited, so
earlier arrivals have better odds. A draw or FIFO attempt happens at most once per refresh
interval: reloading faster does not buy a better chance (§9.4 lastUpdated).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Literal, Protocol

from .settings import Phase, RoomSettings, phase_at
from .ticket import QUEUE_GRACE, Ticket, TicketState

MINUTE = 60.0
# spec §9.3: the queue page refreshes every 20 s.
REFRESH_INTERVAL = 20.0
# Admission and departure rates are measured over the last complete minutes.
RATE_WINDOW_MINUTES = 5
# spec §9.4: an estimate beyond a day is shown as "greater than a day" (queueIsFull).
MAX_KNOWN_WAIT_MINUTES = 24 * 60
VISITOR_ID_BYTES = 16

AdmittingMethod = Literal["fifo", "random", "passthrough"]
PassReason = Literal["suspended", "bypass", "passthrough"]


def minute_of(now: float) -> int:
    """The bucket a visitor arriving at `now` belongs to."""
    return int(now // MINUTE)


# ---------------------------------------------------------------------------------------------
# The state protocol: one atomic call per request.


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is asking, as far as their (verified) ticket says."""

    id: bytes
    bucket: int
    accepted_at: float | None  # set when the visitor holds a valid admitted ticket


@dataclass(frozen=True, slots=True)
class Limits:
    """What the room allows right now (the phase, reduced to what the state must know)."""

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
    admission_rate: float  # admissions per minute, measured
    departure_rate: float  # sessions ended per minute, measured


@dataclass(frozen=True, slots=True)
class RoomStats:
    """Counts for metrics, the admin API and the status endpoint."""

    active: int
    queued: int
    admitted_this_minute: int
    admission_rate: float
    departure_rate: float


class RoomState(Protocol):
    """Shared room state. Each call is atomic: a check and its update never straddle an await."""

    async def admit_or_queue(
        self, room: bytes, visitor: Visitor, limits: Limits, now: float
    ) -> Placement: ...

    async def stats(self, room: bytes, now: float) -> RoomStats: ...

    def touch(self, room: bytes, visitor: bytes, limits: Limits, now: float) -> bool:
        """Count activity of an admitted visitor: renew their live session, without waiting.

        The hot path of every admitted request. False when the state holds no live session for
        the visitor (after a restart, or once it lapsed): the caller then asks
        `admit_or_queue`. A shared implementation records renewals locally and flushes them in
        batches; a session's expiry is never earlier than a renewal the caller was told of.
        """
        ...


# ---------------------------------------------------------------------------------------------
# The in-memory implementation.


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
class _Room:
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

    def start_session(self, visitor: bytes, accepted_at: float, limits: Limits, now: float) -> None:
        expires_at = (now if limits.session_renewal else accepted_at) + limits.session_duration
        self.sessions[visitor] = _Session(accepted_at, expires_at)
        heapq.heappush(self.session_deadlines, (expires_at, visitor))

    def renew(self, session: _Session, limits: Limits, now: float) -> None:
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


class MemoryRoomState:
    """`RoomState` for one process. Every method body runs without awaiting: it is atomic."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rooms: dict[bytes, _Room] = {}
        self._rng = rng if rng is not None else random.Random()

    async def admit_or_queue(
        self, room: bytes, visitor: Visitor, limits: Limits, now: float
    ) -> Placement:
        return self.admit_or_queue_now(room, visitor, limits, now)

    async def stats(self, room: bytes, now: float) -> RoomStats:
        state = self._room(room)
        state.expire(now)
        return RoomStats(
            active=len(state.sessions),
            queued=len(state.places),
            admitted_this_minute=state.admissions.get(minute_of(now), 0),
            admission_rate=state.rate(state.admissions, now),
            departure_rate=state.rate(state.departures, now),
        )

    def touch(self, room: bytes, visitor: bytes, limits: Limits, now: float) -> bool:
        state = self._rooms.get(room)
        if state is None:
            return False
        session = state.sessions.get(visitor)
        if session is None or session.expires_at <= now:
            return False  # lapsed: admit_or_queue decides (and counts the departure)
        state.renew(session, limits, now)
        return True

    def admit_or_queue_now(
        self, room: bytes, visitor: Visitor, limits: Limits, now: float
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

    def _may_enter(self, state: _Room, limits: Limits, bucket: int, now: float) -> bool:
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
        self, state: _Room, limits: Limits, visitor: bytes, now: float, *, admitted: bool, new: bool
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

    def _room(self, room: bytes) -> _Room:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        return state


# ---------------------------------------------------------------------------------------------
# Decisions.


@dataclass(frozen=True, slots=True)
class Wait:
    """Estimated wait in minutes (spec §9.3): FIFO from position, random as percentiles."""

    known: bool
    minutes: int = 0
    p25: int = 0
    p50: int = 0
    p75: int = 0
    queue_is_full: bool = False


UNKNOWN_WAIT = Wait(known=False)


@dataclass(frozen=True, slots=True)
class Admit:
    """Let the request through; set the (new or renewed) ticket."""

    ticket: Ticket
    is_new: bool


@dataclass(frozen=True, slots=True)
class Queue:
    """Answer with the queue page (or JSON) at queueing_status_code; set the ticket."""

    ticket: Ticket
    position: int
    queued: int
    wait: Wait
    last_updated: float
    phase: Phase


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer with the static reject page; no ticket, no refresh."""

    phase: Phase


@dataclass(frozen=True, slots=True)
class Pass:
    """The room does not apply (suspended, bypass) or only counts (passthrough)."""

    reason: PassReason
    ticket: Ticket | None = None


Decision = Admit | Queue | Reject | Pass


def new_visitor_id() -> bytes:
    return secrets.token_bytes(VISITOR_ID_BYTES)


async def decide(
    settings: RoomSettings,
    ticket: Ticket | None,
    state: RoomState,
    now: float,
    *,
    path: str = "/",
    client: IPv4Address | IPv6Address | None = None,
    new_id: Callable[[], bytes] = new_visitor_id,
) -> Decision:
    """The room's answer to one request. `ticket` must already be verified (`ticket.read`)."""
    if settings.suspended:
        return Pass("suspended")
    if settings.bypass.is_bypassed(path, client):
        # spec §9.5: bypassed traffic gets no room treatment at all, not even counting.
        return Pass("bypass")
    phase = phase_at(settings, now)
    if phase.queueing_method == "reject":
        return Reject(phase)
    if ticket is None:
        visitor = Visitor(new_id(), minute_of(now), None)
    else:
        visitor = Visitor(ticket.visitor_id, ticket.bucket, ticket.accepted_at)
    placement = await state.admit_or_queue(settings.room_id, visitor, limits_of(phase, now), now)
    if placement.admitted:
        admitted = Ticket(
            room_id=settings.room_id,
            visitor_id=visitor.id,
            bucket=visitor.bucket,
            state=TicketState.ADMITTED,
            accepted_at=placement.accepted_at if placement.accepted_at is not None else now,
            last_seen=now,
        )
        if phase.queueing_method == "passthrough":
            return Pass("passthrough", admitted)
        return Admit(admitted, is_new=placement.is_new_admission)
    queued = Ticket(
        room_id=settings.room_id,
        visitor_id=visitor.id,
        bucket=placement.bucket,
        state=TicketState.QUEUED,
        accepted_at=None,
        last_seen=now,
    )
    return Queue(
        ticket=queued,
        position=placement.position,
        queued=placement.queued,
        wait=estimate_wait(placement, phase),
        last_updated=placement.attempted_at,
        phase=phase,
    )


def limits_of(phase: Phase, now: float) -> Limits:
    """What the state needs to know of the phase in force (reject never reaches the state)."""
    method: AdmittingMethod = "fifo"
    if phase.queueing_method != "reject":
        method = phase.queueing_method
    event = phase.event
    shuffle = None
    if event is not None and event.shuffle_at_event_start and now >= event.starts_at:
        shuffle = f"{event.name}@{event.starts_at}"
    return Limits(
        total_active_users=phase.total_active_users,
        new_users_per_minute=phase.new_users_per_minute,
        session_duration=phase.session_duration,
        session_renewal=phase.session_renewal,
        queueing_method=method,
        may_admit=phase.may_admit,
        shuffle_event=shuffle,
    )


def estimate_wait(placement: Placement, phase: Phase) -> Wait:
    """spec §9.3: visitors ahead ÷ rate of users leaving the queue for the site, per minute.

    The rate is the measured admission rate; before any admission was measured, the measured
    departure rate (a freed seat is the next admission), capped at new_users_per_minute. With
    queue_all or a pre-queue nobody leaves, so the wait is unknown.
    """
    if not phase.may_admit:
        return UNKNOWN_WAIT
    rate = placement.admission_rate
    if rate <= 0:
        rate = min(placement.departure_rate, float(phase.new_users_per_minute))
    if rate <= 0:
        return UNKNOWN_WAIT
    if phase.queueing_method == "random":
        # A random queue releases anyone at any time: spread over the whole queue.
        p25, p50, p75 = (
            max(1, math.ceil(share * placement.queued / rate)) for share in (0.25, 0.5, 0.75)
        )
        if p50 > MAX_KNOWN_WAIT_MINUTES:
            return Wait(known=False, queue_is_full=True)
        return Wait(known=True, minutes=p50, p25=p25, p50=p50, p75=p75)
    minutes = max(1, math.ceil(placement.position / rate))
    if minutes > MAX_KNOWN_WAIT_MINUTES:
        return Wait(known=False, queue_is_full=True)
    return Wait(known=True, minutes=minutes)
