"""Room settings validation (spec §9.1, §9.5) and the phase in force at a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

import pytest
from pydantic import ValidationError

from originguard.protect.waiting_room.settings import RoomSettings, phase_at

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _room(**fields: Any) -> RoomSettings:
    base: dict[str, Any] = {
        "name": "sale",
        "host": "shop.example",
        "total_active_users": 100,
        "new_users_per_minute": 50,
    }
    return RoomSettings(**(base | fields))


def _event(name: str = "launch", offset: timedelta = timedelta(0), **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "start": START + offset,
        "end": START + offset + timedelta(hours=1),
    } | fields


def test_defaults_follow_the_spec() -> None:
    room = _room()
    assert room.path == "/"
    assert room.session_duration == 300.0
    assert room.queueing_method == "fifo"
    assert room.queueing_status_code == 200
    assert not (room.queue_all or room.suspended or room.json_response_enabled)


def test_small_limits_are_allowed_for_small_origins() -> None:
    room = _room(total_active_users=1, new_users_per_minute=1)
    assert room.total_active_users == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"new_users_per_minute": 101},
        {"total_active_users": 0},
        {"session_duration": "30s"},
        {"session_duration": "31m"},
        {"queueing_method": "lifo"},
        {"queueing_status_code": 503},
        {"host": "https://shop.example"},
        {"host": "*.shop.example"},
        {"path": "shop"},
        {"path": "/shop/*"},
        {"path": "/shop?x=1"},
        {"name": "a b"},
        {"cookie_suffix": "a;b"},
        {"unknown": 1},
        {"custom_page_html": "{{#open}} never closed"},
        {"bypass": {"paths": ["api/"]}},
    ],
)
def test_invalid_settings_are_refused_at_load(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _room(**fields)


def test_durations_accept_seconds_or_suffixed_strings() -> None:
    assert _room(session_duration="10m").session_duration == 600.0
    assert _room(session_duration=90).session_duration == 90.0


def test_host_is_matched_case_insensitively_path_case_sensitively() -> None:
    room = _room(host="Shop.Example", path="/Sale")
    assert room.covers("SHOP.example", "/Sale/item/1")
    assert not room.covers("shop.example", "/sale")


def test_bypass_matches_path_prefixes_and_networks() -> None:
    room = _room(bypass={"paths": ["/static/"], "networks": ["10.0.0.0/8", "2001:db8::/32"]})
    assert room.bypass.is_bypassed("/static/app.css", None)
    assert room.bypass.is_bypassed("/", ip_address("10.1.2.3"))
    assert room.bypass.is_bypassed("/", ip_address("2001:db8::1"))
    assert not room.bypass.is_bypassed("/", ip_address("192.0.2.1"))


def test_at_most_five_events() -> None:
    events = [_event(f"e{n}", timedelta(hours=2 * n)) for n in range(6)]
    with pytest.raises(ValidationError):
        _room(events=events)
    assert len(_room(events=events[:5]).events) == 5


def test_overlapping_events_are_refused() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        _room(events=[_event("a"), _event("b", timedelta(minutes=30))])


def test_a_prequeue_overlapping_the_previous_event_is_an_overlap() -> None:
    later = _event("b", timedelta(hours=1, minutes=5), prequeue_start=START + timedelta(minutes=50))
    with pytest.raises(ValidationError, match="overlap"):
        _room(events=[_event("a"), later])


def test_prequeue_must_open_five_minutes_before_start() -> None:
    with pytest.raises(ValidationError, match="5 minutes"):
        _room(events=[_event(prequeue_start=START - timedelta(minutes=4))])
    _room(events=[_event(prequeue_start=START - timedelta(minutes=5))])


def test_event_must_last_a_minute_and_override_limits_in_pairs() -> None:
    with pytest.raises(ValidationError):
        _room(events=[{"name": "e", "start": START, "end": START + timedelta(seconds=30)}])
    with pytest.raises(ValidationError, match="together"):
        _room(events=[_event(total_active_users=10)])


def test_shuffle_needs_a_prequeue() -> None:
    with pytest.raises(ValidationError):
        _room(events=[_event(shuffle_at_event_start=True)])


def test_event_overrides_apply_only_inside_its_window() -> None:
    room = _room(
        events=[
            _event(
                prequeue_start=START - timedelta(minutes=10),
                total_active_users=20,
                new_users_per_minute=5,
                queueing_method="random",
                session_duration="2m",
            )
        ]
    )
    before = phase_at(room, (START - timedelta(minutes=11)).timestamp())
    prequeue = phase_at(room, (START - timedelta(minutes=1)).timestamp())
    during = phase_at(room, START.timestamp())
    after = phase_at(room, (START + timedelta(hours=1)).timestamp())
    assert before.event is None and before.total_active_users == 100
    assert prequeue.is_prequeueing and not prequeue.may_admit
    assert during.is_event_active and during.may_admit
    assert (during.total_active_users, during.new_users_per_minute) == (20, 5)
    assert during.queueing_method == "random" and during.session_duration == 120.0
    assert after.event is None and after.queueing_method == "fifo"


def test_suspended_event_never_activates() -> None:
    room = _room(events=[_event(suspended=True, queueing_method="reject")])
    assert phase_at(room, START.timestamp()).queueing_method == "fifo"
