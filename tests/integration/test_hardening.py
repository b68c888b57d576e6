"""Attacks found by review, each held: the origin and other clients never see their effect."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from support.client import Client, build
from support.edge import Edge, run_cli, site_config
from support.origin import Origin

LIMITS = {"head_timeout": "1s", "body_timeout": "2s"}


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    origin = Origin("a").start()
    yield origin
    origin.stop()


@pytest.fixture(scope="module")
def edge(module_edges, origin: Origin) -> Edge:
    return module_edges(site_config(origin.address, limits=LIMITS))


@pytest.fixture(autouse=True)
def fresh_record(origin: Origin) -> None:
    origin.forget()


def test_a_host_with_port_case_or_dot_reaches_the_origin_canonical(
    edge: Edge, origin: Origin
) -> None:
    for host in ("SITE.test:6666", "site.TEST.", "site.test"):
        assert edge.get("/logo.png", host=host).status == 200
    assert {r.header("host") for r in origin.requests} == {"site.test"}
    assert {r.header("x-forwarded-host") for r in origin.requests} == {"site.test"}


def test_bytes_after_a_complete_origin_response_never_reach_the_client(
    edge: Edge, origin: Origin
) -> None:
    for target in ("/overflow", "/overflow/partial"):
        with Client(edge.port) as client:
            first = client.request("GET", target)
            second = client.request("GET", "/after")
        assert (first.status, first.body) == (200, b"hello")
        assert first.header("x-injected") is None
        assert second.status == 200 and second.body == b"a GET /after"
        # The spoiled connection was not pooled: /after came on a new origin connection.
        seen = {r.target: r.connection for r in origin.requests}
        assert seen["/after"] != seen[target]
        origin.forget()


def test_a_101_from_the_origin_is_a_clean_520(edge: Edge, origin: Origin) -> None:
    reply = edge.get("/switch")
    assert reply.status == 520
    assert "Traceback" not in edge.stderr()


def test_trailer_fields_never_become_request_headers(edge: Edge, origin: Origin) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\nx\r\n0\r\nCookie: role=admin\r\nAuthorization: Bearer forged\r\n\r\n"
    )
    with Client(edge.port) as client:
        client.send(raw)
        reply = client.read_reply()
    assert reply.status == 200
    seen = origin.requests[0]
    assert seen.header("cookie") is None and seen.header("authorization") is None
    assert seen.body == b"x"


@pytest.mark.parametrize("bad_chunk", [b"0x5\r\nhello\r\n", b"5 \r\nhello\r\n", b"+5\r\nhello\r\n"])
def test_a_malformed_chunked_body_never_reaches_the_origin(
    edge: Edge, origin: Origin, bad_chunk: bytes
) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n" + bad_chunk + b"0\r\n\r\n"
    )
    with Client(edge.port) as client:
        client.send(raw)
        reply = client.read_reply()
        assert reply.status == 400
        assert client.is_closed()
    assert origin.requests == []


def test_endless_chunk_extensions_are_refused(edge: Edge, origin: Origin) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    with Client(edge.port) as client:
        client.send(head + b"1;" + b"x" * (256 * 1024) + b"\r\na\r\n0\r\n\r\n")
        reply = client.read_reply()
    assert reply.status in (400, 431)
    assert origin.requests == []


def test_other_proxies_identity_headers_are_not_forwarded(edge: Edge, origin: Origin) -> None:
    spoofed = [
        "CF-Connecting-IP", "X-Client-IP", "X-Cluster-Client-IP", "Fastly-Client-IP",
        "X-Original-Host", "X-Forwarded-Server", "X-Forwarded-Port", "X-Forwarded-Prefix",
        "X-Forwarded-Ssl", "Front-End-Https", "X-Forwarded-Scheme",
    ]
    edge.get("/", headers=[(name, "6.6.6.6") for name in spoofed])
    seen = origin.requests[0]
    assert [name for name in spoofed if seen.header(name.lower()) is not None] == []


def test_repeated_slashes_and_backslashes_are_one_canonical_path(
    edge: Edge, origin: Origin
) -> None:
    edge.get("//admin\\panel")
    assert origin.requests[0].target == "/admin/panel"


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_head_timeout(
    edge: Edge,
) -> None:
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        started = time.monotonic()
        data = sock.recv(1024)  # the edge closes (possibly after a 408) well before 5 s
        assert time.monotonic() - started < 4
        assert data == b"" or data.startswith(b"HTTP/1.1 408")


def test_check_refuses_a_cache_rule_with_a_bad_expression(tmp_path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "zones:\n"
        "  - name: a\n"
        "    hostnames: [a.test]\n"
        "    pools: [{name: m, origins: [{address: '127.0.0.1:1'}]}]\n"
        "    cache:\n"
        "      rules:\n"
        "        - name: pages\n"
        "          when: {expression: 'http.request.uri.path eq '}\n"
        "          cache: true\n"
    )
    result = run_cli("check", "-c", str(config))
    assert result.returncode == 1
    assert f"{config}:8: zones.0.cache.rules.0.when.expression: rule \"pages\"" in result.stderr
    assert "^" in result.stderr


def test_connections_past_the_cap_are_closed_at_once(start_edge, origin: Origin) -> None:
    edge = start_edge(site_config(origin.address, limits={"max_connections": 2}))
    held = [socket.create_connection(("127.0.0.1", edge.port), timeout=5) for _ in range(2)]
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as extra:
        started = time.monotonic()
        assert extra.recv(1024) == b""  # the third is closed without a byte read
        assert time.monotonic() - started < 2
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # once the others are gone, connections are served
        try:
            if edge.get("/").status == 200:
                break
        except Exception:
            time.sleep(0.05)
    else:
        raise AssertionError("the edge did not serve again after connections closed")


def test_a_client_not_reading_its_response_is_cut_even_while_trickling_a_body(
    start_edge, origin_a
) -> None:
    # A pipelined request body arriving byte by byte must not keep extending the deadline of
    # a response the client does not take (send_timeout).
    edge = start_edge(site_config(origin_a.address, limits={"send_timeout": "1s",
                                                             "body_timeout": "5s"}))
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(5)
        client.connect(("127.0.0.1", edge.port))
        client.sendall(build("GET", "/bytes/50000000", host="site.test")
                       + b"POST /x HTTP/1.1\r\nHost: site.test\r\nContent-Length: 100\r\n\r\n")
        started = time.monotonic()
        cut = False
        while time.monotonic() - started < 6:
            try:
                client.sendall(b"x")
            except OSError:  # reset by the edge
                cut = True
                break
            time.sleep(0.3)
        assert cut and time.monotonic() - started < 4


def test_pipelined_heads_before_a_body_in_one_read_are_not_taken_for_chunk_framing(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    cookie = ("Cookie", "c=" + "v" * 1000)
    gets = b"".join(build("GET", f"/g{i}", host="site.test", headers=[cookie]) for i in range(70))
    with Client(edge.port) as client:
        client.send(gets + b"POST /p HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked"
                    b"\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.3)
        client.send(b"0\r\n\r\n")
        statuses = [client.read_reply().status for _ in range(71)]
    assert statuses == [200] * 71
    assert origin_a.wait_for_requests(71)[-1].body == b"hello"


def test_a_pipelined_body_that_never_comes_gets_its_body_timeout(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address, limits={"body_timeout": "1s",
                                                             "keepalive_timeout": "10s"}))
    with Client(edge.port, timeout=8) as client:
        started = time.monotonic()
        client.send(build("GET", "/first", host="site.test")
                    + b"POST /x HTTP/1.1\r\nHost: site.test\r\nContent-Length: 100\r\n\r\n")
        assert client.read_reply().status == 200
        assert client.read_reply().status == 408
        assert time.monotonic() - started < 5


def test_pipelined_responses_nobody_reads_are_cut_at_the_send_timeout(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address, limits={"send_timeout": "1s"}))
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(10)
        client.connect(("127.0.0.1", edge.port))
        # Far more than the kernel's socket buffers hold, in responses that each fit in one
        # write: the edge's buffer fills at the end of some response, and the next request
        # starts while the client is still not reading.
        requests = b"".join(build("GET", "/bytes/60000", host="site.test") for _ in range(1000))
        client.sendall(requests)
        time.sleep(4)  # three send timeouts' worth: the edge must have given up by now
        client.setblocking(False)
        cut = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if not client.recv(1 << 20):
                    cut = True
                    break
            except BlockingIOError:
                time.sleep(0.05)
            except ConnectionResetError:
                cut = True
                break
        assert cut, "the edge kept writing to a client that stopped reading"

