"""Admission transcripts (spec §9.3, §9.5): one room, an injected clock, visitors v1, v2, …"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

from originguard.protect.waiting_room.admission import (
    Admit,
    Decision,
    Pass,
    Queue,
    Reject,
    decide,
    estimate_wait,
)
from originguard.protect.waiting_room.settings import RoomSettings, phase_at
from originguard.protect.waiting_room.ticket import Ticket, is_valid
from originguard.state.base import Placement
from originguard.state.memory import MemoryAdmissionQueue

T0 = 1_700_000_040.0  # a minute boundary


def _room(**fields: Any) -> RoomSettings:
    base: dict[str, Any] = {
        "name": "sale",
        "host": "shop.example",
        "total_active_users": 2,
        "new_users_per_minute": 2,
    }
    return RoomSettings(**(base | fields))


class Browser:
    """A visitor with a cookie jar: keeps the last ticket and sends it back if still valid."""

    def __init__(self, room: RoomSettings, state: MemoryAdmissionQueue) -> None:
        self.room = room
        self.state = state
        self.ticket: Ticket | None = None

    def visit(self, now: float, **request: Any) -> Decision:
        ticket = self.ticket
        if ticket is not None and not is_valid(ticket, self.room, phase_at(self.room, now), now):
            ticket = None
        decision = asyncio.run(decide(self.room, ticket, self.state, now, **request))
        if isinstance(decision, Admit | Queue):
            self.ticket = decision.ticket
        elif isinstance(decision, Pass) and decision.ticket is not None:
            self.ticket = decision.ticket
        return decision


def _crowd(room: RoomSettings, count: int, seed: int = 1) -> list[Browser]:
    state = MemoryAdmissionQueue(rng=random.Random(seed))
    return [Browser(room, state) for _ in range(count)]


def _stats(browser: Browser, now: float) -> Any:
    return asyncio.run(browser.state.stats(browser.room.room_id, now))


def test_visitors_are_admitted_while_seats_are_free_then_queued() -> None:
    v1, v2, v3 = _crowd(_room(), 3)
    assert isinstance(v1.visit(T0), Admit)
    assert isinstance(v2.visit(T0 + 1), Admit)
    third = v3.visit(T0 + 2)
    assert isinstance(third, Queue)
    assert third.position == 1
    assert _stats(v1, T0 + 2).active == 2


def test_admitted_visitor_is_renewed_and_not_counted_twice() -> None:
    v1, v2 = _crowd(_room(), 2)
    v1.visit(T0)
    again = v1.visit(T0 + 100)
    assert isinstance(again, Admit) and not again.is_new
    assert again.ticket.last_seen == T0 + 100
    assert isinstance(v2.visit(T0 + 101), Admit)


def test_session_ends_after_inactivity_and_frees_the_seat() -> None:
    v1, v2, v3 = _crowd(_room(), 3)
    v1.visit(T0)
    v2.visit(T0)
    assert isinstance(v3.visit(T0 + 10), Queue)
    v2.visit(T0 + 200)  # v2 stays active, v1 goes quiet
    decision = v3.visit(T0 + 300)  # v1's 5-minute session has just ended
    assert isinstance(decision, Admit) and decision.is_new
    assert _stats(v1, T0 + 300).active == 2


def test_new_admissions_stop_at_the_per_minute_threshold_and_resume_next_minute() -> None:
    crowd = _crowd(_room(total_active_users=100, new_users_per_minute=3), 5)
    answers = [browser.visit(T0 + n) for n, browser in enumerate(crowd)]
    assert [type(a) for a in answers] == [Admit, Admit, Admit, Queue, Queue]
    assert isinstance(crowd[3].visit(T0 + 60), Admit)
    assert isinstance(crowd[4].visit(T0 + 61), Admit)


def test_fifo_drains_the_earlier_bucket_before_the_later_one() -> None:
    v1, v2, early, late = _crowd(_room(), 4)
    v1.visit(T0)
    v2.visit(T0)
    assert isinstance(early.visit(T0 + 60), Queue)  # bucket of minute 1
    late_answer = late.visit(T0 + 120)  # bucket of minute 2
    assert isinstance(late_answer, Queue) and late_answer.position == 2
    v2.visit(T0 + 200)
    # v1's session ends at T0+300: the later visitor asks first but must wait for the earlier.
    assert isinstance(late.visit(T0 + 301), Queue)
    assert isinstance(early.visit(T0 + 302), Admit)
    v2.visit(T0 + 400)
    assert isinstance(late.visit(T0 + 499), Queue)
    assert isinstance(late.visit(T0 + 602), Admit)  # early went quiet at 302: its seat frees


def test_abandoned_place_holds_up_later_buckets_for_five_minutes_then_is_dropped() -> None:
    room = _room(total_active_users=1, new_users_per_minute=1)
    v1, quitter, patient = _crowd(room, 3)
    v1.visit(T0)
    assert isinstance(quitter.visit(T0 + 5), Queue)  # refreshes once more, then closes the tab
    quitter.visit(T0 + 25)
    patient.visit(T0 + 65)
    # v1's session ends at T0+300; quitter's place is held until T0+25+300.
    assert isinstance(patient.visit(T0 + 305), Queue)
    assert _stats(v1, T0 + 305).queued == 2
    assert isinstance(patient.visit(T0 + 325), Admit)
    assert _stats(v1, T0 + 325).queued == 0


def test_returning_after_the_grace_period_means_the_back_of_the_queue() -> None:
    room = _room(total_active_users=1, new_users_per_minute=1)
    v1, leaver, other = _crowd(room, 3)
    v1.visit(T0)
    leaver.visit(T0 + 5)
    other.visit(T0 + 65)
    for t in range(85, 700, 20):
        v1.visit(T0 + t)  # v1 keeps the only seat
        other.visit(T0 + t + 1)
    back = leaver.visit(T0 + 700)
    assert isinstance(back, Queue)
    assert back.position == 2
    assert back.ticket.bucket == int((T0 + 700) // 60)


def test_reloading_faster_than_the_refresh_interval_gets_no_extra_attempt() -> None:
    room = _room(total_active_users=1, new_users_per_minute=1)
    v1, v2 = _crowd(room, 2)
    v1.visit(T0)
    first = v2.visit(T0 + 290)
    assert isinstance(first, Queue)
    # v1's seat frees at T0+300, but v2's last attempt was 10 s ago: shown the page, unchanged.
    reload = v2.visit(T0 + 301)
    assert isinstance(reload, Queue)
    assert reload.position == 1 and reload.last_updated == T0 + 290
    assert isinstance(v2.visit(T0 + 310), Admit)


def test_disable_session_renewal_ends_a_busy_session_after_one_duration() -> None:
    room = _room(disable_session_renewal=True, total_active_users=1, new_users_per_minute=1)
    v1, v2 = _crowd(room, 2)
    v1.visit(T0)
    v2.visit(T0 + 1)
    for t in range(30, 300, 30):
        assert isinstance(v1.visit(T0 + t), Admit)
    assert isinstance(v2.visit(T0 + 300), Admit)
    again = v1.visit(T0 + 301)  # counted as a new visitor: back of the queue
    assert isinstance(again, Queue)


def test_admitted_ticket_is_honoured_by_a_fresh_state_without_counting_a_new_user() -> None:
    room = _room()
    v1 = _crowd(room, 1)[0]
    v1.visit(T0)
    v1.state = MemoryAdmissionQueue()  # the edge restarted
    again = v1.visit(T0 + 30)
    assert isinstance(again, Admit) and not again.is_new
    assert again.ticket.accepted_at == T0


def test_queue_all_admits_nobody_new_with_unknown_wait_but_keeps_sessions() -> None:
    open_room = _room()
    v1, v2 = _crowd(open_room, 2)
    v1.visit(T0)
    closed = open_room.model_copy(update={"queue_all": True})
    v1.room = v2.room = closed
    assert isinstance(v1.visit(T0 + 10), Admit)
    answer = v2.visit(T0 + 11)
    assert isinstance(answer, Queue)
    assert not answer.wait.known and answer.phase.queue_all


def test_reject_turns_everyone_away_even_admitted_visitors() -> None:
    room = _room()
    v1, v2 = _crowd(room, 2)
    v1.visit(T0)
    rejecting = room.model_copy(update={"queueing_method": "reject"})
    v1.room = v2.room = rejecting
    assert isinstance(v1.visit(T0 + 10), Reject)
    assert isinstance(v2.visit(T0 + 10), Reject)


def test_passthrough_lets_everyone_in_but_counts_them() -> None:
    crowd = _crowd(_room(queueing_method="passthrough", total_active_users=2), 5)
    answers = [browser.visit(T0) for browser in crowd]
    assert all(isinstance(a, Pass) and a.reason == "passthrough" for a in answers)
    assert all(isinstance(a, Pass) and a.ticket is not None for a in answers)
    assert _stats(crowd[0], T0).active == 5
    assert isinstance(crowd[0].visit(T0 + 5), Pass)
    assert _stats(crowd[0], T0 + 5).active == 5


def test_suspended_room_passes_without_ticket_or_count() -> None:
    v1 = _crowd(_room(suspended=True), 1)[0]
    answer = v1.visit(T0)
    assert answer == Pass("suspended")
    assert _stats(v1, T0).active == 0


def test_bypass_traffic_is_not_counted_queued_or_rejected() -> None:
    room = _room(
        queueing_method="reject",
        bypass={"paths": ["/static/"], "networks": ["192.0.2.0/24"]},
    )
    v1 = _crowd(room, 1)[0]
    assert v1.visit(T0, path="/static/app.js") == Pass("bypass")
    assert v1.visit(T0, path="/", client=ip_address("192.0.2.7")) == Pass("bypass")
    assert isinstance(v1.visit(T0, path="/", client=ip_address("198.51.100.1")), Reject)
    assert _stats(v1, T0).active == 0


def _event_room(shuffle: bool) -> RoomSettings:
    start = datetime.fromtimestamp(T0, tz=UTC) + timedelta(minutes=10)
    event = {
        "name": "launch",
        "prequeue_start": start - timedelta(minutes=10),
        "start": start,
        "end": start + timedelta(hours=1),
        "total_active_users": 100,
        "new_users_per_minute": 100,
        "shuffle_at_event_start": shuffle,
    }
    return _room(total_active_users=1000, new_users_per_minute=1000, events=[event])


def _prequeue(room: RoomSettings) -> list[Browser]:
    crowd = _crowd(room, 20, seed=3)
    for n, browser in enumerate(crowd):  # one arrival every 10 s, across four minute buckets
        answer = browser.visit(T0 + 10 * n)
        assert isinstance(answer, Queue) and answer.phase.is_prequeueing
        assert not answer.wait.known
    for refresh in (T0 + 250, T0 + 500):  # pages refresh: everyone keeps their place
        for browser in crowd:
            assert isinstance(browser.visit(refresh), Queue)
    return crowd


def test_prequeue_queues_everyone_then_admits_in_arrival_order_at_start() -> None:
    crowd = _prequeue(_event_room(shuffle=False))
    start = T0 + 600
    positions = []
    for browser in crowd:
        answer = browser.visit(start - 5)  # last refresh before the start
        assert isinstance(answer, Queue)
        positions.append(answer.position)
    assert positions == list(range(1, 21))
    assert all(isinstance(b.visit(start + 20), Admit) for b in crowd)


def test_shuffle_at_event_start_reorders_the_prequeue() -> None:
    crowd = _prequeue(_event_room(shuffle=True))
    start = T0 + 600
    before = [b.visit(start - 5) for b in crowd]
    assert [a.position for a in before if isinstance(a, Queue)] == list(range(1, 21))
    # The first request after the start triggers the lottery; everyone keeps a place.
    small = _event_room(shuffle=True)
    event = small.events[0].model_copy(update={"total_active_users": 1, "new_users_per_minute": 1})
    small = small.model_copy(update={"events": (event,)})
    for browser in crowd:
        browser.room = small
    admitted = [b.visit(start + 20) for b in crowd]
    assert sum(isinstance(a, Admit) for a in admitted) == 1
    after = [b.visit(start + 45) for b in crowd]
    positions = sorted(a.position for a in after if isinstance(a, Queue))
    assert positions == list(range(1, 20))
    in_order = [a.position for a in after if isinstance(a, Queue)]
    assert in_order != sorted(in_order), "the lottery must not keep arrival order"


def test_random_queue_favours_earlier_arrivals() -> None:
    room = _room(
        queueing_method="random",
        total_active_users=1,
        new_users_per_minute=1,
        session_duration="1m",
    )
    late_wins = 0
    for seed in range(200):
        holder, early, late = _crowd(room, 3, seed=seed)
        for t in range(0, 560, 20):
            holder.visit(T0 + t)  # holds the only seat until it goes quiet: freed at T0+600
        for t in range(1, 600, 20):
            assert isinstance(early.visit(T0 + t), Queue)  # bucket of minute 0, refreshing
        answer = late.visit(T0 + 600)  # bucket of minute 10, first to ask for the free seat
        late_wins += isinstance(answer, Admit)
        if not isinstance(answer, Admit):
            assert isinstance(early.visit(T0 + 601), Admit)
    # One draw weighted 1 against the 11 minutes waited by the head of the queue: ~1 in 11.
    assert 0 < late_wins < 50


def test_wait_is_position_over_measured_admission_rate() -> None:
    phase = phase_at(_room(total_active_users=100, new_users_per_minute=100), T0)

    def placed(position: int, admissions: float, departures: float = 0.0) -> Placement:
        return Placement(False, False, 0, None, position, 100, 2, T0, admissions, departures)

    assert estimate_wait(placed(50, 10.0), phase).minutes == 5
    assert estimate_wait(placed(1, 10.0), phase).minutes == 1
    assert estimate_wait(placed(50, 0.0, departures=5.0), phase).minutes == 10
    assert not estimate_wait(placed(50, 0.0), phase).known
    full = estimate_wait(placed(100_000, 0.05), phase)
    assert not full.known and full.queue_is_full
    random_phase = phase_at(_room(queueing_method="random"), T0)
    spread = estimate_wait(placed(1, 10.0), random_phase)
    assert (spread.p25, spread.p50, spread.p75) == (3, 5, 8)
    assert spread.minutes == spread.p50
