"""Queue page, reject page, JSON status (spec §9.4) and the Mustache subset."""

from __future__ import annotations

import json
from typing import Any

import pytest

from originguard.protect.waiting_room import template
from originguard.protect.waiting_room.admission import Queue, Reject, Wait
from originguard.protect.waiting_room.page import html_page, respond, status_json, wants_json
from originguard.protect.waiting_room.settings import RoomSettings, phase_at
from originguard.protect.waiting_room.ticket import Ticket, TicketState

NOW = 1_700_000_040.0
SPEC_FIELDS = {
    "inWaitingRoom", "waitTimeKnown", "waitTime", "waitTime25Percentile", "waitTime50Percentile",
    "waitTime75Percentile", "waitTimeFormatted", "queueIsFull", "queueAll", "lastUpdated",
    "refreshIntervalSeconds", "queueingMethod", "isFIFOQueue", "isRandomQueue",
    "isPassthroughQueue", "isRejectQueue", "isEventActive", "isEventPrequeueing",
    "timeUntilEventStart", "timeUntilEventStartFormatted", "timeUntilEventEnd",
    "timeUntilEventEndFormatted", "shuffleAtEventStart",
}  # fmt: skip


def _room(**fields: Any) -> RoomSettings:
    base: dict[str, Any] = {
        "name": "sale",
        "host": "shop.example",
        "total_active_users": 10,
        "new_users_per_minute": 5,
        "json_response_enabled": True,
    }
    return RoomSettings(**(base | fields))


def _queued(room: RoomSettings, wait: Wait, position: int = 42) -> Queue:
    ticket = Ticket(room.room_id, b"v" * 16, 0, TicketState.QUEUED, None, NOW)
    return Queue(ticket, position, 100, wait, NOW - 5, phase_at(room, NOW))


def test_json_only_for_exactly_application_json_when_enabled() -> None:
    room = _room()
    assert wants_json(room, "application/json")
    assert not wants_json(room, "application/json, text/html")
    assert not wants_json(room, "text/html")
    assert not wants_json(room, None)
    assert not wants_json(_room(json_response_enabled=False), "application/json")


def test_json_document_has_exactly_the_spec_fields() -> None:
    room = _room()
    body = json.loads(status_json(room, _queued(room, Wait(known=True, minutes=10)), NOW))
    fields = body["ogWaitingRoom"]
    assert set(fields) == SPEC_FIELDS
    assert fields["inWaitingRoom"] is True
    assert fields["waitTime"] == 10 and fields["waitTimeFormatted"] == "10 minutes"
    assert fields["refreshIntervalSeconds"] == 20
    assert fields["isFIFOQueue"] and fields["queueingMethod"] == "fifo"
    assert fields["lastUpdated"] == "2023-11-14T22:13:55.000Z"
    assert fields["waitTime50Percentile"] == 0


def test_random_queue_reports_a_range() -> None:
    room = _room(queueing_method="random")
    wait = Wait(known=True, minutes=10, p25=5, p50=10, p75=15)
    fields = json.loads(status_json(room, _queued(room, wait), NOW))["ogWaitingRoom"]
    assert fields["waitTimeFormatted"] == "5 minutes to 15 minutes"
    assert (fields["waitTime25Percentile"], fields["waitTime75Percentile"]) == (5, 15)


def test_respond_serves_json_or_html_by_accept() -> None:
    room = _room(queueing_status_code=202)
    decision = _queued(room, Wait(known=True, minutes=3))
    as_json = respond(room, decision, "application/json", NOW)
    as_html = respond(room, decision, "application/json, text/html", NOW)
    assert as_json.status == as_html.status == 202
    assert (b"content-type", b"application/json") in as_json.headers
    assert (b"content-type", b"text/html; charset=utf-8") in as_html.headers
    assert (b"refresh", b"20") in as_html.headers
    assert as_html.body.startswith(b"<!DOCTYPE html>")


def test_queue_page_shows_position_wait_and_last_update_without_javascript() -> None:
    room = _room()
    page = html_page(room, _queued(room, Wait(known=True, minutes=7)), NOW)
    assert '<meta http-equiv="refresh" content="20">' in page
    assert ">42<" in page
    assert "Your estimated wait time is 7 minutes..." in page
    assert "Last updated 22:13:55 UTC" in page
    assert "<script" not in page


def test_queue_page_wait_texts_follow_the_spec() -> None:
    room = _room()
    unknown = html_page(room, _queued(room, Wait(known=False)), NOW)
    assert "Your estimated wait time is unavailable." in unknown
    full = html_page(room, _queued(room, Wait(known=False, queue_is_full=True)), NOW)
    assert "The estimated wait time is greater than a day." in full


def test_queue_all_page_shows_no_estimate() -> None:
    room = _room(queue_all=True)
    page = html_page(room, _queued(room, Wait(known=False)), NOW)
    assert "estimated wait" not in page


def test_reject_page_never_refreshes() -> None:
    room = _room(queueing_method="reject")
    decision = Reject(phase_at(room, NOW))
    answer = respond(room, decision, None, NOW)
    assert b"refresh" not in answer.body.lower()
    assert all(name != b"refresh" for name, _ in answer.headers)
    fields = json.loads(status_json(room, decision, NOW))["ogWaitingRoom"]
    assert fields["refreshIntervalSeconds"] == 0 and fields["isRejectQueue"]


def test_custom_page_renders_escaped_variables_and_sections() -> None:
    room = _room(
        name="sale",
        custom_page_html=(
            "<p>{{roomName}} #{{queuePosition}}</p>"
            "{{#waitTimeKnown}}<p>{{waitTimeHours}}h{{waitTimeHourMinutes}}m</p>{{/waitTimeKnown}}"
            "{{^queueAll}}open{{/queueAll}}"
        ),
    )
    page = html_page(room, _queued(room, Wait(known=True, minutes=125)), NOW)
    assert page == "<p>sale #42</p><p>2h5m</p>open"


def test_template_escapes_html_and_reports_unbalanced_sections() -> None:
    page = template.parse("{{name}}|{{#on}}yes{{/on}}|{{^on}}no{{/on}}|{{missing}}")
    assert page.render({"name": "<b>&", "on": True}) == "&lt;b&gt;&amp;|yes||"
    assert page.render({"name": "x", "on": False}) == "x||no|"
    with pytest.raises(template.TemplateError, match="never closed"):
        template.parse("{{#a}}")
    with pytest.raises(template.TemplateError, match="unexpected"):
        template.parse("{{#a}}{{/b}}")
