"""Zero-downtime failover and the edge's own error pages (spec §2.2, §3).

521/522/523 mean nothing reached the origin, so the edge retries once on another origin of the
pool; 520 and 524 mean the origin may have acted on the request, so they are never retried.

One edge serves every scenario that needs no private state, each as its own zone named after
it (`<zone>.test`); tests that stop origins or depend on a fresh pool start their own edge.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.client import Client, ClientError, Reply, build
from support.edge import Edge, edge_config, private_resolver, site_config, zone_config
from support.origin import Blackhole, Origin, pattern_bytes, refused_address

from originguard.outcome import OriginError
from originguard.upstream.connection import OriginFailure, connect

pytestmark = pytest.mark.integration

FAST = {"connect": "300ms", "response_head": "500ms"}


@dataclass
class Scene:
    edge: Edge
    a: Origin
    b: Origin
    down: list[str]  # refused addresses, in the order the zones below use them
    hole: Blackhole
    private_dns: bool


@pytest.fixture(scope="module")
def scene(module_edges, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    a, b, hole = Origin("a").start(), Origin("b").start(), Blackhole()
    down = [refused_address() for _ in range(5)]
    wrapper = private_resolver(Path(tmp_path_factory.mktemp("dns")))
    zones = [
        zone_config("refused-then-b", down[0], b.address),
        zone_config("all-refused", down[1], down[2], down[3]),
        zone_config("one-refused", down[4]),
        zone_config("no-failover", down[0], b.address, failover_codes=[522]),
        zone_config("blackhole", hole.address, timeouts=FAST),
        zone_config("blackhole-then-b", hole.address, b.address, timeouts=FAST),
        zone_config("two", a.address, b.address, timeouts=FAST),
        zone_config("wild", a.address, hostnames=["*.wild.test"]),
        zone_config("disabled", a.address, pool={"enabled": False}),
        zone_config("weightless", a.address, b.address, pool={"origins": [
            {"address": a.address, "enabled": False}, {"address": b.address, "weight": 0}
        ]}),
        zone_config("backup", a.address, pool={"enabled": False}),
        zone_config("unresolvable", "origin.invalid:8080"),
        zone_config("unresolvable-then-b", "origin.invalid:8080", b.address),
    ]
    zones[10]["pools"].append({"name": "backup", "origins": [{"address": b.address}]})
    edge = module_edges(edge_config(*zones), wrapper=wrapper or ())
    yield Scene(edge, a, b, down, hole, wrapper is not None)
    a.stop()
    b.stop()
    hole.close()


@pytest.fixture(autouse=True)
def fresh_record(scene: Scene) -> None:
    scene.a.forget()
    scene.b.forget()


def attempts(edge: Edge, reply: Reply) -> list[tuple[int, str]]:
    """(status, error kind) of each origin attempt, from the access log line of `reply`."""
    entry = edge.log_for_ray(reply.header("og-ray"))
    return [(a["status"], a["error"]) for a in entry["attempts"]]


def assert_edge_page(reply: Reply, status: int, *hidden: str) -> None:
    """An edge error page: the code, the ray id, no traceback, none of `hidden`."""
    ray = reply.header("og-ray")
    assert reply.status == status
    assert reply.header("content-type") == "text/html; charset=utf-8"
    assert reply.header("cache-control") == "no-store"
    assert f"Error {status}" in reply.text
    assert ray and f"Ray ID: <code>{ray}</code>" in reply.text
    assert "Your IP: 127.0.0.1" in reply.text
    assert "Traceback" not in reply.text
    for secret in hidden:
        assert secret not in reply.text


# -- 521: connection refused -------------------------------------------------------------------


def test_second_origin_serves_when_first_refuses_connection(scene: Scene) -> None:
    edge = scene.edge

    replies = [edge.get(f"/r{i}", host="refused-then-b.test") for i in range(4)]

    assert [r.status for r in replies] == [200] * 4
    assert {r.header("x-origin") for r in replies} == {"b"}
    retried = [r for r in replies if attempts(edge, r) == [(521, "refused"), (200, "")]]
    assert retried
    entry = edge.log_for_ray(retried[0].header("og-ray"))
    assert entry["outcome"] == "retried"
    assert [a["origin"] for a in entry["attempts"]] == [scene.down[0], scene.b.address]


def test_every_origin_refused_gives_521_page_without_internal_addresses(scene: Scene) -> None:
    reply = scene.edge.get("/", host="all-refused.test")

    assert_edge_page(reply, 521, *scene.down, "127.0.0.1:", "connection refused")
    assert reply.header("og-error-type") == "52x"
    assert "The web server is down." in reply.text
    # Exactly one retry, never a third try.
    assert attempts(scene.edge, reply) == [(521, "refused"), (521, "refused")]
    assert scene.edge.log_for_ray(reply.header("og-ray"))["outcome"] == "edge_error"


def test_single_refusing_origin_is_tried_once(scene: Scene) -> None:
    reply = scene.edge.get("/", host="one-refused.test")

    assert reply.status == 521
    assert attempts(scene.edge, reply) == [(521, "refused")]


def test_error_page_is_json_when_the_client_accepts_json(scene: Scene) -> None:
    reply = scene.edge.get(
        "/api", host="one-refused.test", headers=[("Accept", "application/json")]
    )

    document = json.loads(reply.body)
    assert reply.status == 521
    assert reply.header("content-type") == "application/json"
    assert document["status"] == 521
    assert document["title"] == "Web Server Is Down"
    assert document["ray_id"] == reply.header("og-ray")
    assert document["client_ip"] == "127.0.0.1"
    assert "127.0.0.1:" not in reply.text


def test_post_is_retried_on_refusal_because_nothing_reached_the_origin(scene: Scene) -> None:
    replies = [
        scene.edge.request("POST", "/echo", host="refused-then-b.test", body=f"order {i}".encode())
        for i in range(4)
    ]

    assert [r.status for r in replies] == [200] * 4
    assert [r.body for r in replies] == [f"order {i}".encode() for i in range(4)]
    assert [r.body for r in scene.b.requests] == [f"order {i}".encode() for i in range(4)]


def test_streamed_upload_is_retried_on_refusal(scene: Scene) -> None:
    body = pattern_bytes(400 * 1024)

    replies = [
        scene.edge.request("PUT", "/upload", host="refused-then-b.test", body=body)
        for _ in range(2)
    ]

    assert [r.status for r in replies] == [200, 200]
    assert [r.body_size for r in scene.b.requests] == [len(body)] * 2
    assert all(r.body == body for r in scene.b.requests)


def test_refusal_outside_failover_codes_is_not_retried(scene: Scene) -> None:
    replies = [scene.edge.get(f"/r{i}", host="no-failover.test") for i in range(2)]

    assert sorted(r.status for r in replies) == [200, 521]
    refused = next(r for r in replies if r.status == 521)
    assert attempts(scene.edge, refused) == [(521, "refused")]


def test_stopping_an_origin_mid_traffic_causes_no_client_errors(
    start_edge, origin_a, origin_b
) -> None:
    edge = start_edge(site_config(origin_a.address, origin_b.address))
    statuses: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_now = threading.Event()

    def visitor(count: int) -> None:
        with Client(edge.port) as client:
            for i in range(count):
                try:
                    reply = client.request("GET", f"/v{i}")
                except (ClientError, OSError) as error:
                    errors.append(repr(error))
                    return
                with lock:
                    statuses.append(reply.status)
                    if len(statuses) >= 15:
                        stop_now.set()

    threads = [threading.Thread(target=visitor, args=(15,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert stop_now.wait(10)
    origin_a.stop()
    for thread in threads:
        thread.join(20)

    assert errors == []
    assert statuses == [200] * 60
    assert len(origin_a.requests) >= 1
    after = [edge.get(f"/after{i}") for i in range(6)]
    assert {r.header("x-origin") for r in after} == {"b"}


def test_crashed_origin_with_pooled_connections_is_hidden_from_clients(
    start_edge, origin_a, origin_b
) -> None:
    edge = start_edge(site_config(origin_a.address, origin_b.address))
    warm = [edge.get(f"/w{i}") for i in range(6)]
    origin_a.stop(abort=True)

    replies = [edge.get(f"/r{i}") for i in range(10)]

    assert {r.header("x-origin") for r in warm} == {"a", "b"}
    assert [r.status for r in replies] == [200] * 10
    assert {r.header("x-origin") for r in replies} == {"b"}


def test_dead_pooled_connections_are_retried_on_a_new_connection_not_another_pooled_one(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    with Client(edge.port) as first, Client(edge.port) as second:
        first.send(build("GET", "/hold/two"))
        second.send(build("GET", "/hold/two"))
        origin_a.wait_for_requests(2)
        origin_a.release("two")
        assert first.read_reply().status == second.read_reply().status == 200
    # The edge now pools two connections; each drops whatever request comes next on it.

    reply = edge.get("/first-per-connection")

    assert reply.status == 200
    assert reply.body == b"first on connection 3"


# -- 522: connect timeout ----------------------------------------------------------------------


def test_connect_timeout_gives_522(scene: Scene) -> None:
    started = time.monotonic()

    reply = scene.edge.get("/", host="blackhole.test")

    assert_edge_page(reply, 522, scene.hole.address)
    assert 0.3 <= time.monotonic() - started < 3
    assert attempts(scene.edge, reply) == [(522, "connect_timeout")]


def test_second_origin_serves_when_first_times_out_connecting(scene: Scene) -> None:
    replies = [scene.edge.get(f"/r{i}", host="blackhole-then-b.test") for i in range(2)]

    assert [r.status for r in replies] == [200, 200]
    tried = [attempts(scene.edge, r) for r in replies]
    assert [(522, "connect_timeout"), (200, "")] in tried


# -- 523: unreachable / name does not resolve --------------------------------------------------


def _needs_private_dns(scene: Scene) -> None:
    if not scene.private_dns:
        pytest.skip("needs a mount namespace (root) to give the edge a loopback-only resolver")


def test_origin_name_that_does_not_resolve_gives_523(scene: Scene) -> None:
    _needs_private_dns(scene)

    reply = scene.edge.get("/", host="unresolvable.test")

    assert_edge_page(reply, 523, "origin.invalid", "name lookup", "resolution")
    assert attempts(scene.edge, reply) == [(523, "unreachable")]


def test_second_origin_serves_when_first_name_does_not_resolve(scene: Scene) -> None:
    _needs_private_dns(scene)

    replies = [scene.edge.get(f"/r{i}", host="unresolvable-then-b.test") for i in range(2)]

    assert [r.status for r in replies] == [200, 200]
    assert [(523, "unreachable"), (200, "")] in [attempts(scene.edge, r) for r in replies]


def test_name_lookup_failure_is_classified_as_unreachable(monkeypatch) -> None:
    """The classification behind 523, without any DNS traffic: getaddrinfo fails."""

    async def failing_getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def attempt() -> OriginFailure:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "getaddrinfo", failing_getaddrinfo)
        result = await connect("origin.invalid", 80, 1.0, lambda conn: None)
        assert isinstance(result, OriginFailure)
        return result

    failure = asyncio.run(attempt())

    assert failure.code is OriginError.UNREACHABLE
    assert failure.sent is False


# -- 520 and 524: never retried ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/drop", "/garbage"])
def test_broken_reply_gives_520_and_is_not_retried(scene: Scene, path: str) -> None:
    # A POST: the origin may have acted on it, so it must never be sent a second time.
    reply = scene.edge.request("POST", path, host="two.test", body=b"charge card")

    assert_edge_page(reply, 520, scene.a.address, scene.b.address, "THIS IS NOT HTTP")
    assert len(scene.a.requests) + len(scene.b.requests) == 1
    assert attempts(scene.edge, reply) == [(520, "invalid_response")]


@pytest.mark.parametrize(
    "name",
    ["cl-and-te", "two-lengths", "bad-length", "bad-status", "nul-in-header", "huge-head",
     "status-zero", "gzip-coding"],
)
def test_malformed_origin_response_gives_520(scene: Scene, name: str) -> None:
    reply = scene.edge.get(f"/raw/{name}", host="two.test")

    assert_edge_page(reply, 520, scene.a.address, scene.b.address)
    assert len(scene.a.requests) + len(scene.b.requests) == 1
    assert attempts(scene.edge, reply) == [(520, "invalid_response")]


def test_an_unknown_transfer_coding_is_read_until_close_and_relayed(scene: Scene) -> None:
    reply = scene.edge.get("/raw/odd-coding", host="two.test")

    assert (reply.status, reply.body) == (200, b"hello")
    assert reply.header("transfer-encoding") in (None, "chunked")


def test_a_transfer_encoding_ending_in_a_comma_is_framed_as_llhttp_frames_it(
    scene: Scene,
) -> None:
    reply = scene.edge.get("/raw/te-trailing-comma", host="two.test")

    assert (reply.status, reply.body) == (200, b"5\r\nhello\r\n0\r\n\r\n")


def test_slow_response_head_gives_524_and_is_not_retried(scene: Scene) -> None:
    started = time.monotonic()

    reply = scene.edge.request("POST", "/hold/never", host="two.test", body=b"charge card")

    assert_edge_page(reply, 524, scene.a.address, scene.b.address)
    assert 0.5 <= time.monotonic() - started < 3
    assert len(scene.a.requests) + len(scene.b.requests) == 1
    assert attempts(scene.edge, reply) == [(524, "response_timeout")]


def test_response_cut_short_by_the_origin_breaks_the_client_connection(scene: Scene) -> None:
    with Client(scene.edge.port) as client:
        client.send(build("GET", "/truncated/10000", host="two.test"))
        with pytest.raises(ClientError, match="body bytes missing"):
            client.read_reply()

    entry = scene.edge.wait_for_log(lambda e: e.get("path") == "/truncated/10000")
    assert entry["outcome"] == "origin_abort"


# -- no zone, no origin --------------------------------------------------------------------


def test_unknown_host_gets_421_page_and_reaches_no_origin(scene: Scene) -> None:
    reply = scene.edge.get("/", host="other.test")

    assert_edge_page(reply, 421)
    assert "This site is not served here." in reply.text
    assert scene.a.requests == scene.b.requests == []
    assert scene.edge.log_for_ray(reply.header("og-ray"))["outcome"] == "no_zone"


def test_wildcard_hostname_routes_subdomains_but_not_the_apex(scene: Scene) -> None:
    deep = scene.edge.get("/", host="a.b.wild.test")
    apex = scene.edge.get("/", host="wild.test")

    assert deep.status == 200
    assert apex.status == 421


def test_every_pool_disabled_gives_530(scene: Scene) -> None:
    reply = scene.edge.get("/", host="disabled.test")

    assert_edge_page(reply, 530, scene.a.address)
    assert reply.header("og-error-type") == "530"
    assert scene.a.requests == []
    assert scene.edge.log_for_ray(reply.header("og-ray"))["outcome"] == "no_origin"


def test_every_origin_disabled_or_weightless_gives_530(scene: Scene) -> None:
    reply = scene.edge.get("/", host="weightless.test")

    assert reply.status == 530
    assert scene.a.requests == scene.b.requests == []


def test_backup_pool_serves_when_first_pool_is_disabled(scene: Scene) -> None:
    reply = scene.edge.get("/", host="backup.test")

    assert reply.status == 200
    assert reply.header("x-origin") == "b"
