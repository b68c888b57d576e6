"""One keep-alive connection to an origin, parsing responses with httptools.

Failures are values, named by the code the edge shows for them (spec §2.2): a refused connect
is 521, a connect timeout 522, no route or no name 523, a broken response 520, no response
head in time 524; over TLS, a failed handshake 525 and a certificate that does not verify 526.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable
from typing import Protocol

import httptools

from originguard.http.messages import Headers, ResponseHead
from originguard.http.wire import parse_decimal
from originguard.outcome import OriginError

MAX_RESPONSE_HEAD = 128 * 1024  # spec §2.2: larger origin response heads are a 520
MAX_RESPONSE_HEADERS = 256

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN}


class _ExtraResponse(Exception):
    """Raised inside the parser to stop at bytes that follow a complete response."""


class _BadResponse(Exception):
    """Raised inside the parser for a response head the edge cannot relay (a 520)."""


_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})
_COMPRESSING = frozenset(
    {b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress", b"br", b"zstd"}
)

# Where an exchange on a connection stands.
_IDLE, _AWAITING_HEAD, _READING_BODY, _ENDED = range(4)


class OriginFailure:
    """Why an attempt failed, with whether any request byte may have reached the origin app."""

    __slots__ = ("code", "detail", "sent")

    def __init__(self, code: OriginError, detail: str, sent: bool) -> None:
        self.code = code
        self.detail = detail
        self.sent = sent

    def __repr__(self) -> str:
        return f"OriginFailure({self.code.value}, {self.detail!r})"


async def connect(
    host: str,
    port: int,
    timeout: float,
    on_close: Callable[[OriginConnection], None],
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> OriginConnection | OriginFailure:
    """A connection to host:port, over TLS when `tls` is given (SNI `server_hostname`, else
    `host`). TCP and the TLS handshake each get `timeout`, so a 522 and a 525 stay apart."""
    loop = asyncio.get_running_loop()
    try:
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: OriginConnection(on_close), host, port), timeout
        )
    except TimeoutError:
        return OriginFailure(OriginError.CONNECT_TIMEOUT, "connect timed out", sent=False)
    except ConnectionRefusedError:
        return OriginFailure(OriginError.REFUSED, "connection refused", sent=False)
    except socket.gaierror as error:
        return OriginFailure(OriginError.UNREACHABLE, f"name lookup failed: {error}", sent=False)
    except OSError as error:
        if error.errno in _UNREACHABLE:
            return OriginFailure(OriginError.UNREACHABLE, error.strerror or "unreachable", False)
        if error.errno == errno.ETIMEDOUT:
            return OriginFailure(OriginError.CONNECT_TIMEOUT, "connect timed out", sent=False)
        if error.errno == errno.ECONNREFUSED:
            return OriginFailure(OriginError.REFUSED, "connection refused", sent=False)
        return OriginFailure(OriginError.UNREACHABLE, f"connect failed: {error}", sent=False)
    if tls is not None:
        return await _start_tls(conn, tls, server_hostname or host, timeout)
    return conn


async def _start_tls(
    conn: OriginConnection, context: ssl.SSLContext, server_hostname: str, timeout: float
) -> OriginConnection | OriginFailure:
    """Upgrade a fresh connection to TLS. Spec §2.2: 526 when the certificate does not verify
    (strict mode), 525 for any other handshake failure (plain-text port, no common version or
    cipher, a reset or silence during the handshake). Nothing was sent: both may fail over."""
    raw = conn.transport
    assert raw is not None
    try:
        transport = await asyncio.get_running_loop().start_tls(
            raw, conn, context, server_hostname=server_hostname, ssl_handshake_timeout=timeout
        )
    except ssl.SSLCertVerificationError as error:
        raw.abort()
        conn.closed = True
        detail = f"origin certificate invalid: {error.verify_message}"
        return OriginFailure(OriginError.TLS_INVALID_CERT, detail, sent=False)
    except (OSError, TimeoutError) as error:  # ssl.SSLError is an OSError
        raw.abort()
        conn.closed = True
        detail = f"TLS handshake failed: {error}" if str(error) else "TLS handshake failed"
        return OriginFailure(OriginError.TLS_HANDSHAKE, detail, sent=False)
    if transport is None:
        raw.abort()
        conn.closed = True
        return OriginFailure(OriginError.TLS_HANDSHAKE, "TLS handshake failed", sent=False)
    conn.transport = transport
    return conn


class ResponseListener(Protocol):
    """Who hears one exchange's response. Called after each read from the origin, never from
    inside the parser, so a listener may release the connection (and even start the next
    exchange on it) from any of these. Either `on_failure` alone, or `on_head`, then
    `on_body` until it says complete (or `on_broken`)."""

    def on_failure(self, failure: OriginFailure) -> None:
        """No response head: why (a 520 or 524; connection errors come from `connect`)."""

    def on_head(self, head: ResponseHead) -> None: ...

    def on_body(self, chunks: list[bytes], complete: bool) -> None:
        """Body bytes of one read (maybe none); `complete` once, with the last of them."""

    def on_broken(self) -> None:
        """The response ended before its framing said it would (reset, timeout, bad bytes)."""


class OriginConnection(asyncio.Protocol):
    """Request writing and response reading on one origin connection, one exchange at a time."""

    def __init__(self, on_close: Callable[[OriginConnection], None]) -> None:
        self.on_close = on_close
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.exchanges = 0            # responses completed on this connection
        self.counted = False          # the exchange on it counts in its origin's in-flight
        self.idle_since = 0.0
        self.deadline = 0.0
        self.read_timeout = 120.0
        self._listener: ResponseListener | None = None  # None while idle
        self._stage = _IDLE
        self._received = 0
        self._head_size = 0  # bytes of the response head read before the read that ends it
        self._read_size = 0  # size of the read being parsed
        self._headers: Headers = []
        self._head_request = False
        self._head: ResponseHead | None = None  # parsed in this read, not yet told
        self._chunks: list[bytes] = []          # body bytes parsed in this read
        self._complete = False
        self._close_delimited = False
        self._valid = True
        self._write_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._waiter: ResponseWaiter | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._stage == _AWAITING_HEAD:
            detail = "origin closed the connection" if exc is None else f"origin reset: {exc}"
            self._failed(OriginFailure(OriginError.UNKNOWN, detail, sent=True))
        elif self._stage == _READING_BODY:
            if self._close_delimited and not self._complete:
                # EOF ends a close-delimited body (RFC 9112 §6.3 rule 8).
                self._message_done(keep_alive=False)
                chunks, self._chunks = self._chunks, []
                self._end(chunks)
            else:
                self._break()
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.on_close(self)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        listener = self._listener
        if listener is None or self._stage == _ENDED:
            # Bytes while idle, or after the response: the origin broke the keep-alive
            # contract, and nothing of it may reach a client (rule G4).
            self._valid = False
            self.close()
            return
        if self._stage == _READING_BODY:
            self.deadline = self._loop.time() + self.read_timeout
        self._read_size = len(data)
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
            # HttpParserUpgrade: a 101 the edge never asked for (it forwards no Upgrade).
            # Bytes after a complete response end up here too: the response stands, the
            # connection is spent.
            self._valid = False
            self.close()
            if not self._complete:
                self._chunks = []
                self._head = None
                if isinstance(error.__context__, _BadResponse):
                    detail = str(error.__context__)
                else:
                    detail = f"invalid response: {error}"
                self._failed(OriginFailure(OriginError.UNKNOWN, detail, sent=True))
                return
        if self._stage == _READING_BODY and len(self._headers) > MAX_RESPONSE_HEADERS:
            # Trailer fields (dropped, but held until the message ends): bounded like a head.
            self._valid = False
            self.abort()
            self._break()
            return
        head = self._head
        if head is not None:
            self._head = None
            self._stage = _READING_BODY
            listener.on_head(head)
        elif self._stage == _AWAITING_HEAD:
            # Still inside the head: every byte so far belongs to it (spec §2.2: over 128 KB
            # of response head is a 520).
            self._head_size += len(data)
            if self._head_size > MAX_RESPONSE_HEAD:
                self._valid = False
                self._failed(OriginFailure(OriginError.UNKNOWN, "response head too large", True))
                self.close()
            return
        chunks, self._chunks = self._chunks, []
        if self._complete:
            self._end(chunks)
        elif (chunks or head is not None) and self._stage == _READING_BODY:
            listener.on_body(chunks, False)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks (they only record; the listener hears after the read) ---------

    def on_message_begin(self) -> None:
        if self._complete:
            # Bytes after the end of the response: the origin sent more than it framed.
            raise _ExtraResponse
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called once per field of every response: kept to one statement. Sizes and counts
        # are checked when the head is complete (and on raw bytes while it is not).
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if 100 <= status < 200:
            # 1xx interim responses (100, 103) are not passed on; the final response follows.
            return
        headers = self._headers
        if len(headers) > MAX_RESPONSE_HEADERS or (
            self._head_size + self._read_size > MAX_RESPONSE_HEAD
            and sum(len(n) + len(v) + 4 for n, v in headers) > MAX_RESPONSE_HEAD
        ):
            # A head that arrives in one read is complete before data_received can look at
            # its size, so it is measured here (only when the read was large enough to hold
            # a head over the limit).
            raise _BadResponse("response head too large")
        if status < 100 or status > 599:
            raise _BadResponse(f"invalid status code {status}")
        content_length = None
        chunked = has_connection = False
        for name, value in headers:
            if name == b"content-length":
                # llhttp framed the body by this value (duplicates and lists are its errors);
                # reading it differently would take a short body for a close-delimited one.
                content_length = parse_decimal(value.strip(b" \t"))
                if content_length is None:
                    raise _BadResponse("invalid Content-Length")
            elif name == b"transfer-encoding":
                # The edge re-frames the body and drops this field, so a compressing coding
                # (gzip, chunked) would reach the client undecodable: a 520, as nginx 502s.
                # Only a final "chunked" frames the body; otherwise it ends when the
                # connection closes (RFC 9112 §6.3).
                codings = value.lower().split(b",")
                if any(coding.strip(b" \t") in _COMPRESSING for coding in codings):
                    raise _BadResponse("unsupported transfer coding")
                # As llhttp reads it: "chunked," ends in an empty coding, so it is not chunked.
                chunked = codings[-1].strip(b" \t") == b"chunked"
            elif name == b"connection":
                # "keep-alive" and "close" name nothing that is not dropped anyway.
                has_connection = has_connection or value.lower() not in _PLAIN_CONNECTION
        self._headers = []  # a chunked body's trailer fields land here and are dropped
        self._head = ResponseHead(
            status=status,
            headers=headers,
            version=parser.get_http_version().encode(),
            content_length=content_length,
            chunked=chunked,
            keep_alive=parser.should_keep_alive(),
            has_connection=has_connection,
        )
        self._close_delimited = (
            content_length is None and not chunked and status not in (204, 304)
        )
        self.deadline = self._loop.time() + self.read_timeout
        if self._head_request:
            # A response to HEAD has no body whatever its framing says (RFC 9110 §9.3.2).
            self._parser = httptools.HttpResponseParser(self)
            self._message_done(self._head.keep_alive)

    def on_body(self, data: bytes) -> None:
        if self._head_request:
            self._valid = False
            return
        self._chunks.append(data)

    def on_message_complete(self) -> None:
        if self._head is None and self._stage == _AWAITING_HEAD:
            return  # end of a 1xx interim response
        if not self._head_request:
            self._message_done(self._parser.should_keep_alive())

    def _message_done(self, keep_alive: bool) -> None:
        self._complete = True
        self.deadline = 0.0
        if not keep_alive:
            self._valid = False

    def _failed(self, failure: OriginFailure) -> None:
        listener = self._listener
        if self._stage == _AWAITING_HEAD and listener is not None:
            self._stage = _ENDED
            listener.on_failure(failure)

    def _end(self, chunks: list[bytes]) -> None:
        listener = self._listener
        if self._stage == _READING_BODY and listener is not None:
            self._stage = _ENDED
            listener.on_body(chunks, True)

    def _break(self) -> None:
        listener = self._listener
        if self._stage == _READING_BODY and listener is not None:
            self._stage = _ENDED
            listener.on_broken()

    # -- one exchange ---------------------------------------------------------------------------

    def start(
        self,
        listener: ResponseListener,
        data: bytes,
        head_request: bool,
        response_head_timeout: float,
        read_timeout: float,
    ) -> None:
        """Begin an exchange: write the request head (and any small body in `data`); the
        response goes to `listener`."""
        self._listener = listener
        self._stage = _AWAITING_HEAD
        self._head_request = head_request
        self._head = None
        self._chunks = []
        self._complete = False
        self._close_delimited = False
        self._received = 0
        self._head_size = 0
        self.read_timeout = read_timeout
        self.deadline = self._loop.time() + response_head_timeout
        if self.closed:
            # Closed between connecting and this request (an origin going down resets what
            # it had just accepted): nothing was sent, so the attempt may fail over. Told on
            # the next loop turn, like every other outcome.
            failure = OriginFailure(OriginError.REFUSED, "origin closed the connection", False)
            self._loop.call_soon(self._failed, failure)
            return
        self.write(data)

    async def send(
        self, data: bytes, head_request: bool, response_head_timeout: float, read_timeout: float
    ) -> None:
        """`start` for a caller that awaits the head (`read_head`) and body (`stream_body`)."""
        self._waiter = ResponseWaiter(self._loop)
        self.start(self._waiter, data, head_request, response_head_timeout, read_timeout)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._write_waiter = self._loop.create_future()
            try:
                await self._write_waiter
            finally:
                self._write_waiter = None

    async def read_head(self) -> ResponseHead | OriginFailure:
        assert self._waiter is not None
        return await self._waiter.head

    def closed_unanswered(self, failure: OriginFailure) -> bool:
        """The origin closed or reset the connection before a byte of response: what a
        pooled connection the origin had given up on looks like. A response-head timeout
        is not this: the origin has the request and may be working on it."""
        return self._received == 0 and failure.code is OriginError.UNKNOWN

    def stream_body(self, sink: Callable[[bytes], None]) -> asyncio.Future[bool]:
        """Send body chunks to `sink`; the future is True once the response completed cleanly."""
        assert self._waiter is not None
        return self._waiter.stream(sink)

    @property
    def reusable(self) -> bool:
        """Security rule G4: pool only after a complete, valid exchange with no close signalled."""
        return self._complete and self._valid and not self.closed

    def release(self) -> None:
        self._listener = None
        self._waiter = None
        self._stage = _IDLE
        self.exchanges += 1
        self.idle_since = self._loop.time()
        self.deadline = 0.0

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def on_deadline(self) -> None:
        self._failed(OriginFailure(OriginError.TIMEOUT, "no response head in time", True))
        self._valid = False
        self.deadline = 0.0
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()


class ResponseWaiter:
    """A listener for a caller in a coroutine: the head as a future, the body to a sink."""

    __slots__ = ("head", "_done", "_sink", "_early")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head: asyncio.Future[ResponseHead | OriginFailure] = loop.create_future()
        self._done: asyncio.Future[bool] = loop.create_future()
        self._sink: Callable[[bytes], None] | None = None
        self._early: list[bytes] = []

    def stream(self, sink: Callable[[bytes], None]) -> asyncio.Future[bool]:
        self._sink = sink
        early, self._early = self._early, []
        for data in early:
            sink(data)
        return self._done

    def on_failure(self, failure: OriginFailure) -> None:
        if not self.head.done():
            self.head.set_result(failure)

    def on_head(self, head: ResponseHead) -> None:
        if not self.head.done():
            self.head.set_result(head)

    def on_body(self, chunks: list[bytes], complete: bool) -> None:
        sink = self._sink
        if sink is None:
            self._early.extend(chunks)
        else:
            for data in chunks:
                sink(data)
        if complete and not self._done.done():
            self._done.set_result(True)

    def on_broken(self) -> None:
        if not self._done.done():
            self._done.set_result(False)
