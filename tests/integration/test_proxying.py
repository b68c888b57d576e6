"""Proxying through the real edge: bodies both ways, framing conversions, keep-alive reuse."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest
from support.client import Client, build, chunked, request
from support.edge import Edge, site_config
from support.origin import Origin, pattern_bytes

pytestmark = pytest.mark.integration

MB = 1024 * 1024


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    origin = Origin("a").start()
    yield origin
    origin.stop()


@pytest.fixture(scope="module")
def edge(module_edges, origin: Origin) -> Edge:
    return module_edges(site_config(origin.address))


@pytest.fixture(scope="module")
def memory_edge(module_edges, origin: Origin) -> Edge:
    """An edge for the memory tests alone, so its peak RSS is theirs."""
    return module_edges(site_config(origin.address))


@pytest.fixture(autouse=True)
def fresh_record(origin: Origin) -> None:
    origin.forget()


# -- responses ---------------------------------------------------------------------------------


def test_content_length_response_passes_through_byte_for_byte(edge: Edge) -> None:
    reply = edge.get("/bytes/5000")

    assert reply.status == 200
    assert reply.header("content-length") == "5000"
    assert reply.header("x-origin") == "a"
    assert reply.body == pattern_bytes(5000)


def test_chunked_response_reaches_http11_client_chunked(edge: Edge) -> None:
    reply = edge.get("/chunked/20000")

    assert reply.status == 200
    assert reply.header("transfer-encoding") == "chunked"
    assert reply.header("content-length") is None
    assert reply.body == pattern_bytes(20000)


def test_chunked_response_reaches_http10_client_close_delimited(edge: Edge) -> None:
    with Client(edge.port) as client:
        client.send(build("GET", "/chunked/9000", version="HTTP/1.0"))
        reply = client.read_reply()

        assert reply.status == 200
        assert reply.header("transfer-encoding") is None
        assert reply.body == pattern_bytes(9000)
        assert client.is_closed()


def test_close_delimited_response_is_rechunked_and_client_connection_kept(edge: Edge) -> None:
    with Client(edge.port) as client:
        first = client.request("GET", "/close/3000")
        second = client.request("GET", "/after")

    assert first.status == 200
    assert first.header("transfer-encoding") == "chunked"
    assert first.body == pattern_bytes(3000)
    assert second.body == b"a GET /after"


def test_head_gets_the_get_headers_and_no_body(edge: Edge, origin: Origin) -> None:
    with Client(edge.port) as client:
        head = client.request("HEAD", "/bytes/1000")
        after = client.request("GET", "/after-head")

    assert head.status == 200
    assert head.header("content-length") == "1000"
    assert head.body == b""
    assert after.body == b"a GET /after-head"  # no stray body bytes were left on the wire
    assert [r.method for r in origin.requests] == ["HEAD", "GET"]


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status_is_relayed_without_body(edge: Edge, status: int) -> None:
    with Client(edge.port) as client:
        reply = client.request("GET", f"/status/{status}")
        after = client.request("GET", "/after")

    assert reply.status == status
    assert reply.header("etag") == '"v1"'
    assert reply.header("transfer-encoding") is None
    assert reply.header("content-length") is None
    assert after.body == b"a GET /after"


def test_interim_103_from_the_origin_is_not_passed_on(edge: Edge) -> None:
    reply = edge.get("/early-hints")

    assert reply.interim == []
    assert reply.status == 200
    assert reply.body == b"after hints"


# -- request bodies ----------------------------------------------------------------------------


def test_post_with_content_length_reaches_origin_with_that_length(
    edge: Edge, origin: Origin
) -> None:
    body = b"field=value&" * 1000

    reply = edge.request("POST", "/echo", body=body, headers=[("Content-Type", "text/form")])

    assert reply.status == 200
    assert reply.body == body
    assert reply.header("content-type") == "text/form"
    seen = origin.requests[0]
    assert seen.header("content-length") == str(len(body))
    assert seen.header("transfer-encoding") is None
    assert seen.body == body


def test_small_chunked_request_body_reaches_the_origin_with_its_exact_length(
    edge: Edge, origin: Origin
) -> None:
    raw = build(
        "POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
        body=chunked(b"hello ", b"chunked ", b"world"),
    )

    with Client(edge.port) as client:
        client.send(raw)
        reply = client.read_reply()

    assert reply.status == 200
    assert reply.body == b"hello chunked world"
    seen = origin.requests[0]
    assert seen.header("transfer-encoding") is None
    assert seen.header("content-length") == "19"
    assert seen.body == b"hello chunked world"


def test_large_chunked_request_body_is_rechunked_by_the_edge(edge: Edge, origin: Origin) -> None:
    pieces = [pattern_bytes(40 * 1024) for _ in range(4)]
    raw = build(
        "POST", "/echo", headers=[("Transfer-Encoding", "chunked")], body=chunked(*pieces)
    )

    with Client(edge.port) as client:
        client.send(raw)
        reply = client.read_reply()

    assert reply.status == 200
    assert reply.body == b"".join(pieces)
    seen = origin.requests[0]
    assert seen.header("transfer-encoding") == "chunked"
    assert seen.header("content-length") is None


def test_body_larger_than_replay_buffer_streams_with_its_length(
    edge: Edge, origin: Origin
) -> None:
    body = pattern_bytes(300 * 1024)

    reply = edge.request("PUT", "/upload", body=body)

    assert reply.status == 200
    seen = origin.requests[0]
    assert seen.method == "PUT"
    assert seen.header("content-length") == str(len(body))
    assert seen.body == body


def test_post_without_body_reaches_origin_with_content_length_zero(
    edge: Edge, origin: Origin
) -> None:
    reply = edge.request("POST", "/empty")

    assert reply.status == 200
    assert origin.requests[0].header("content-length") == "0"
    assert origin.requests[0].body == b""


def test_expect_100_continue_gets_interim_response_before_the_body(
    edge: Edge, origin: Origin
) -> None:
    body = b"x" * 2000
    head = build("POST", "/echo", headers=[("Expect", "100-continue"),
                                           ("Content-Length", str(len(body)))])

    with Client(edge.port) as client:
        client.send(head)
        interim = client.read_interim()
        client.send(body)
        reply = client.read_reply()

    assert interim == 100
    assert reply.status == 200
    assert reply.body == body
    assert origin.requests[0].header("expect") is None


def test_expect_100_continue_with_streamed_body(edge: Edge, origin: Origin) -> None:
    body = pattern_bytes(200 * 1024)
    head = build("POST", "/upload", headers=[("Expect", "100-continue"),
                                             ("Content-Length", str(len(body)))])

    with Client(edge.port) as client:
        client.send(head)
        interim = client.read_interim()
        client.send(body)
        reply = client.read_reply()

    assert interim == 100
    assert reply.status == 200
    assert origin.requests[0].body == body


def test_50mb_upload_streams_through_in_bounded_memory(
    memory_edge: Edge, origin: Origin
) -> None:
    edge, size = memory_edge, 50 * MB
    edge.request("POST", "/warm-up", body=pattern_bytes(MB))
    peak_before = edge.memory_kib("VmHWM")
    digest = hashlib.sha256()

    with Client(edge.port, timeout=30) as client:
        client.send(build("POST", "/sink", headers=[("Content-Length", str(size))]))
        sent = 0
        while sent < size:
            piece = pattern_bytes(min(MB, size - sent))
            client.send(piece)
            digest.update(piece)
            sent += len(piece)
        reply = client.read_reply()

    assert reply.status == 200
    seen = origin.requests[-1]
    assert seen.body_size == size
    assert seen.body_sha256 == digest.hexdigest()
    grown = edge.memory_kib("VmHWM") - peak_before
    assert grown < 32 * 1024, f"edge peak RSS grew {grown} KiB for a {size} byte upload"


def test_50mb_download_streams_through_in_bounded_memory(memory_edge: Edge) -> None:
    edge, size = memory_edge, 50 * MB
    edge.get("/bytes/1048576")
    peak_before = edge.memory_kib("VmHWM")
    digest = hashlib.sha256()
    received = 0

    def take(data: bytes) -> None:
        nonlocal received
        received += len(data)
        digest.update(data)

    with Client(edge.port, timeout=30) as client:
        client.send(build("GET", f"/bytes/{size}"))
        reply = client.read_reply(sink=take)

    assert reply.status == 200
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(pattern_bytes(size)).hexdigest()
    grown = edge.memory_kib("VmHWM") - peak_before
    assert grown < 32 * 1024, f"edge peak RSS grew {grown} KiB for a {size} byte download"


# -- request targets -----------------------------------------------------------------------


def test_options_asterisk_reaches_origin_as_asterisk(edge: Edge, origin: Origin) -> None:
    reply = edge.request("OPTIONS", "*")

    assert reply.status == 200
    assert origin.requests[0].method == "OPTIONS"
    assert origin.requests[0].target == "*"


def test_absolute_form_target_routes_by_its_authority(edge: Edge, origin: Origin) -> None:
    reply = edge.get("http://site.test/abs?q=1", host="unknown.test")

    assert reply.status == 200
    seen = origin.requests[0]
    assert seen.target == "/abs?q=1"
    # RFC 9112 §3.2.2: the received Host is replaced by the target's authority.
    assert seen.header("host") == "site.test"
    assert seen.header("x-forwarded-host") == "site.test"


def test_path_is_forwarded_in_canonical_form(edge: Edge, origin: Origin) -> None:
    edge.get("/a/./b/../c/%7Euser/%2f?x=%41")

    assert origin.requests[0].target == "/a/c/~user/%2F?x=%41"


def test_host_is_matched_case_insensitively_without_port_or_trailing_dot(
    edge: Edge, origin: Origin
) -> None:
    reply = edge.get("/", host="SITE.Test.:8080")

    assert reply.status == 200
    # The origin gets the canonical host the edge routed and keyed on (rule G6).
    assert origin.requests[0].header("host") == "site.test"


# -- connections ---------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(edge: Edge) -> None:
    with Client(edge.port) as client:
        client.send(
            build("GET", "/one") + build("GET", "/chunked/5000") + build("HEAD", "/three")
            + build("POST", "/echo", body=b"four")
        )
        replies = [client.read_reply(), client.read_reply(), client.read_reply(True),
                   client.read_reply()]

    assert [r.status for r in replies] == [200, 200, 200, 200]
    assert replies[0].body == b"a GET /one"
    assert replies[1].body == pattern_bytes(5000)
    assert replies[2].body == b""
    assert replies[3].body == b"four"
    rays = {r.header("og-ray") for r in replies}
    assert len(rays) == 4


def test_client_asking_to_close_gets_connection_close_and_a_closed_connection(
    edge: Edge,
) -> None:
    with Client(edge.port) as client:
        reply = client.request("GET", "/", headers=[("Connection", "close")])

        assert reply.status == 200
        assert reply.header("connection") == "close"
        assert client.is_closed()


def test_client_leaving_mid_download_ends_the_exchange(edge: Edge) -> None:
    with Client(edge.port) as client:
        client.send(build("GET", f"/bytes/{50 * MB}"))
        client._fill()

    entry = edge.wait_for_log(lambda e: e.get("path") == f"/bytes/{50 * MB}")
    assert entry["outcome"] == "client_abort"
    assert entry["bytes_out"] < 50 * MB
    assert edge.get("/still-serving").status == 200


def test_one_client_connection_carries_many_requests(edge: Edge) -> None:
    with Client(edge.port) as client:
        bodies = [client.request("GET", f"/n{i}").body for i in range(5)]

    assert bodies == [f"a GET /n{i}".encode() for i in range(5)]


def test_origin_connection_is_reused_across_client_connections(
    edge: Edge, origin: Origin
) -> None:
    replies = [request(edge.port, "GET", f"/r{i}") for i in range(10)]

    assert [r.status for r in replies] == [200] * 10
    assert len(origin.requests) == 10
    assert len({r.connection for r in origin.requests}) == 1
    assert origin.connections <= 1  # new ones since the test began; one may be pooled already


def test_concurrent_requests_use_separate_origin_connections(edge: Edge, origin: Origin) -> None:
    with Client(edge.port) as first, Client(edge.port) as second:
        first.send(build("GET", "/hold/both"))
        second.send(build("GET", "/hold/both"))
        origin.wait_for_requests(2)
        origin.release("both")
        replies = [first.read_reply(), second.read_reply()]

    assert [r.body for r in replies] == [b"released both"] * 2
    assert len({r.connection for r in origin.requests}) == 2


def test_idle_connection_the_origin_dropped_is_retried_on_a_fresh_one(
    edge: Edge, origin: Origin
) -> None:
    first = edge.get("/first-per-connection")

    second = edge.get("/first-per-connection")

    assert (first.status, second.status) == (200, 200)
    assert first.body.startswith(b"first on connection ")
    assert second.body.startswith(b"first on connection ")
    assert first.body != second.body
    entry = edge.log_for_ray(second.header("og-ray"))
    assert [a["status"] for a in entry["attempts"]] == [200]
    # The second request was dropped unanswered on the pooled connection, then sent again.
    ray = second.header("og-ray")
    tries = [r.connection for r in origin.requests if r.header("og-ray") == ray]
    assert len(tries) == 2
    assert second.body == b"first on connection %d" % tries[1]


def test_small_post_on_a_dropped_idle_connection_is_retried_too(
    edge: Edge, origin: Origin
) -> None:
    edge.get("/first-per-connection")

    reply = edge.request("POST", "/first-per-connection", body=b"small body")

    assert reply.status == 200
    assert reply.body.startswith(b"first on connection ")
    assert origin.requests[-1].body == b"small body"
    assert reply.body == b"first on connection %d" % origin.requests[-1].connection


def test_connection_closed_by_origin_after_reply_is_not_reused(
    edge: Edge, origin: Origin
) -> None:
    first = edge.get("/reply-then-close")

    second = edge.get("/next")

    assert (first.status, second.status) == (200, 200)
    assert second.body == b"a GET /next"
    closed, after = origin.requests[0].connection, origin.requests[-1].connection
    assert after != closed


def test_slow_origin_does_not_block_other_clients(edge: Edge, origin: Origin) -> None:
    results: list[int] = []
    with Client(edge.port) as held:
        held.send(build("GET", "/hold/slow"))
        origin.wait_for_requests(1)
        thread = threading.Thread(target=lambda: results.append(edge.get("/quick").status))
        thread.start()
        thread.join(5)
        origin.release("slow")
        held_reply = held.read_reply()

    assert results == [200]
    assert held_reply.body == b"released slow"
