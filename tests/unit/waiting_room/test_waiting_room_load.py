"""spec §9.3 / issue 6 invariant: 5,000 simulated visitors, minute by minute, no real waiting.

Visitors arrive over 40 minutes with a spike, refresh the queue page every 20 s, some give up,
admitted ones browse for a while and then stop (their session then ends by inactivity). At every
minute boundary the visitors actually holding a valid admitted ticket never exceed
total_active_users, and new admissions in any minute never exceed new_users_per_minute.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections import Counter
from dataclasses import dataclass

from originguard.protect.waiting_room.admission import Admit, Queue, decide
from originguard.protect.waiting_room.settings import RoomSettings, phase_at
from originguard.protect.waiting_room.ticket import Ticket, is_valid
from originguard.state.base import REFRESH_INTERVAL, minute_of
from originguard.state.memory import MemoryAdmissionQueue

T0 = 1_700_000_040.0  # a minute boundary
VISITORS = 5_000
TOTAL = 500
PER_MINUTE = 100


@dataclass
class SimVisitor:
    arrives: float
    gives_up_after: float | None  # seconds of queueing before closing the tab, None = patient
    browses_for: float
    ticket: Ticket | None = None
    queued_since: float | None = None
    admitted_at: float | None = None
    browse_until: float = 0.0


def _population(rng: random.Random) -> list[SimVisitor]:
    crowd = []
    for number in range(VISITORS):
        if number < 3_000:  # the spike: 3,000 visitors in minutes 5–10
            arrives = T0 + rng.uniform(5 * 60, 10 * 60)
        else:
            arrives = T0 + rng.uniform(0, 40 * 60)
        gives_up = rng.uniform(60, 600) if rng.random() < 0.3 else None
        crowd.append(SimVisitor(arrives, gives_up, rng.uniform(60, 480)))
    return crowd


async def _simulate() -> tuple[Counter[int], list[tuple[float, int, int]], list[SimVisitor], int]:
    rng = random.Random(7)
    settings = RoomSettings(
        name="sale",
        host="shop.example",
        total_active_users=TOTAL,
        new_users_per_minute=PER_MINUTE,
        session_duration=300.0,
    )
    state = MemoryAdmissionQueue(rng=random.Random(11))
    crowd = _population(rng)
    # (time, order, kind, visitor): kind 0 = minute tick, 1 = visitor request
    agenda: list[tuple[float, int, int, int]] = []
    for index, visitor in enumerate(crowd):
        heapq.heappush(agenda, (visitor.arrives, index, 1, index))
    for minute in range(0, 120):
        heapq.heappush(agenda, (T0 + minute * 60, -1, 0, minute))

    admissions: Counter[int] = Counter()
    samples: list[tuple[float, int, int]] = []  # (time, visitors holding a seat, state's count)
    admitted_buckets: list[int] = []
    queued_answers = 0
    order = VISITORS
    while agenda:
        now, _, kind, index = heapq.heappop(agenda)
        phase = phase_at(settings, now)
        if kind == 0:
            seated = sum(
                1
                for v in crowd
                if v.ticket is not None
                and v.ticket.is_admitted
                and is_valid(v.ticket, settings, phase, now)
            )
            stats = await state.stats(settings.room_id, now)
            samples.append((now, seated, stats.active))
            continue
        visitor = crowd[index]
        ticket = visitor.ticket
        if ticket is not None and not is_valid(ticket, settings, phase, now):
            ticket = None
        decision = await decide(settings, ticket, state, now)
        follow_up: float | None = None
        if isinstance(decision, Admit):
            visitor.ticket = decision.ticket
            if decision.is_new:
                admissions[minute_of(now)] += 1
                admitted_buckets.append(decision.ticket.bucket)
                visitor.admitted_at = now
                visitor.browse_until = now + visitor.browses_for
            if now + 30 < visitor.browse_until:
                follow_up = now + rng.uniform(20, 60)
        elif isinstance(decision, Queue):
            queued_answers += 1
            visitor.ticket = decision.ticket
            if visitor.queued_since is None:
                visitor.queued_since = now
            patience = visitor.gives_up_after
            if patience is None or now - visitor.queued_since < patience:
                follow_up = now + REFRESH_INTERVAL
        else:
            raise AssertionError(f"unexpected decision {decision!r}")
        if follow_up is not None:
            order += 1
            heapq.heappush(agenda, (follow_up, order, 1, index))

    # FIFO by bucket: nobody from an earlier minute is admitted after someone from a later one.
    assert admitted_buckets == sorted(admitted_buckets)
    return admissions, samples, crowd, queued_answers


def test_five_thousand_visitors_never_exceed_active_or_per_minute_limits() -> None:
    admissions, samples, crowd, queued_answers = asyncio.run(_simulate())

    assert queued_answers > 10_000, "the spike must actually build a queue"
    assert max(admissions.values()) == PER_MINUTE, "the per-minute limit must be reached"
    for minute, count in sorted(admissions.items()):
        assert count <= PER_MINUTE, f"minute {minute}: {count} new admissions"
    assert max(seated for _, seated, _ in samples) == TOTAL, "the seat limit must be reached"
    for moment, seated, counted in samples:
        assert seated <= TOTAL, f"t={moment - T0:.0f}s: {seated} visitors hold a seat"
        assert counted <= TOTAL, f"t={moment - T0:.0f}s: state counts {counted} active"

    patient = [v for v in crowd if v.gives_up_after is None]
    assert all(v.admitted_at is not None for v in patient), "every patient visitor gets in"
    gave_up = [v for v in crowd if v.gives_up_after is not None and v.admitted_at is None]
    assert gave_up, "some visitors abandon the queue"
