"""Waiting room through the real edge (issue 6, spec §9): seats, the line, tickets, admin.

Room `shop` covers all of site.test with 2 seats; room `sale` covers /sale (the longer path
wins) with plenty of seats, for the admin toggles. Tickets are sealed with a key from the
environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from support.client import Reply, request
from support.edge import Edge, site_config
from support.origin import Origin

pytestmark = pytest.mark.integration

KEY_ENV = {"OG_ROOM_KEY": "integration-test-room-key-0123456789"}
COOKIE = "__ogwaitingroom"


def _config(origin: Origin) -> dict[str, Any]:
    rooms = [
        {
            "name": "shop",
            "host": "site.test",
            "path": "/",
            "total_active_users": 2,
            "new_users_per_minute": 2,
            "json_response_enabled": True,
            "bypass": {"paths": ["/api/"]},
        },
        {
            "name": "sale",
            "host": "site.test",
            "path": "/sale",
            "total_active_users": 100,
            "new_users_per_minute": 100,
            "json_response_enabled": True,
        },
    ]
    section = {"keys": [{"id": "k1", "secret": "${OG_ROOM_KEY}"}], "rooms": rooms}
    return site_config(origin.address, zone={"waiting_room": section})


@pytest.fixture
def origin() -> Iterator[Origin]:
    origin = Origin("a").start()
    yield origin
    origin.stop()


@pytest.fixture
def edge(start_edge: Any, origin: Origin) -> Edge:
    edge: Edge = start_edge(_config(origin), env=KEY_ENV)
    return edge


# -- helpers -----------------------------------------------------------------------------------


def visit(
    edge: Edge, path: str = "/", ticket: str | None = None, accept: str | None = None
) -> Reply:
    headers = []
    if ticket is not None:
        headers.append(("Cookie", f"theme=dark; {COOKIE}={ticket}"))
    if accept is not None:
        headers.append(("Accept", accept))
    return edge.get(path, headers=headers)


def ticket_of(reply: Reply) -> str | None:
    for value in reply.header_values("set-cookie"):
        found = re.match(rf"{COOKIE}=([^;]+)", value)
        if found:
            return found.group(1)
    return None


def is_queue_page(reply: Reply) -> bool:
    return reply.header("x-origin") is None and "You are in line" in reply.text


def admin_post(edge: Edge, target: str, document: dict[str, Any]) -> Reply:
    body = json.dumps(document).encode()
    headers = [("Content-Type", "application/json"), ("Connection", "close")]
    return request(
        edge.admin_port, "POST", target, host="127.0.0.1", headers=headers, body=body
    )


def admin_json(edge: Edge, target: str) -> Any:
    reply = edge.admin(target)
    assert reply.status == 200, reply.text
    return json.loads(reply.body)


def fill_shop(edge: Edge) -> tuple[str, str]:
    """Two visitors take the shop's two seats; their tickets."""
    tickets = []
    for _ in range(2):
        reply = visit(edge, "/")
        assert reply.status == 200 and reply.header("x-origin") == "a"
        ticket = ticket_of(reply)
        assert ticket is not None
        tickets.append(ticket)
    return tickets[0], tickets[1]


# -- seats and the line ------------------------------------------------------------------------


def test_third_distinct_visitor_gets_the_queue_page_while_two_hold_seats(
    edge: Edge, origin: Origin
) -> None:
    fill_shop(edge)

    third = visit(edge, "/")

    assert is_queue_page(third)
    assert third.status == 200  # queueing_status_code default
    assert third.header("refresh") == "20"
    assert third.header("cache-control") == "no-store"
    assert '<meta http-equiv="refresh" content="20">' in third.text
    assert re.search(r'class="position">1<', third.text)
    assert "Last updated" in third.text
    assert ticket_of(third) is not None
    assert len(origin.requests) == 2  # the queued visitor never reached the origin


def test_queued_visitor_keeps_their_place_on_refresh_and_the_next_one_is_behind(
    edge: Edge,
) -> None:
    fill_shop(edge)
    third = ticket_of(visit(edge, "/"))
    fourth = visit(edge, "/")

    again = visit(edge, "/", ticket=third)

    assert is_queue_page(again) and re.search(r'class="position">1<', again.text)
    assert is_queue_page(fourth) and re.search(r'class="position">2<', fourth.text)


def test_admitted_visitors_keep_access_with_their_cookie(edge: Edge) -> None:
    first, second = fill_shop(edge)
    assert is_queue_page(visit(edge, "/"))

    for ticket in (first, second, first):
        reply = visit(edge, "/products/1", ticket=ticket)
        assert reply.status == 200
        assert reply.header("x-origin") == "a"


def test_json_status_only_for_exact_accept_application_json(edge: Edge) -> None:
    fill_shop(edge)

    exact = visit(edge, "/", accept="application/json")
    mixed = visit(edge, "/", accept="application/json, text/html")

    assert exact.header("content-type") == "application/json"
    status = json.loads(exact.body)["ogWaitingRoom"]
    assert status["inWaitingRoom"] is True
    assert status["refreshIntervalSeconds"] == 20
    assert status["queueingMethod"] == "fifo"
    assert mixed.header("content-type") == "text/html; charset=utf-8"
    assert is_queue_page(mixed)


def test_forged_cookie_is_a_new_visitor(edge: Edge) -> None:
    first, _ = fill_shop(edge)
    flipped = ("A" if first[10] != "A" else "B").join((first[:10], first[11:]))

    reply = visit(edge, "/", ticket=flipped)

    assert is_queue_page(reply)
    assert ticket_of(reply) not in (None, first)


def test_ticket_from_another_room_is_a_new_visitor(edge: Edge) -> None:
    fill_shop(edge)
    sale_ticket = ticket_of(visit(edge, "/sale/shoes"))
    assert sale_ticket is not None

    reply = visit(edge, "/", ticket=sale_ticket)

    assert is_queue_page(reply)


def test_bypass_path_reaches_the_origin_without_a_ticket(edge: Edge) -> None:
    fill_shop(edge)

    reply = visit(edge, "/api/health")

    assert reply.status == 200 and reply.header("x-origin") == "a"
    assert ticket_of(reply) is None


# -- admin: status, queue_all and limits without a restart -------------------------------------


def test_status_and_metrics_count_seats_and_line(edge: Edge) -> None:
    fill_shop(edge)
    visit(edge, "/")

    shop = admin_json(edge, "/waiting-rooms/site/shop")
    metrics = edge.admin("/metrics").text

    assert shop["status"] == "queueing"
    assert (shop["active_users"], shop["queued_users"]) == (2, 1)
    assert shop["admitted_this_minute"] == 2
    assert 'og_waiting_room_active_users{room="shop",zone="site"} 2.0' in metrics
    assert 'og_waiting_room_queued_users{room="shop",zone="site"} 1.0' in metrics
    assert 'og_waiting_room_admissions_total{room="shop",zone="site"} 2.0' in metrics
    assert 'og_waiting_room_queue_pages_total{room="shop",zone="site"} 1.0' in metrics
    rooms = admin_json(edge, "/waiting-rooms")["rooms"]
    assert {room["name"] for room in rooms} == {"shop", "sale"}


def test_queue_all_from_the_admin_api_queues_newcomers_and_survives_reload(
    edge: Edge, origin: Origin
) -> None:
    inside = ticket_of(visit(edge, "/sale/"))
    assert inside is not None

    changed = admin_post(edge, "/waiting-rooms/site/sale", {"queue_all": True})
    newcomer = visit(edge, "/sale/", accept="application/json")

    assert changed.status == 200, changed.text
    assert json.loads(changed.body)["status"] == "queue_all"
    assert json.loads(newcomer.body)["ogWaitingRoom"]["queueAll"] is True
    assert visit(edge, "/sale/", ticket=inside).header("x-origin") == "a"

    assert "configuration reloaded" in edge.reload(_config(origin))
    sale = admin_json(edge, "/waiting-rooms/site/sale")
    assert sale["overrides"] == {"queue_all": True}
    assert is_queue_page(visit(edge, "/sale/"))
    assert visit(edge, "/sale/", ticket=inside).header("x-origin") == "a"

    admin_post(edge, "/waiting-rooms/site/sale", {"queue_all": None})
    assert visit(edge, "/sale/").header("x-origin") == "a"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"queue_all": "\xff"}'),
        ("application/json", b"[" * 100_000 + b"]" * 100_000),
        ("application/json; charset=latin-9x", b'{"queue_all": true}'),
    ],
    ids=["not-utf-8", "nested", "unknown-charset"],
)
def test_a_malformed_admin_body_is_a_400(edge: Edge, content_type: str, body: bytes) -> None:
    headers = [("Content-Type", content_type), ("Connection", "close")]
    reply = request(edge.admin_port, "POST", "/waiting-rooms/site/sale", host="127.0.0.1",
                    headers=headers, body=body)
    assert reply.status == 400, reply.text
    assert admin_json(edge, "/waiting-rooms/site/sale")["overrides"] == {}


def test_limits_change_without_restart_and_bad_limits_change_nothing(edge: Edge) -> None:
    assert visit(edge, "/sale/").header("x-origin") == "a"

    bad = admin_post(
        edge, "/waiting-rooms/site/sale", {"total_active_users": 1, "new_users_per_minute": 5}
    )
    good = admin_post(
        edge, "/waiting-rooms/site/sale", {"total_active_users": 1, "new_users_per_minute": 1}
    )

    assert bad.status == 400
    assert good.status == 200
    assert json.loads(good.body)["total_active_users"] == 1
    assert is_queue_page(visit(edge, "/sale/"))
    unknown = admin_post(edge, "/waiting-rooms/site/sale", {"path": "/"})
    assert unknown.status == 400
    assert admin_post(edge, "/waiting-rooms/site/nope", {"queue_all": True}).status == 404


# -- the access log ----------------------------------------------------------------------------


def test_queued_visitor_is_logged_as_queued_with_their_place(edge: Edge) -> None:
    fill_shop(edge)

    queued = visit(edge, "/")
    entry = edge.log_for_ray(queued.header("og-ray"))

    assert is_queue_page(queued)
    assert entry["outcome"] == "queued"
    assert entry["reason"] == "waiting room shop: queued at 1 of 1"
    assert 'outcome="queued",status_class="2xx",zone="site"' in edge.admin("/metrics").text


# -- rules-language expressions ----------------------------------------------------------------


def _expression_config(origin: Origin) -> dict[str, Any]:
    """`orders` holds POSTs to /orders (one seat); everything else is in `site` (plenty of
    seats) unless an uptime probe asks; /closed is a maintenance page."""
    rooms = [
        {
            "name": "orders",
            "host": "site.test",
            "path": "/orders",
            "expression": 'http.request.method eq "POST"',
            "total_active_users": 1,
            "new_users_per_minute": 1,
            "cookie_suffix": "orders",
        },
        {
            "name": "site",
            "host": "site.test",
            "path": "/",
            "total_active_users": 100,
            "new_users_per_minute": 100,
            "bypass": {
                "expression": 'http.user_agent contains "uptime-probe" or ip.src in $monitoring'
            },
        },
        {
            "name": "closed",
            "host": "site.test",
            "path": "/closed",
            "total_active_users": 100,
            "new_users_per_minute": 100,
            "queueing_method": "reject",
        },
    ]
    section = {"keys": [{"id": "k1", "secret": "${OG_ROOM_KEY}"}], "rooms": rooms}
    config = site_config(origin.address, zone={"waiting_room": section})
    config["lists"] = {"monitoring": ["192.0.2.0/24"]}
    return config


@pytest.fixture
def ruled(start_edge: Any, origin: Origin) -> Edge:
    edge: Edge = start_edge(_expression_config(origin), env=KEY_ENV)
    return edge


def cookies_of(reply: Reply) -> list[str]:
    return [value.split("=", 1)[0] for value in reply.header_values("set-cookie")]


def test_room_expression_holds_only_the_requests_it_matches(ruled: Edge) -> None:
    first = ruled.request("POST", "/orders", body=b"{}")
    second = ruled.request("POST", "/orders", body=b"{}")
    browsing = ruled.get("/orders")

    assert first.header("x-origin") == "a" and cookies_of(first) == [f"{COOKIE}_orders"]
    assert is_queue_page(second)  # the one seat of `orders` is taken
    assert browsing.header("x-origin") == "a" and cookies_of(browsing) == [COOKIE]


def test_bypass_expression_lets_the_probe_through_uncounted(ruled: Edge) -> None:
    probe = ruled.get("/", headers=[("User-Agent", "uptime-probe/2.0")])
    person = ruled.get("/", headers=[("User-Agent", "Mozilla/5.0")])

    assert probe.header("x-origin") == "a" and cookies_of(probe) == []
    assert person.header("x-origin") == "a" and cookies_of(person) == [COOKIE]
    assert admin_json(ruled, "/waiting-rooms/site/site")["active_users"] == 1


def test_reject_page_is_logged_as_turned_away(ruled: Edge) -> None:
    reply = ruled.get("/closed/")
    entry = ruled.log_for_ray(reply.header("og-ray"))

    assert reply.header("x-origin") is None and "not available" in reply.text
    assert entry["outcome"] == "local"
    assert entry["reason"] == "waiting room closed: turned away (reject page)"


def test_room_expression_that_does_not_compile_is_refused_on_reload(
    ruled: Edge, origin: Origin
) -> None:
    config = _expression_config(origin)
    config["zones"][0]["waiting_room"]["rooms"][0]["expression"] = 'http.request.method eq "POST'

    result = ruled.reload(config)

    assert "reload rejected" in result
    assert "expression" in result and "^" in result
    # The old rooms still serve: the first order is let in.
    assert ruled.request("POST", "/orders", body=b"{}").header("x-origin") == "a"
