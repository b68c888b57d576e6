"""The pass-through fast path: a bodiless GET or HEAD whose origin has an idle pooled
connection is relayed from the origin connection's callbacks (relay.py), not by a task.

Each test first warms the pool with one request, so the request under test finds an idle
connection; with a single origin that is certain, and the origin's connection count shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support.client import Client, ClientError, build
from support.edge import Edge, site_config
from support.origin import Origin, pattern_bytes

pytestmark = pytest.mark.integration


@dataclass
class Scene:
    edge: Edge
    origin: Origin


@pytest.fixture(scope="module")
def scene(module_edges) -> Iterator[Scene]:
    origin = Origin("o").start()
    timeouts = {"connect": "300ms", "response_head": "500ms"}
    edge = module_edges(site_config(origin.address, zone={"timeouts": timeouts}))
    yield Scene(edge, origin)
    origin.stop()


@pytest.fixture(autouse=True)
def warm_pool(scene: Scene) -> None:
    assert scene.edge.get("/warm", host="site.test").status == 200
    scene.origin.forget()


def attempts(scene: Scene, ray: str | None) -> list[tuple[int, str]]:
    entry = scene.edge.log_for_ray(ray)
    return [(a["status"], a["error"]) for a in entry["attempts"]]


def test_sequential_gets_reuse_the_pooled_connection(scene: Scene) -> None:
    for number in range(20):
        reply = scene.edge.get(f"/page/{number}", host="site.test")
        assert reply.status == 200
        assert reply.text == f"o GET /page/{number}"

    assert scene.origin.connections == 0  # every request went out on the warm connection


def test_large_and_chunked_bodies_stream_whole(scene: Scene) -> None:
    big = scene.edge.get("/bytes/3000000", host="site.test")
    chunked = scene.edge.get("/chunked/300000", host="site.test")

    assert big.body == pattern_bytes(3_000_000)
    assert big.header("content-length") == "3000000"
    assert chunked.body == pattern_bytes(300_000)
    assert chunked.header("transfer-encoding") == "chunked"


def test_head_gets_the_length_and_no_body_and_the_connection_goes_on(scene: Scene) -> None:
    with Client(scene.edge.port) as client:
        head = client.request("HEAD", "/bytes/100", host="site.test")
        after = client.request("GET", "/after-head", host="site.test")

    assert head.status == 200
    assert head.header("content-length") == "100"
    assert head.body == b""
    assert after.text == "o GET /after-head"


def test_pipelined_gets_are_answered_in_order(scene: Scene) -> None:
    with Client(scene.edge.port) as client:
        client.send(b"".join(build("GET", f"/p/{n}", host="site.test") for n in range(6)))
        texts = [client.read_reply().text for _ in range(6)]

    assert texts == [f"o GET /p/{n}" for n in range(6)]


def test_broken_reply_on_a_pooled_connection_gives_520_once(scene: Scene) -> None:
    reply = scene.edge.get("/garbage", host="site.test")

    assert reply.status == 520
    assert scene.origin.address not in reply.text
    assert len(scene.origin.requests) == 1
    assert attempts(scene, reply.header("og-ray")) == [(520, "invalid_response")]


def test_slow_head_on_a_pooled_connection_gives_524_once(scene: Scene) -> None:
    reply = scene.edge.get("/hold/never", host="site.test")

    assert reply.status == 524
    assert len(scene.origin.requests) == 1
    assert attempts(scene, reply.header("og-ray")) == [(524, "response_timeout")]


def test_pooled_connection_the_origin_dropped_is_retried_on_a_new_one(scene: Scene) -> None:
    # The warm connection has served one request, so the origin drops this one unanswered:
    # the edge's fresh connection then answers it, and the client never sees the failure.
    reply = scene.edge.get("/first-per-connection", host="site.test")

    assert reply.status == 200
    assert reply.text.startswith("first on connection")
    assert scene.origin.connections == 1
    entry = scene.edge.log_for_ray(reply.header("og-ray"))
    assert entry["outcome"] == "proxied"
    assert [(a["status"], a["error"]) for a in entry["attempts"]] == [(200, "")]


def test_body_cut_short_after_the_head_breaks_the_client_connection(scene: Scene) -> None:
    with Client(scene.edge.port) as client:
        client.send(build("GET", "/truncated/10000", host="site.test"))
        with pytest.raises(ClientError, match="body bytes missing"):
            client.read_reply()

    entry = scene.edge.wait_for_log(lambda e: e.get("path") == "/truncated/10000")
    assert entry["outcome"] == "origin_abort"
    assert scene.edge.get("/still-up", host="site.test").status == 200


def test_client_leaving_mid_body_is_logged_and_the_edge_serves_on(scene: Scene) -> None:
    with Client(scene.edge.port) as client:
        client.send(build("GET", "/bytes/50000000", host="site.test"))
        client.sock.recv(65536)  # the head and the first bytes, then leave

    entry = scene.edge.wait_for_log(lambda e: e.get("path") == "/bytes/50000000")
    assert entry["outcome"] == "client_abort"
    assert scene.edge.get("/still-up", host="site.test").status == 200


def test_slow_head_for_a_post_on_a_pooled_connection_is_not_sent_twice(scene: Scene) -> None:
    # The general path (a body) on a warm connection: a response-head timeout means the
    # origin has the request, so it is a 524, never a second try on a fresh connection.
    reply = scene.edge.request("POST", "/hold/never", host="site.test", body=b"charge card")

    assert reply.status == 524
    assert len(scene.origin.requests) == 1
    assert attempts(scene, reply.header("og-ray")) == [(524, "response_timeout")]
