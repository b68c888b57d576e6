"""Strict request framing (security rule G1; RFC 9112 §2-§7).

Every malformed or ambiguous request gets a 4xx/5xx with `Connection: close`, the edge closes
the connection, and the origin never sees a request: after each attack a sentinel request is
sent, and it must be the only thing the origin received.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from support.client import Client, build, exchange
from support.edge import Edge, site_config
from support.origin import Origin

pytestmark = pytest.mark.integration

LIMITS = {
    "max_head_size": "4KB",
    "max_header_count": 20,
    "max_url_size": "1KB",
    "max_body_size": "64KB",
    "head_timeout": "500ms",
    "body_timeout": "500ms",
    "keepalive_timeout": "1s",
}
GET = b"GET / HTTP/1.1\r\nHost: site.test\r\n"


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


def assert_refused(edge: Edge, origin: Origin, raw: bytes, status: int) -> None:
    """`raw` is answered with `status` and Connection: close, the connection is closed, and
    the origin receives nothing from it."""
    reply, closed = exchange(edge.port, raw)

    assert reply.status == status, reply.text
    assert reply.header("connection") == "close"
    assert reply.header("og-ray")
    assert closed, "the edge kept the connection open after a framing error"
    assert_origin_saw_only_the_sentinel(edge, origin)


def assert_origin_saw_only_the_sentinel(edge: Edge, origin: Origin) -> None:
    assert edge.get("/sentinel").status == 200
    assert [r.target for r in origin.wait_for_requests(1)] == ["/sentinel"]


# -- message length (RFC 9112 §6.3) ----------------------------------------------------------


def test_content_length_with_transfer_encoding_is_refused(edge: Edge, origin: Origin) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 5\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nhello")
    assert_refused(edge, origin, raw, 400)


def test_transfer_encoding_before_content_length_is_refused(edge: Edge, origin: Origin) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n"
           b"Content-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n")
    assert_refused(edge, origin, raw, 400)


@pytest.mark.parametrize("lengths", [(b"5", b"5"), (b"5", b"6")], ids=["same", "different"])
def test_duplicate_content_length_is_refused(
    edge: Edge, origin: Origin, lengths: tuple[bytes, bytes]
) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: %s\r\n"
           b"Content-Length: %s\r\n\r\nhello!" % lengths)
    assert_refused(edge, origin, raw, 400)


@pytest.mark.parametrize(
    "value",
    [b"+5", b"-5", b"0x5", b"5 5", b"5,5", b"5_0", b"5.0", b"\xd9\xa5", b"\xef\xbc\x95",
     b"5\x0b", b"\x0c5", b"", b"99999999999999999999999"],
    ids=["plus", "minus", "hex", "two-numbers", "list", "underscore", "decimal-point",
         "arabic-digit", "fullwidth-digit", "vertical-tab", "form-feed", "empty", "overflow"],
)
def test_invalid_content_length_is_refused(edge: Edge, origin: Origin, value: bytes) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: %s\r\n\r\nhello" % value
    assert_refused(edge, origin, raw, 400)


@pytest.mark.parametrize(
    "coding",
    [b"gzip", b"chunked, gzip", b"identity", b"xchunked", b"chunked\x0b"],
    ids=["gzip", "chunked-not-last", "identity", "xchunked", "vertical-tab"],
)
def test_transfer_coding_other_than_chunked_is_refused(
    edge: Edge, origin: Origin, coding: bytes
) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: %s\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\n" % coding)
    reply, closed = exchange(edge.port, raw)

    # RFC 9112 §6.1: an unknown coding is 501; chunked that is not final is 400.
    assert reply.status in (400, 501)
    assert reply.header("connection") == "close"
    assert closed
    assert_origin_saw_only_the_sentinel(edge, origin)


def test_gzip_then_chunked_is_not_implemented(edge: Edge, origin: Origin) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\n")
    assert_refused(edge, origin, raw, 501)


def test_chunked_applied_twice_is_refused(edge: Edge, origin: Origin) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert_refused(edge, origin, raw, 400)


def test_transfer_encoding_in_http10_request_is_refused(edge: Edge, origin: Origin) -> None:
    raw = (b"POST / HTTP/1.0\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\n")
    assert_refused(edge, origin, raw, 400)


@pytest.mark.parametrize(
    "size_line", [b"0x5", b"+5", b"5 5", b"fffffffffffffffffff", b""],
    ids=["hex-prefix", "plus", "two-numbers", "overflow", "missing"],
)
def test_invalid_chunk_size_closes_the_connection_and_nothing_is_delivered(
    edge: Edge, origin: Origin, size_line: bytes
) -> None:
    raw = (b"POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"%s\r\nhello\r\n0\r\n\r\n" % size_line)
    with Client(edge.port) as client:
        client.send(raw)
        reply = client.read_reply()
        assert client.is_closed()

    assert reply.status == 400
    assert reply.header("connection") == "close"
    assert_origin_saw_only_the_sentinel(edge, origin)


# -- the request head (RFC 9112 §2.2, §5) --------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\nHost: site.test\n\n",
        b"GET / HTTP/1.1\r\nHost: site.test\nX-A: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: site.test\r\nX-A: b\rX-B: c\r\n\r\n",
        b"GET / HTTP/1.1\rHost: site.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: site.test\r\nX-A: b\x00c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: site.test\r\nX-A: b\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: site.test\r\nX-A: b\r\n\tfolded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : site.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost\t: site.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nX@Y: z\r\nHost: site.test\r\n\r\n",
        b"GET / HTTP/1.1\r\n\xc3\xa9: z\r\nHost: site.test\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty-name\r\nHost: site.test\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: site.test\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: site.test\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: site.test\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: site.test\r\n\r\n",
    ],
    ids=["bare-lf", "bare-lf-one-line", "bare-cr-in-value", "bare-cr-after-request-line",
         "nul-in-value", "obs-fold-space", "obs-fold-tab", "space-before-colon",
         "tab-before-colon", "bad-name-char", "non-ascii-name", "empty-name", "bad-method",
         "trailing-space-version", "space-in-target", "del-in-target"],
)
def test_malformed_request_head_is_refused(edge: Edge, origin: Origin, raw: bytes) -> None:
    assert_refused(edge, origin, raw, 400)


def test_http11_request_without_host_is_refused(edge: Edge, origin: Origin) -> None:
    assert_refused(edge, origin, b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400)


def test_two_host_headers_are_refused(edge: Edge, origin: Origin) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: site.test\r\nHost: other.test\r\n\r\n"
    assert_refused(edge, origin, raw, 400)


@pytest.mark.parametrize(
    "host", [b"site.test:abc", b"site test", b"site.test:99999999", b"[::1", b"site.test/x",
             b"user@site.test"],
)
def test_invalid_host_is_refused(edge: Edge, origin: Origin, host: bytes) -> None:
    assert_refused(edge, origin, b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host, 400)


def test_absolute_form_with_userinfo_is_refused(edge: Edge, origin: Origin) -> None:
    raw = b"GET http://user@site.test/ HTTP/1.1\r\nHost: site.test\r\n\r\n"
    assert_refused(edge, origin, raw, 400)


@pytest.mark.parametrize("path", [b"/%zz", b"/a%2", b"/%00secret"])
def test_invalid_percent_encoding_in_path_is_refused(
    edge: Edge, origin: Origin, path: bytes
) -> None:
    assert_refused(edge, origin, b"GET %s HTTP/1.1\r\nHost: site.test\r\n\r\n" % path, 400)


def test_http2_version_string_gets_505(edge: Edge, origin: Origin) -> None:
    assert_refused(edge, origin, b"GET / HTTP/2.0\r\nHost: site.test\r\n\r\n", 505)


@pytest.mark.parametrize(
    "version", [b"HTTP/3.0", b"HTTP/1.2", b"HTTP/1.x", b"HTTP/11", b"http/1.1", b"HTTP/1.1.1"]
)
def test_malformed_http_version_is_refused(edge: Edge, origin: Origin, version: bytes) -> None:
    assert_refused(edge, origin, b"GET / %s\r\nHost: site.test\r\n\r\n" % version, 400)


def test_asterisk_target_with_a_method_other_than_options_is_refused(
    edge: Edge, origin: Origin
) -> None:
    assert_refused(edge, origin, b"GET * HTTP/1.1\r\nHost: site.test\r\n\r\n", 400)


def test_unsupported_expectation_is_refused(edge: Edge, origin: Origin) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: site.test\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx"
    assert_refused(edge, origin, raw, 417)


def test_connect_is_not_supported(edge: Edge, origin: Origin) -> None:
    assert_refused(edge, origin, b"CONNECT site.test:443 HTTP/1.1\r\nHost: site.test\r\n\r\n",
                   501)


def test_protocol_upgrade_is_refused_and_not_forwarded(edge: Edge, origin: Origin) -> None:
    raw = GET + b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    assert_refused(edge, origin, raw, 501)


H2C_OFFER = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n"


def test_an_h2c_offer_is_declined_and_served_as_http_1_1(edge: Edge, origin: Origin) -> None:
    # RFC 9110 §7.8: a server may ignore Upgrade (curl --http2 on http:// sends this offer).
    with Client(edge.port) as client:
        client.send(b"GET /offer HTTP/1.1\r\nHost: site.test\r\n" + H2C_OFFER + b"\r\n"
                    + build("GET", "/after-offer"))
        replies = [client.read_reply(), client.read_reply()]
    assert [r.status for r in replies] == [200, 200]
    assert all(r.header("upgrade") is None for r in replies)
    forwarded = origin.wait_for_requests(2)
    assert [r.target for r in forwarded] == ["/offer", "/after-offer"]
    assert [(r.header("upgrade"), r.header("http2-settings")) for r in forwarded] == [
        (None, None)
    ] * 2


def test_many_h2c_offers_in_one_read_are_each_answered(edge: Edge, origin: Origin) -> None:
    offers = 2000  # each restarts the parser: a loop, never one stack frame per head
    head = b"GET /o HTTP/1.1\r\nHost: site.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    with Client(edge.port, timeout=30) as client:
        client.send(head * offers + build("GET", "/last"))
        statuses = [client.read_reply().status for _ in range(offers + 1)]
    assert statuses == [200] * (offers + 1)
    assert origin.wait_for_requests(offers + 1)[-1].target == "/last"


def test_an_h2c_offer_with_a_body_is_refused(edge: Edge, origin: Origin) -> None:
    raw = (b"POST / HTTP/1.1\r\nHost: site.test\r\n" + H2C_OFFER
           + b"Content-Length: 5\r\n\r\nhello")
    assert_refused(edge, origin, raw, 501)


def test_an_upgrade_offering_h2c_and_another_protocol_is_refused(
    edge: Edge, origin: Origin
) -> None:
    raw = GET + b"Connection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n"
    assert_refused(edge, origin, raw, 501)


# -- limits (rule G7) ----------------------------------------------------------------------------


def test_request_head_over_the_size_limit_gets_431(edge: Edge, origin: Origin) -> None:
    raw = GET + b"X-Big: " + b"a" * 5000 + b"\r\n\r\n"
    assert_refused(edge, origin, raw, 431)


def test_request_head_over_the_size_limit_in_small_pieces_gets_431(
    edge: Edge, origin: Origin
) -> None:
    with Client(edge.port) as client:
        client.send(GET)
        sent = len(GET)
        while sent <= 4096:  # stop at the byte that crosses the limit
            field = b"X-Filler: %s\r\n" % (b"b" * 500)
            client.send(field)
            sent += len(field)
        reply = client.read_reply()
        assert client.is_closed()

    assert reply.status == 431
    assert_origin_saw_only_the_sentinel(edge, origin)


def test_too_many_header_fields_get_431(edge: Edge, origin: Origin) -> None:
    raw = GET + b"".join(b"X-H%d: v\r\n" % i for i in range(25)) + b"\r\n"
    assert_refused(edge, origin, raw, 431)


def test_request_target_over_the_limit_gets_414(edge: Edge, origin: Origin) -> None:
    raw = b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: site.test\r\n\r\n"
    assert_refused(edge, origin, raw, 414)


def test_declared_body_over_the_limit_gets_413(edge: Edge, origin: Origin) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 70000\r\n\r\n"
    assert_refused(edge, origin, raw, 413)


def test_chunked_body_growing_over_the_limit_is_cut_off(edge: Edge, origin: Origin) -> None:
    piece = b"%x\r\n%s\r\n" % (16384, b"z" * 16384)
    with Client(edge.port) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(5):
            client.send(piece)
        reply = client.read_reply()
        assert client.is_closed()

    assert reply.status == 413
    assert_origin_saw_only_the_sentinel(edge, origin)


def test_request_head_not_finished_in_time_gets_408(edge: Edge, origin: Origin) -> None:
    with Client(edge.port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: site.test\r\nX-Slow: ")
        reply = client.read_reply()
        assert client.is_closed()

    assert reply.status == 408
    assert reply.header("connection") == "close"
    assert_origin_saw_only_the_sentinel(edge, origin)


def test_request_body_not_received_in_time_gets_408(edge: Edge, origin: Origin) -> None:
    with Client(edge.port) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: site.test\r\nContent-Length: 100\r\n\r\n"
                    b"only ten b")
        reply = client.read_reply()
        assert client.is_closed()

    assert reply.status == 408
    assert reply.header("connection") == "close"
    assert_origin_saw_only_the_sentinel(edge, origin)


def test_idle_client_connection_is_closed_after_the_keepalive_timeout(edge: Edge) -> None:
    with Client(edge.port) as client:
        assert client.request("GET", "/").status == 200
        started = time.monotonic()

        assert client.is_closed()

    assert 0.9 < time.monotonic() - started < 3


def test_head_trickled_byte_by_byte_still_gets_408_at_the_deadline(
    edge: Edge, origin: Origin
) -> None:
    with Client(edge.port) as client:
        client.send(b"G")
        for byte in b"ET / HTTP/1.1\r\nHost: site.test\r\n":
            client.send(bytes([byte]))
        # No single gap is long, but the whole head has one deadline.
        reply = client.read_reply()

    assert reply.status == 408


# -- smuggling -------------------------------------------------------------------------------


def test_request_hidden_in_a_body_reaches_the_origin_only_as_body(
    edge: Edge, origin: Origin
) -> None:
    hidden = b"GET /smuggled HTTP/1.1\r\nHost: site.test\r\n\r\n"
    raw = b"POST /echo HTTP/1.1\r\nHost: site.test\r\nContent-Length: %d\r\n\r\n%s" % (
        len(hidden), hidden)

    with Client(edge.port) as client:
        client.send(raw)
        reply = client.read_reply()
        follow_up = client.request("GET", "/next")

    assert reply.body == hidden
    assert follow_up.body == b"a GET /next"
    assert [(r.method, r.target) for r in origin.requests] == [("POST", "/echo"), ("GET", "/next")]
    assert origin.requests[0].header("content-length") == str(len(hidden))


def test_get_with_a_body_hiding_a_request_is_forwarded_with_its_length(
    edge: Edge, origin: Origin
) -> None:
    hidden = b"GET /smuggled HTTP/1.1\r\nHost: site.test\r\n\r\n"
    raw = b"GET /echo HTTP/1.1\r\nHost: site.test\r\nContent-Length: %d\r\n\r\n%s" % (
        len(hidden), hidden)

    with Client(edge.port) as client:
        client.send(raw)
        reply = client.read_reply()

    assert reply.status == 200
    assert [r.target for r in origin.requests] == ["/echo"]
    assert origin.requests[0].body == hidden


def test_chunked_body_hiding_a_request_after_the_last_chunk_is_a_new_request(
    edge: Edge, origin: Origin
) -> None:
    raw = (b"POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: site.test\r\n\r\n")

    with Client(edge.port) as client:
        client.send(raw)
        first, second = client.read_reply(), client.read_reply()

    assert (first.body, second.body) == (b"hello", b"a GET /second")
    assert [r.target for r in origin.requests] == ["/echo", "/second"]
    # The origin gets the edge's own framing, never the client's bytes (rule G2): a small
    # chunked body is read whole first and sent with its exact length.
    assert origin.requests[0].header("transfer-encoding") is None
    assert origin.requests[0].header("content-length") == "5"


def test_body_sent_to_an_unknown_host_is_never_read_as_a_request(
    edge: Edge, origin: Origin
) -> None:
    hidden = b"GET /smuggled HTTP/1.1\r\nHost: site.test\r\n\r\n"
    raw = b"POST / HTTP/1.1\r\nHost: nowhere.test\r\nContent-Length: %d\r\n\r\n%s" % (
        len(hidden), hidden)

    with Client(edge.port) as client:
        client.send(raw + build("GET", "/after"))
        refused = client.read_reply()
        after = client.read_reply()

    assert refused.status == 421
    assert after.body == b"a GET /after"
    assert [r.target for r in origin.requests] == ["/after"]


def test_unread_body_of_a_locally_answered_request_closes_the_connection(
    edge: Edge, origin: Origin
) -> None:
    head = b"POST / HTTP/1.1\r\nHost: nowhere.test\r\nExpect: 100-continue\r\n" \
           b"Content-Length: 1000\r\n\r\n"

    with Client(edge.port) as client:
        client.send(head)
        reply = client.read_reply()
        client.send(b"GET /smuggled HTTP/1.1\r\nHost: site.test\r\n\r\n")
        closed = client.is_closed()

    # No 100 Continue: the edge answered without wanting the body (RFC 9110 §10.1.1), and
    # since the body never came it cannot find the next request's start (rule G3).
    assert reply.interim == []
    assert reply.status == 421
    assert reply.header("connection") == "close"
    assert closed
    assert_origin_saw_only_the_sentinel(edge, origin)


def test_bad_request_pipelined_after_a_good_one_is_refused_after_the_good_answer(
    edge: Edge, origin: Origin
) -> None:
    with Client(edge.port) as client:
        client.send(build("GET", "/good")
                    + b"GET /bad HTTP/1.1\r\nHost: site.test\r\nContent-Length: +1\r\n\r\nx"
                    + build("GET", "/after-bad"))
        good = client.read_reply()
        bad = client.read_reply()
        assert client.is_closed()

    assert good.status == 200
    assert bad.status == 400
    assert [r.target for r in origin.requests] == ["/good"]
