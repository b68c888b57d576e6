"""The AdmissionQueue contract (state/base.py): seats, the line and the counters of a waiting
room. Every implementation must pass it: add a factory to IMPLEMENTATIONS (a Redis one will take
a live server from a fixture). Only the protocol's own calls are used, with an injected `now`.

Visitors are v1, v2, …; T0 is a minute boundary, so `T0 + 60 * k` starts minute k.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from originguard.state.base import (
    QUEUE_GRACE,
    REFRESH_INTERVAL,
    AdmissionLimits,
    AdmissionQueue,
    AdmissionStats,
    Placement,
    Visitor,
    minute_of,
)
from originguard.state.memory import MemoryAdmissionQueue

IMPLEMENTATIONS: dict[str, Callable[[], AdmissionQueue]] = {
    "memory": lambda: MemoryAdmissionQueue(rng=random.Random(7)),
}
T0 = 1_700_000_040.0  # a minute boundary
ROOM = b"room-one"
LIMITS = AdmissionLimits(
    total_active_users=3,
    new_users_per_minute=3,
    session_duration=120.0,
    session_renewal=True,
    queueing_method="fifo",
    may_admit=True,
)


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def queue(request: pytest.FixtureRequest) -> AdmissionQueue:
    return IMPLEMENTATIONS[request.param]()


def visitor(number: int, at: float = T0, accepted_at: float | None = None) -> Visitor:
    """Visitor v<number>, first seen at `at` (their bucket is that minute)."""
    return Visitor(f"v{number}".encode().ljust(16, b"."), minute_of(at), accepted_at)


def ask(
    queue: AdmissionQueue,
    who: Visitor,
    now: float,
    limits: AdmissionLimits = LIMITS,
    room: bytes = ROOM,
) -> Placement:
    return asyncio.run(queue.admit_or_queue(room, who, limits, now))


def stats(queue: AdmissionQueue, now: float, room: bytes = ROOM) -> AdmissionStats:
    return asyncio.run(queue.stats(room, now))


# -- seats and the per-minute threshold ----------------------------------------------------------


def test_visitors_are_admitted_while_seats_are_free_then_queued(queue: AdmissionQueue) -> None:
    answers = [ask(queue, visitor(n), T0 + n) for n in range(1, 5)]

    assert [a.admitted for a in answers] == [True, True, True, False]
    assert [a.is_new_admission for a in answers] == [True, True, True, False]
    assert answers[3].position == 1 and answers[3].queued == 1 and answers[3].active == 3
    assert stats(queue, T0 + 5) == AdmissionStats(
        active=3, queued=1, admitted_this_minute=3, admission_rate=0.0, departure_rate=0.0
    )


def test_new_admissions_in_a_minute_never_exceed_the_threshold(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=10, new_users_per_minute=2)
    first = [ask(queue, visitor(n), T0 + n, limits).admitted for n in range(1, 6)]
    assert first == [True, True, False, False, False]

    # The next minute admits two more, in order of arrival; the fifth still waits.
    later = [ask(queue, visitor(n), T0 + 60 + n, limits).admitted for n in range(3, 6)]
    assert later == [True, True, False]
    assert stats(queue, T0 + 70).admitted_this_minute == 2


def test_concurrent_callers_never_take_more_seats_than_exist(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=50, new_users_per_minute=100)

    async def crowd() -> list[Placement]:
        return await asyncio.gather(
            *(queue.admit_or_queue(ROOM, visitor(n), limits, T0 + 1) for n in range(200))
        )

    answers = asyncio.run(crowd())
    assert sum(a.admitted for a in answers) == 50
    assert stats(queue, T0 + 1).active == 50
    assert sorted(a.position for a in answers if not a.admitted) == list(range(1, 151))


def test_an_admitted_visitor_asking_again_is_not_a_new_admission(queue: AdmissionQueue) -> None:
    first = ask(queue, visitor(1), T0)
    again = ask(queue, visitor(1), T0 + 30)

    assert first.admitted and first.is_new_admission and first.accepted_at == T0
    assert again.admitted and not again.is_new_admission and again.accepted_at == T0
    assert stats(queue, T0 + 30).admitted_this_minute == 1


def test_rooms_are_counted_apart(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=1, new_users_per_minute=1)
    assert ask(queue, visitor(1), T0, limits, room=b"room-one").admitted
    assert ask(queue, visitor(2), T0, limits, room=b"room-two").admitted
    assert not ask(queue, visitor(3), T0, limits, room=b"room-one").admitted
    assert stats(queue, T0, room=b"room-two").queued == 0


# -- sessions ------------------------------------------------------------------------------------


def test_touch_renews_a_live_session_until_one_duration_after_it(queue: AdmissionQueue) -> None:
    v1 = visitor(1)
    ask(queue, v1, T0)

    assert queue.touch(ROOM, v1.id, LIMITS, T0 + 100)
    assert stats(queue, T0 + 100 + 119).active == 1
    assert stats(queue, T0 + 100 + 120).active == 0
    assert not queue.touch(ROOM, v1.id, LIMITS, T0 + 100 + 120)


def test_touch_knows_nothing_of_strangers_or_other_rooms(queue: AdmissionQueue) -> None:
    v1 = visitor(1)
    assert not queue.touch(ROOM, v1.id, LIMITS, T0)
    ask(queue, v1, T0)
    assert not queue.touch(b"room-two", v1.id, LIMITS, T0 + 1)
    assert not queue.touch(ROOM, visitor(2).id, LIMITS, T0 + 1)


def test_without_renewal_a_session_ends_one_duration_after_admission(
    queue: AdmissionQueue,
) -> None:
    limits = replace(LIMITS, session_renewal=False)
    v1 = visitor(1)
    ask(queue, v1, T0, limits)
    assert queue.touch(ROOM, v1.id, limits, T0 + 100)
    ask(queue, v1, T0 + 110, limits)

    assert stats(queue, T0 + 119).active == 1
    assert stats(queue, T0 + 120).active == 0


def test_a_returning_ticket_holder_gets_a_free_seat_back_without_counting_as_new(
    queue: AdmissionQueue,
) -> None:
    # The state forgot them (a restart); their sealed ticket says they were admitted at T0 - 30.
    back = ask(queue, visitor(1, accepted_at=T0 - 30), T0)

    assert back.admitted and not back.is_new_admission and back.accepted_at == T0 - 30
    assert stats(queue, T0).admitted_this_minute == 0


def test_ended_sessions_free_their_seats_and_count_as_departures(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=5, new_users_per_minute=5, session_duration=60)
    for n in range(1, 6):
        ask(queue, visitor(n), T0, limits)

    # Five admissions in minute 0, five departures in minute 1; rates average 5 minutes.
    assert stats(queue, T0 + 60).admission_rate == pytest.approx(1.0)
    later = stats(queue, T0 + 120)
    assert later.active == 0 and later.departure_rate == pytest.approx(1.0)
    assert stats(queue, T0 + 60 * 7).admission_rate == 0.0


# -- the line ------------------------------------------------------------------------------------


def test_queued_visitors_hold_positions_in_arrival_order(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=1, new_users_per_minute=1)
    ask(queue, visitor(1), T0, limits)
    places = [ask(queue, visitor(n), T0 + n, limits) for n in (2, 3, 4)]

    assert [p.position for p in places] == [1, 2, 3]
    assert [p.queued for p in places] == [1, 2, 3]
    assert ask(queue, visitor(4), T0 + 10, limits).position == 3


def test_a_freed_seat_goes_to_the_earliest_bucket_first(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=1, new_users_per_minute=1)
    ask(queue, visitor(1), T0, limits)  # seated until T0 + 120
    early, late = visitor(2, T0 + 1), visitor(3, T0 + 61)
    ask(queue, early, T0 + 1, limits)
    ask(queue, late, T0 + 61, limits)

    # The seat is free at T0 + 200; the later bucket asks first and still waits (spec §9.3).
    assert not ask(queue, late, T0 + 200, limits).admitted
    assert ask(queue, early, T0 + 201, limits).admitted


def test_an_abandoned_place_is_held_for_the_grace_then_dropped(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=1, new_users_per_minute=1)
    ask(queue, visitor(1), T0, limits)
    ask(queue, visitor(2), T0 + 1, limits)

    assert stats(queue, T0 + 1 + QUEUE_GRACE - 1).queued == 1
    assert stats(queue, T0 + 1 + QUEUE_GRACE).queued == 0


def test_a_queued_visitor_gets_one_attempt_per_refresh_interval(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=1, new_users_per_minute=1, session_duration=60)
    ask(queue, visitor(1), T0, limits)  # seated until T0 + 60
    v2 = visitor(2)
    assert ask(queue, v2, T0 + 50, limits).attempted_at == T0 + 50

    # The seat is free from T0 + 60, but v2 tried at T0 + 50: reloading does not jump the wait.
    early = ask(queue, v2, T0 + 61, limits)
    assert not early.admitted and early.attempted_at == T0 + 50
    assert ask(queue, v2, T0 + 50 + REFRESH_INTERVAL, limits).admitted


def test_nobody_is_admitted_while_admission_is_closed(queue: AdmissionQueue) -> None:
    closed = replace(LIMITS, may_admit=False)
    answer = ask(queue, visitor(1), T0, closed)

    assert not answer.admitted and answer.position == 1
    assert stats(queue, T0).active == 0


def test_passthrough_admits_beyond_the_seats(queue: AdmissionQueue) -> None:
    limits = replace(
        LIMITS, total_active_users=1, new_users_per_minute=1, queueing_method="passthrough"
    )
    answers = [ask(queue, visitor(n), T0, limits) for n in range(1, 6)]

    assert all(a.admitted for a in answers)
    assert stats(queue, T0).active == 5


def test_random_draws_never_break_the_limits(queue: AdmissionQueue) -> None:
    limits = replace(LIMITS, total_active_users=6, new_users_per_minute=2, queueing_method="random")
    crowd = [visitor(n, T0 + n) for n in range(1, 11)]
    for step in range(12):  # four minutes of refreshes every 20 s
        now = T0 + step * REFRESH_INTERVAL
        for who in crowd:
            ask(queue, who, now, limits)
        counts = stats(queue, now)
        assert counts.admitted_this_minute <= 2
        assert counts.active <= 6
        assert counts.active + counts.queued == 10
    assert stats(queue, T0 + 239).active == 6


def test_a_pre_queue_is_shuffled_once_at_event_start(queue: AdmissionQueue) -> None:
    prequeue = replace(LIMITS, total_active_users=10, new_users_per_minute=2, may_admit=False)
    crowd = [visitor(n, T0 + n) for n in range(1, 7)]
    for who in crowd:
        ask(queue, who, T0 + 1, prequeue)

    start = T0 + 120
    event = replace(prequeue, may_admit=True, shuffle_event="launch@start")
    first = [ask(queue, who, start, event) for who in crowd]
    assert sum(p.admitted for p in first) == 2  # the minute's budget, to the head group
    waiting = [who for who, p in zip(crowd, first, strict=True) if not p.admitted]

    def order(now: float) -> list[tuple[int, bytes]]:
        return sorted((ask(queue, who, now, event).position, who.id) for who in waiting)

    # This minute's admissions are spent: the line stands still and reads 1..4.
    settled = order(start + REFRESH_INTERVAL)
    assert [position for position, _ in settled] == [1, 2, 3, 4]
    # Asking again under the same event does not shuffle again.
    assert order(start + 2 * REFRESH_INTERVAL) == settled
