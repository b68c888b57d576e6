"""The room gate as a request/response filter: matching, tickets, pages, overrides, reloads.

Exchanges are built from a parsed request head with stand-ins for the client connection and
the zone; the clock is injected, so session expiry needs no waiting.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any, cast

import pytest

from originguard.config import loads
from originguard.exchange import Exchange
from originguard.http.messages import Headers, RequestHead, Response
from originguard.observe.metrics import Metrics
from originguard.outcome import Outcome
from originguard.pipeline import Runtime, filter_answer
from originguard.protect.rules import RequestView
from originguard.protect.verdict import Verdicts, request_view
from originguard.protect.waiting_room.gate import RoomGate, match, rooms_of
from originguard.protect.waiting_room.monitor import RoomMonitor
from originguard.protect.waiting_room.runtime import SharedViews, attach, gate_of
from originguard.protect.waiting_room.section import WaitingRoomSection
from originguard.routing import Router

T0 = 1_700_000_040.0
SECRET = "unit-test-secret-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _section(*rooms: dict[str, Any]) -> WaitingRoomSection:
    return WaitingRoomSection.model_validate(
        {"keys": [{"id": "k1", "secret": SECRET}], "rooms": list(rooms)}
    )


def _room(name: str = "shop", path: str = "/", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "host": "site.test",
        "path": path,
        "total_active_users": 2,
        "new_users_per_minute": 2,
        "json_response_enabled": True,
    } | fields


def _gate(
    *rooms: dict[str, Any],
    clock: Clock | None = None,
    lists: dict[str, tuple[str | int, ...]] | None = None,
) -> tuple[RoomGate, Metrics]:
    from originguard.protect.waiting_room.registry import RoomRegistry

    registry = RoomRegistry()
    metrics = Metrics()
    built = {"site": rooms_of("site", _section(*rooms), registry, lists)}
    return RoomGate(built, registry, metrics, clock or Clock()), metrics


def _exchange(
    path: str = "/",
    cookie: str | None = None,
    accept: str | None = None,
    ip: str = "192.0.2.7",
    method: bytes = b"GET",
    agent: str | None = None,
) -> Exchange:
    headers: Headers = [(b"host", b"site.test")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    if accept is not None:
        headers.append((b"accept", accept.encode()))
    if agent is not None:
        headers.append((b"user-agent", agent.encode()))
    head = RequestHead(method, path.encode(), path.encode(), b"", b"1.1", headers, b"site.test")
    conn = SimpleNamespace(scheme=b"http")
    ex = Exchange(cast(Any, conn), head, None, "ray", 0.0, client_ip=ip)
    ex.zone = cast(Any, SimpleNamespace(name="site"))
    return ex


def _visit(gate: RoomGate, ex: Exchange) -> tuple[Response | None, str | None]:
    """The gate's answer and the cookie it set on the way out."""
    answer = asyncio.run(filter_answer(gate.on_request(ex)))
    headers: Headers = []
    gate.on_response(ex, headers)
    cookie = dict(headers).get(b"set-cookie")
    return answer, cookie.decode() if cookie is not None else None


def _pair(set_cookie: str | None) -> str:
    assert set_cookie is not None
    return set_cookie.split(";", 1)[0]


# -- matching ------------------------------------------------------------------------------------


def test_most_specific_path_wins_whatever_the_config_order() -> None:
    gate, _ = _gate(_room("all", "/"), _room("sale", "/sale"), _room("shoes", "/sale/shoes"))
    rooms = gate.by_zone["site"]

    def name(path: bytes) -> str | None:
        found = match(rooms, b"site.test", path)
        return found.configured.name if found else None

    assert name(b"/sale/shoes/42") == "shoes"
    assert name(b"/sale/hats") == "sale"
    assert name(b"/Sale") == "all"  # case-sensitive prefix
    assert match(rooms, b"other.test", b"/") is None


def test_zone_without_rooms_is_not_touched() -> None:
    gate, _ = _gate(_room())
    ex = _exchange()
    ex.zone = cast(Any, SimpleNamespace(name="other"))
    assert _visit(gate, ex) == (None, None)


# -- seats, line, tickets --------------------------------------------------------------------------


def test_two_seats_then_the_line_and_admitted_cookie_keeps_access() -> None:
    gate, metrics = _gate(_room())
    first = _visit(gate, _exchange())
    second = _visit(gate, _exchange())
    third = _visit(gate, _exchange())

    assert first[0] is None and second[0] is None
    assert third[0] is not None and third[0].status == 200
    assert b"You are in line" in third[0].body
    assert (b"refresh", b"20") in third[0].headers
    assert _visit(gate, _exchange(cookie=_pair(first[1])))[0] is None
    assert metrics.waiting_room_admissions.labels("site", "shop")._value.get() == 2


def test_admitted_cookie_is_not_resealed_on_every_request() -> None:
    clock = Clock()
    gate, _ = _gate(_room(), clock=clock)
    _, cookie = _visit(gate, _exchange())

    clock.now += 5
    _, soon = _visit(gate, _exchange(cookie=_pair(cookie)))
    clock.now += 30
    answer, later = _visit(gate, _exchange(cookie=_pair(cookie)))

    assert soon is None
    assert answer is None and later is not None and later != cookie


def test_session_ends_after_inactivity_and_the_line_moves_up() -> None:
    clock = Clock()
    gate, _ = _gate(_room(session_duration="1m"), clock=clock)
    _, first = _visit(gate, _exchange())
    _visit(gate, _exchange())
    queued, waiting = _visit(gate, _exchange())
    assert queued is not None

    clock.now += 121  # both sessions idle past session_duration, and a fresh minute
    refreshed = _visit(gate, _exchange(cookie=_pair(waiting)))
    stale = _visit(gate, _exchange(cookie=_pair(first)))

    assert refreshed[0] is None  # the visitor in line got a freed seat first
    # The first visitor's ticket expired: a new visitor, let in to the one seat left.
    assert stale[0] is None and stale[1] is not None and stale[1] != first


def test_forged_and_foreign_cookies_count_as_new_visitors() -> None:
    one_seat = _room("shop", "/", total_active_users=1, new_users_per_minute=1)
    gate, _ = _gate(one_seat, _room("b", "/b"))
    _, own = _visit(gate, _exchange())
    _, foreign = _visit(gate, _exchange("/b/x"))
    name, token = _pair(own).split("=", 1)
    forged = f"{name}={token[:-2]}{'AA' if token[-2:] != 'AA' else 'BB'}"

    assert _visit(gate, _exchange(cookie=forged))[0] is not None
    assert _visit(gate, _exchange(cookie=_pair(foreign)))[0] is not None
    assert _visit(gate, _exchange(cookie=_pair(own)))[0] is None


def test_cookie_suffix_names_the_cookie() -> None:
    gate, _ = _gate(_room(cookie_suffix="shop"))
    _, cookie = _visit(gate, _exchange())
    assert cookie is not None and cookie.startswith("__ogwaitingroom_shop=")
    assert "Path=/;" in cookie and "HttpOnly" in cookie


def test_json_only_for_exact_accept() -> None:
    gate, _ = _gate(_room(total_active_users=1, new_users_per_minute=1))
    _visit(gate, _exchange())
    exact, _ = _visit(gate, _exchange(accept="application/json"))
    mixed, _ = _visit(gate, _exchange(accept="application/json, text/html"))

    assert exact is not None and mixed is not None
    assert json.loads(exact.body)["ogWaitingRoom"]["inWaitingRoom"] is True
    assert mixed.body.startswith(b"<!DOCTYPE html>")


def test_bypass_paths_and_networks_skip_the_room_uncounted() -> None:
    room = _room(
        total_active_users=1,
        new_users_per_minute=1,
        bypass={"paths": ["/api/"], "networks": ["10.0.0.0/8"]},
    )
    gate, _ = _gate(room)
    _visit(gate, _exchange())

    assert _visit(gate, _exchange("/api/x")) == (None, None)
    assert _visit(gate, _exchange(ip="10.1.2.3")) == (None, None)
    assert _visit(gate, _exchange())[0] is not None


def test_reject_method_answers_static_page_and_counts_turned_away() -> None:
    gate, metrics = _gate(_room(queueing_method="reject"))
    answer, cookie = _visit(gate, _exchange())

    assert answer is not None and b"not available" in answer.body
    assert all(name != b"refresh" for name, _ in answer.headers)
    assert cookie is None
    assert metrics.waiting_room_turned_away.labels("site", "shop")._value.get() == 1


def test_queued_visitor_is_logged_as_queued_with_place_in_line() -> None:
    gate, _ = _gate(_room(total_active_users=1, new_users_per_minute=1))
    _visit(gate, _exchange())
    ex = _exchange()
    answer = asyncio.run(filter_answer(gate.on_request(ex)))

    # The pipeline keeps an outcome a filter named for its answer (else records `local`).
    assert answer is not None
    assert ex.outcome is Outcome.QUEUED
    assert ex.reason == "waiting room shop: queued at 1 of 1"


def test_rejected_visitor_is_logged_as_turned_away() -> None:
    gate, _ = _gate(_room(queueing_method="reject"))
    ex = _exchange()
    asyncio.run(filter_answer(gate.on_request(ex)))

    # No outcome of its own: the pipeline records the reject page as `local`.
    assert ex.outcome is Outcome.PROXIED
    assert ex.reason == "waiting room shop: turned away (reject page)"


def test_admitted_visitor_keeps_the_origins_outcome() -> None:
    gate, _ = _gate(_room())
    ex = _exchange()
    asyncio.run(filter_answer(gate.on_request(ex)))
    gate.on_response(ex, [])
    assert ex.outcome is Outcome.PROXIED and ex.reason == ""


def test_suspended_room_passes_without_cookie() -> None:
    gate, _ = _gate(_room(suspended=True))
    assert _visit(gate, _exchange()) == (None, None)


# -- rules-language expressions -----------------------------------------------------------------


def test_room_expression_narrows_the_room_to_matching_requests() -> None:
    posts = _room("orders", "/", expression='http.request.method eq "POST"')
    gate, _ = _gate(posts | {"total_active_users": 1, "new_users_per_minute": 1})
    _visit(gate, _exchange(method=b"POST"))

    assert _visit(gate, _exchange(method=b"GET")) == (None, None)  # not in the room at all
    assert _visit(gate, _exchange(method=b"POST"))[0] is not None  # the one seat is taken


def test_a_request_the_expression_refuses_falls_to_the_next_longest_path() -> None:
    gate, _ = _gate(
        _room("all", "/"),
        _room("api", "/api", expression="ip.src in $partners", cookie_suffix="api"),
        lists={"partners": ("198.51.100.0/24",)},
    )
    rooms = gate.by_zone["site"]
    partner, stranger = _exchange("/api/x", ip="198.51.100.9"), _exchange("/api/x")

    def name(ex: Exchange) -> str | None:
        found = match(rooms, b"site.test", ex.head.path, lambda: gate.views(ex))
        return found.configured.name if found else None

    assert (name(partner), name(stranger)) == ("api", "all")
    # Without a view a room with an expression never matches.
    assert match(rooms, b"site.test", b"/api/x").configured.name == "all"  # type: ignore[union-attr]


def test_rooms_on_one_path_are_told_apart_by_expression_in_config_order() -> None:
    gate, _ = _gate(
        _room("bots", "/", expression='http.user_agent contains "bot"', cookie_suffix="bots"),
        _room("people", "/", cookie_suffix="people"),
    )
    _, bot = _visit(gate, _exchange(agent="crawlbot/1"))
    _, person = _visit(gate, _exchange(agent="Mozilla/5.0"))

    assert bot is not None and bot.startswith("__ogwaitingroom_bots=")
    assert person is not None and person.startswith("__ogwaitingroom_people=")


def test_bypass_expression_skips_the_room_uncounted() -> None:
    room = _room(
        total_active_users=1,
        new_users_per_minute=1,
        bypass={"expression": 'http.user_agent contains "uptime-probe"'},
    )
    gate, metrics = _gate(room)

    for _ in range(3):
        assert _visit(gate, _exchange(agent="uptime-probe/2")) == (None, None)
    assert _visit(gate, _exchange())[0] is None  # the one seat was still free
    assert _visit(gate, _exchange(agent="uptime-probe/2")) == (None, None)  # even when full
    assert metrics.waiting_room_admissions.labels("site", "shop")._value.get() == 1


def test_the_view_is_built_once_and_only_when_an_expression_needs_it() -> None:
    built: list[str] = []

    def views(ex: Exchange) -> RequestView:
        built.append(ex.ray)
        return request_view(ex, None)

    plain, _ = _gate(_room())
    plain.views = views
    _visit(plain, _exchange())
    assert built == []

    both = _room(
        expression='http.request.method eq "GET"', bypass={"expression": "ip.src eq 10.0.0.1"}
    )
    gated, _ = _gate(both)
    gated.views = views
    _visit(gated, _exchange())
    assert built == ["ray"]


def test_shared_views_reuse_the_firewalls_view_of_the_exchange() -> None:
    verdicts = Verdicts({})
    ex = _exchange()
    firewall_view = verdicts.of(ex).view
    views = SharedViews(verdicts, {})

    assert views(ex) is firewall_view
    verdicts.on_complete(ex)
    fresh = views(ex)
    assert fresh is not firewall_view and fresh.path == "/" and str(fresh.client_ip) == "192.0.2.7"


# -- overrides, monitor, reload ------------------------------------------------------------------


def test_queue_all_override_queues_newcomers_but_not_seated_visitors() -> None:
    gate, _ = _gate(_room(total_active_users=10, new_users_per_minute=10))
    _, seated = _visit(gate, _exchange())
    room = gate.by_zone["site"][0]

    gate.change(room, {"queue_all": True})

    answer, _ = _visit(gate, _exchange(accept="application/json"))
    assert answer is not None and json.loads(answer.body)["ogWaitingRoom"]["queueAll"] is True
    assert _visit(gate, _exchange(cookie=_pair(seated)))[0] is None
    gate.change(room, {"queue_all": None})
    assert _visit(gate, _exchange())[0] is None


def test_invalid_override_changes_nothing() -> None:
    gate, _ = _gate(_room(total_active_users=10, new_users_per_minute=10))
    room = gate.by_zone["site"][0]
    with pytest.raises(ValueError):
        gate.change(room, {"total_active_users": 1})  # new_users_per_minute 10 > 1
    with pytest.raises(ValueError):
        gate.change(room, {"host": "x.test"})
    assert room.settings.total_active_users == 10
    assert gate.registry.overrides(room.key) == {}


def test_monitor_publishes_counts_and_wait_estimate_gauges() -> None:
    clock = Clock()
    gate, metrics = _gate(_room(), clock=clock)
    for _ in range(3):
        _visit(gate, _exchange())

    documents = asyncio.run(RoomMonitor(gate, metrics, clock).refresh())

    assert documents[0]["status"] == "queueing"
    assert (documents[0]["active_users"], documents[0]["queued_users"]) == (2, 1)
    assert metrics.waiting_room_active_users.labels("site", "shop")._value.get() == 2
    assert metrics.waiting_room_queued_users.labels("site", "shop")._value.get() == 1
    # Nobody left yet and no admission was measured over a full minute: unknown.
    assert metrics.waiting_room_estimated_wait.labels("site", "shop")._value.get() == -1


CONFIG = f"""
zones:
  - name: site
    hostnames: [site.test]
    pools: [{{name: main, origins: [{{address: "127.0.0.1:9"}}]}}]
    waiting_room:
      keys: [{{id: k1, secret: {SECRET}}}]
      rooms:
        - {{name: shop, host: site.test, total_active_users: 5, new_users_per_minute: 5}}
"""


def test_reload_keeps_room_state_and_overrides() -> None:
    config = loads(CONFIG)
    metrics = Metrics()
    first = Runtime(router=Router([]), trusted_proxies=(), node_id="t")
    gate = attach(first, config, metrics)
    assert gate is not None and gate_of(first) is gate
    gate.change(gate.by_zone["site"][0], {"queue_all": True})

    second = Runtime(router=Router([]), trusted_proxies=(), node_id="t")
    reloaded = attach(second, config, metrics, first)

    assert reloaded is not None and reloaded is not gate
    assert reloaded.registry is gate.registry
    assert reloaded.by_zone["site"][0].settings.queue_all is True
    assert reloaded in second.response_filters and len(second.services) == 1


def test_a_limit_override_that_conflicts_with_a_reloaded_config_is_dropped_not_the_reload() -> None:
    config = loads(CONFIG)
    metrics = Metrics()
    first = Runtime(router=Router([]), trusted_proxies=(), node_id="t")
    gate = attach(first, config, metrics)
    assert gate is not None
    gate.change(gate.by_zone["site"][0], {"total_active_users": 6, "queue_all": True})
    raised = loads(CONFIG.replace("total_active_users: 5, new_users_per_minute: 5",
                                  "total_active_users: 20, new_users_per_minute: 15"))

    second = Runtime(router=Router([]), trusted_proxies=(), node_id="t")
    reloaded = attach(second, raised, metrics, first)  # 15 new per minute > the override's 6

    assert reloaded is not None
    settings = reloaded.by_zone["site"][0].settings
    assert (settings.total_active_users, settings.queue_all) == (20, True)
    assert reloaded.registry.overrides(("site", "shop")) == {"queue_all": True}


def test_no_rooms_means_no_filter() -> None:
    config = loads(CONFIG.split("    waiting_room:")[0])
    runtime = Runtime(router=Router([]), trusted_proxies=(), node_id="t")
    assert attach(runtime, config, Metrics()) is None
    assert runtime.request_filters == []
