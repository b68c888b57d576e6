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

import httptools

from originguard.http.messages import Headers, ResponseHead
from originguard.http.wire import parse_decimal
from originguard.outcome import OriginError

MAX_RESPONSE_HEAD = 128 * 1024  # spec §2.2: larger origin response heads are a 520
MAX_RESPONSE_HEADERS = 256

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN}


class _ExtraResponse(Exception):
    """Raised inside the parser to stop at bytes that follow a complete response."""


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
        self._received = 0
        self._head_size = 0  # bytes of the response head read before the read that ends it
        self._read_size = 0  # size of the read being parsed
        self._headers: Headers = []
        self._head_request = False
        self._head: asyncio.Future[ResponseHead | OriginFailure] | None = None
        self._done: asyncio.Future[bool] | None = None
        self._sink: Callable[[bytes], None] | None = None
        self._early: list[bytes] = []
        self._complete = False
        self._close_delimited = False
        self._valid = True
        self._write_paused = False
        self._write_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        head = self._head
        if head is not None and not head.done():
            detail = "origin closed the connection" if exc is None else f"origin reset: {exc}"
            head.set_result(OriginFailure(OriginError.UNKNOWN, detail, sent=True))
        if self._close_delimited and not self._complete and head is not None and head.done():
            # EOF ends a close-delimited body (RFC 9112 §6.3 rule 8); anything else is truncated.
            self._message_done(keep_alive=False)
        done = self._done
        if done is not None and not done.done():
            done.set_result(self._complete)
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.on_close(self)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        if self._head is None:
            # Bytes while idle: the origin broke the keep-alive contract.
            self._valid = False
            self.close()
            return
        head_done = self._head.done()
        if head_done:
            self.deadline = self._loop.time() + self.read_timeout
        self._read_size = len(data)
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as error:
            # HttpParserUpgrade: a 101 the edge never asked for (it forwards no Upgrade).
            self._valid = False
            self._fail(f"invalid response: {error}")
            self.close()
            return
        if not head_done and not self._head.done():
            # Still inside the head: every byte so far belongs to it (spec §2.2: over 128 KB
            # of response head is a 520).
            self._head_size += len(data)
            if self._head_size > MAX_RESPONSE_HEAD:
                self._fail("response head too large")
                self.close()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            # Bytes after the end of the response: the origin sent more than it framed.
            # Nothing of it may reach the client, and the connection is spent (rule G4).
            self._valid = False
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
            self._valid = False
            self._fail("response head too large")
            self.close()
            return
        content_length = None
        chunked = False
        for name, value in headers:
            if name == b"content-length":
                content_length = parse_decimal(value)
            elif name == b"transfer-encoding":
                # Only a final "chunked" frames the body; any other coding is read until
                # the connection closes (RFC 9112 §6.3).
                chunked = value.rstrip(b" \t").lower().endswith(b"chunked")
        head = ResponseHead(
            status=status,
            headers=headers,
            version=parser.get_http_version().encode(),
            content_length=content_length,
            chunked=chunked,
            keep_alive=parser.should_keep_alive(),
        )
        self._close_delimited = (
            content_length is None and not chunked and status not in (204, 304)
        )
        self.deadline = self._loop.time() + self.read_timeout
        future = self._head
        if future is not None and not future.done():
            future.set_result(head)
        if self._head_request:
            # A response to HEAD has no body whatever its framing says (RFC 9110 §9.3.2).
            self._parser = httptools.HttpResponseParser(self)
            self._message_done(head.keep_alive)

    def on_body(self, data: bytes) -> None:
        if self._head_request:
            self._valid = False
            return
        sink = self._sink
        if sink is None:
            self._early.append(data)
        else:
            sink(data)

    def on_message_complete(self) -> None:
        head = self._head
        if head is None or not head.done():
            return  # end of a 1xx interim response
        if not self._head_request:
            self._message_done(self._parser.should_keep_alive())

    def _message_done(self, keep_alive: bool) -> None:
        self._complete = True
        self.deadline = 0.0
        if not keep_alive:
            self._valid = False
        done = self._done
        if done is not None and not done.done():
            done.set_result(True)

    # -- one exchange ---------------------------------------------------------------------------

    async def send(
        self, data: bytes, head_request: bool, response_head_timeout: float, read_timeout: float
    ) -> None:
        """Start an exchange by writing the request head (and any small body in `data`)."""
        self._head = self._loop.create_future()
        self._done = self._loop.create_future()
        self._head_request = head_request
        self._complete = False
        self._close_delimited = False
        self._sink = None
        self._early = []
        self._received = 0
        self._head_size = 0
        self.read_timeout = read_timeout
        self.deadline = self._loop.time() + response_head_timeout
        self.write(data)

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
        assert self._head is not None
        return await self._head

    @property
    def received_nothing(self) -> bool:
        """No response byte arrived in this exchange (so a dead pooled connection is suspected)."""
        return self._received == 0

    def stream_body(self, sink: Callable[[bytes], None]) -> asyncio.Future[bool]:
        """Send body chunks to `sink`; the future is True once the response completed cleanly."""
        self._sink = sink
        if self._early:
            early, self._early = self._early, []
            for data in early:
                sink(data)
        assert self._done is not None
        return self._done

    @property
    def reusable(self) -> bool:
        """Security rule G4: pool only after a complete, valid exchange with no close signalled."""
        return self._complete and self._valid and not self.closed

    def release(self) -> None:
        self._head = None
        self._done = None
        self._sink = None
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
        head = self._head
        if head is not None and not head.done():
            head.set_result(OriginFailure(OriginError.TIMEOUT, "no response head in time", True))
        self._valid = False
        self.deadline = 0.0
        self.close()

    def _fail(self, detail: str) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_result(OriginFailure(OriginError.UNKNOWN, detail, sent=True))

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()
