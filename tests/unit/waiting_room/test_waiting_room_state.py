"""MemoryAdmissionQueue bookkeeping: renewals and refreshes must not grow its deadline heaps."""

from __future__ import annotations

import asyncio

from originguard.state.base import AdmissionLimits, Visitor
from originguard.state.memory import MemoryAdmissionQueue

T0 = 1_700_000_040.0
LIMITS = AdmissionLimits(
    total_active_users=1,
    new_users_per_minute=1,
    session_duration=60.0,
    session_renewal=True,
    queueing_method="fifo",
    may_admit=True,
)


def test_renewing_a_session_a_thousand_times_keeps_one_deadline_entry() -> None:
    state = MemoryAdmissionQueue()
    seated = Visitor(b"s" * 16, 0, None)
    waiting = Visitor(b"w" * 16, 0, None)
    now = T0
    for _ in range(1000):
        state.admit_or_queue_now(b"room", seated, LIMITS, now)
        state.admit_or_queue_now(b"room", waiting, LIMITS, now)
        now += 1.0
    room = state._rooms[b"room"]

    assert len(room.sessions) == 1 and len(room.places) == 1
    assert len(room.session_deadlines) <= 2
    assert len(room.place_deadlines) <= 2


def test_session_still_ends_one_duration_after_the_last_renewal() -> None:
    state = MemoryAdmissionQueue()
    seated = Visitor(b"s" * 16, 0, None)
    state.admit_or_queue_now(b"room", seated, LIMITS, T0)
    state.admit_or_queue_now(b"room", seated, LIMITS, T0 + 50)

    assert asyncio.run(state.stats(b"room", T0 + 109)).active == 1
    assert asyncio.run(state.stats(b"room", T0 + 110)).active == 0
