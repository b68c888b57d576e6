"""The downstream side: one asyncio protocol per client connection, parsing with httptools.

Framing is strict (security rule G1): anything llhttp or our own checks reject gets a 4xx/5xx
with `Connection: close`, the connection is closed, and nothing is forwarded. Requests on one
connection are answered in order (pipelining): the handler gets one request at a time and
calls `exchange_done` when its response is complete, which starts the next.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

import httptools

from originguard.http.body import Body, BodyError
from originguard.http.messages import Headers, RequestHead
from originguard.http.wire import (
    canonical_host,
    canonical_path,
    parse_decimal,
    split_list,
    split_target,
)

MAX_PIPELINED = 16
MAX_FRAMING_BYTES = 64 * 1024  # chunk headers and extensions beyond a quarter of the body


class ClientLimits(Protocol):
    max_head_size: int
    max_header_count: int
    max_url_size: int
    max_body_size: int
    head_timeout: float
    body_timeout: float
    send_timeout: float
    keepalive_timeout: float
    max_connections: int


class Rejection(Exception):
    """A request the edge refuses before it reaches any feature (answered locally, then close)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# Starts answering a request; calls `exchange_done` on the connection once it has answered
# (at once, or later from a callback or task).
Handler = Callable[["ClientConnection", RequestHead, Body | None], None]
RejectHandler = Callable[["ClientConnection", int, str], None]


class ClientConnection(asyncio.Protocol):
    """One client connection. The exchange writes through `write`/`drain`/`finish`."""

    def __init__(
        self,
        handler: Handler,
        on_reject: RejectHandler,
        limits: ClientLimits,
        registry: ConnectionRegistry,
        scheme: bytes = b"http",
    ) -> None:
        self._handler = handler
        self._on_reject = on_reject
        self.limits = limits
        self._registry = registry
        self.scheme = scheme
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer_ip = ""
        self.closed = False
        # Parse state of the message being read.
        self._in_head = False
        self._head_bytes = 0
        self._head_fields = 0  # bytes of parsed target and fields of the current head
        self._trailer_bytes = 0  # trailer fields of the current chunked body (dropped)
        self._framing_bytes = 0  # body bytes on the wire that carried no data
        self._last_head_size = 0
        self._read_payload = 0  # bytes of heads and body data parsed from the current read
        self._body_chunked = False
        self._url = b""
        self._headers: Headers = []
        self._body: Body | None = None
        # Exchanges: the one being answered and those parsed behind it.
        self._pending: deque[tuple[RequestHead, Body | None]] = deque()
        self._active = False      # a request is being answered
        self._dispatching = False  # inside _start: exchange_done leaves the next to its loop
        self._active_body: Body | None = None
        self._reading_paused = False
        self._write_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        # Set by the exchange streaming a response: relieve and abort the origin side.
        self.on_writable: Callable[[], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.deadline = 0.0
        self._deadline_status = 0
        # A parse error behind a request still being answered: sent after it (G1).
        self._rejected: tuple[int, str] | None = None
        self._declined_upgrade = False  # the head just parsed offered h2c, served as HTTP/1.1

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        if len(self._registry.connections) >= self.limits.max_connections:
            # Over the connection cap (rule G7): refuse before reading a byte.
            self.closed = True
            self._registry.refused_total += 1
            transport.abort()  # type: ignore[attr-defined]  # a TCP transport
            return
        self._registry.add(self)
        # Until its first request arrives a connection gets the head deadline, not the long
        # keep-alive one (nginx's client_header_timeout does the same).
        self.deadline = self._loop.time() + self.limits.head_timeout
        self._deadline_status = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._registry.discard(self)
        for body in (self._body, self._active_body):
            if body is not None and not body.done:
                body.fail(BodyError(400, "client closed the connection"))
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("client closed the connection"))
        self._pending.clear()
        on_lost = self.on_lost
        if on_lost is not None:
            self.on_lost = None
            on_lost()

    def data_received(self, data: bytes) -> None:
        rest = self._parse(data)
        while rest:  # a loop, not recursion: one read may hold thousands of small heads
            rest = self._parse(rest)

    def _parse(self, data: bytes) -> bytes:
        """Feed one read to the parser; the bytes left after a declined upgrade, else b""."""
        if self.closed or self._rejected is not None:
            return b""
        if self._body is None:
            # Between messages or inside a head: these bytes count against the head limit.
            self._head_bytes += len(data)
        self._read_payload = 0
        try:
            self._parser.feed_data(data)
        except Rejection as rejection:
            self.reject(rejection.status, rejection.reason)
            return b""
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, Rejection):
                self.reject(cause.status, cause.reason)
            else:
                self.reject(400, "malformed request")
            return b""
        except httptools.HttpParserUpgrade as upgrade:
            if not self._declined_upgrade:
                # CONNECT, or a protocol upgrade we do not tunnel.
                self.reject(501, "protocol upgrade and CONNECT are not supported")
                return b""
            # llhttp stops after a head that offers an upgrade. A declined h2c offer leaves the
            # connection HTTP/1.1 and the head had no body, so the next message starts here.
            self._declined_upgrade = False
            self._parser = httptools.HttpRequestParser(self)
            return data[upgrade.args[0] :]
        except httptools.HttpParserError as error:
            self.reject(400, f"malformed request: {error}")
            return b""
        if self._in_head and self._head_bytes > self.limits.max_head_size:
            self.reject(431, "request head too large")
            return b""
        body = self._body
        if body is not None and self._body_chunked:
            # Bytes that carried neither a head nor body data: chunk sizes and extensions.
            # Bounded, so a client cannot stream endless extensions or one-byte chunks at no
            # body cost. (A Content-Length body has no framing bytes.)
            self._framing_bytes += max(0, len(data) - self._read_payload)
            if self._framing_bytes > MAX_FRAMING_BYTES + body.received // 4:
                self.reject(400, "chunked framing overhead too large")
                return b""
        if self._body is not None and self._deadline_status != -1:
            # (-1: the client is not taking its response; reading on must not excuse that.)
            self.deadline = self._loop.time() + self.limits.body_timeout
            self._deadline_status = 408
        return b""

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._active:
            self.deadline = self._loop.time() + self.limits.send_timeout
            self._deadline_status = -1

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._deadline_status == -1:
            if self._active:
                self._arm_active_deadline()
            else:
                self.deadline, self._deadline_status = 0.0, 0
        on_writable = self.on_writable
        if on_writable is not None:
            on_writable()
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._headers = []
        self._head_fields = 0
        self._trailer_bytes = 0
        self._framing_bytes = 0
        if not self._active:
            self.deadline = self._loop.time() + self.limits.head_timeout
            self._deadline_status = 408

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_url_size:
            raise Rejection(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            # A trailer of a chunked body (RFC 9112 §7.1.2): never merged into the request's
            # header fields, where rules and the origin would take it for a real header.
            self._trailer_bytes += len(name) + len(value) + 4
            if self._trailer_bytes > self.limits.max_head_size:
                raise Rejection(431, "trailer section too large")
            return
        headers = self._headers
        headers.append((name.lower(), value))
        if len(headers) > self.limits.max_header_count:
            raise Rejection(431, "too many header fields")
        # Counted here too: a head that arrives in one read is never seen partial.
        self._head_fields += len(name) + len(value) + 4
        if self._head_fields + len(self._url) > self.limits.max_head_size:
            raise Rejection(431, "request head too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        # Request line and fields as received, give or take optional whitespace.
        self._last_head_size = self._head_fields + len(self._url) + 32
        self._read_payload += self._last_head_size
        self._head_bytes = 0
        head = self._build_head()
        body: Body | None = None
        if head.has_body or head.chunked:
            if head.content_length is not None and head.content_length > self.limits.max_body_size:
                raise Rejection(413, "request body larger than limit")
            body = Body(
                self.limits.max_body_size,
                self._pause_reading,
                self._resume_reading,
                self._send_continue if head.expect_continue else None,
            )
        self._body = body
        self._body_chunked = head.chunked
        if not self._active:
            self._start(head, body)
        else:
            self._pending.append((head, body))
            if len(self._pending) >= MAX_PIPELINED:
                self._pause_reading()

    def on_body(self, data: bytes) -> None:
        self._read_payload += len(data)
        body = self._body
        if body is not None:
            body.feed(data)

    def on_message_complete(self) -> None:
        body = self._body
        if body is not None:
            body.finish()
            self._body = None
        if not self._active and not self._pending:
            self._idle()

    # -- request head ---------------------------------------------------------------------

    def _build_head(self) -> RequestHead:
        parser = self._parser
        method = parser.get_method()
        headers = self._headers
        declined_upgrade = False
        if parser.should_upgrade():
            # RFC 9110 §7.8: a server may ignore Upgrade and stay on HTTP/1.1, as nginx does
            # for curl's h2c offer. Any other upgrade, and CONNECT, is refused before an
            # exchange starts, so nothing is forwarded (G1).
            if method == b"CONNECT" or not _offers_only_h2c(headers):
                raise Rejection(501, "protocol upgrade and CONNECT are not supported")
            declined_upgrade = True
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise Rejection(505, "HTTP version not supported")
        content_length: int | None = None
        chunked = False
        host_values = []
        expect_continue = False
        for name, value in headers:
            if name == b"content-length":
                content_length = parse_decimal(value)
                if content_length is None:
                    raise Rejection(400, "invalid Content-Length")
            elif name == b"transfer-encoding":
                # llhttp accepts only a final "chunked"; we allow nothing but exactly chunked.
                if value.lower() != b"chunked":
                    raise Rejection(501, "unsupported transfer coding")
                if version == "1.0":
                    raise Rejection(400, "Transfer-Encoding in an HTTP/1.0 request")
                chunked = True
            elif name == b"host":
                host_values.append(value)
            elif name == b"expect":
                if value.lower() == b"100-continue":
                    expect_continue = version == "1.1"
                else:
                    raise Rejection(417, "unsupported expectation")
        if declined_upgrade:
            if chunked or content_length:  # llhttp would read the body as the new protocol
                raise Rejection(501, "an upgrade offer with a request body is not supported")
        if len(host_values) > 1 or (version == "1.1" and not host_values):
            raise Rejection(400, "exactly one Host header is required")
        target = self._url
        if target == b"*":
            if method != b"OPTIONS":
                raise Rejection(400, "asterisk-form is only for OPTIONS")
            authority, path, query = b"", b"*", b""
        else:
            parts = split_target(target)
            if parts is None:
                raise Rejection(400, "invalid request target")
            authority, raw_path, query = parts
            canonical = canonical_path(raw_path)
            if canonical is None:
                raise Rejection(400, "invalid percent-encoding in path")
            path = canonical
        raw_host = authority or (host_values[0] if host_values else b"")
        host = canonical_host(raw_host) if raw_host else b""
        if host is None:
            raise Rejection(400, "invalid Host")
        if authority:
            # RFC 9112 §3.2.2: a proxy MUST ignore the received Host and replace it with the
            # target's authority, so the origin sees the host the request was routed by (G6).
            headers = [(b"host", authority), *((n, v) for n, v in headers if n != b"host")]
        self._declined_upgrade = declined_upgrade
        return RequestHead(
            method=method,
            target=target,
            path=path,
            query=query,
            version=version.encode(),
            headers=headers,
            host=host,
            content_length=content_length,
            chunked=chunked,
            keep_alive=parser.should_keep_alive(),
            expect_continue=expect_continue,
        )

    # -- exchange scheduling ------------------------------------------------------------------

    def _start(self, head: RequestHead, body: Body | None) -> None:
        """Answer this request, then any already parsed behind it, for as long as each is
        answered at once; one answered later resumes the loop from `exchange_done`."""
        self._dispatching = True
        try:
            while True:
                self._active = True
                self._active_body = body
                self._arm_active_deadline()
                self._handler(self, head, body)
                if self._active:
                    return
                next_request = self._next()
                if next_request is None:
                    return
                head, body = next_request
        finally:
            self._dispatching = False

    def _arm_active_deadline(self) -> None:
        """The deadline while a request is answered: the send timeout if the client is not
        taking what was written, the body timeout while its body is still arriving, else none
        (the origin's timeouts apply)."""
        body = self._active_body
        if self._write_paused:
            self.deadline = self._loop.time() + self.limits.send_timeout
            self._deadline_status = -1
        elif body is not None and not body.done:
            self.deadline = self._loop.time() + self.limits.body_timeout
            self._deadline_status = 408
        else:
            self.deadline, self._deadline_status = 0.0, 0

    def exchange_done(self) -> None:
        """The current response is complete: go on with the next request, if any."""
        self._active = False
        self._active_body = None
        self.on_writable = None
        self.on_lost = None
        if self._dispatching:
            return
        next_request = self._next()
        if next_request is not None:
            self._start(*next_request)

    def _next(self) -> tuple[RequestHead, Body | None] | None:
        """The next pipelined request, if one is already parsed."""
        if self.closed:
            return None
        if self._pending:
            head, body = self._pending.popleft()
            if self._reading_paused and len(self._pending) < MAX_PIPELINED // 2:
                self._resume_reading()
            return head, body
        if self._rejected is not None:
            self._on_reject(self, *self._rejected)
            self.close()
            return None
        if self._in_head:
            self.deadline = self._loop.time() + self.limits.head_timeout
            self._deadline_status = 408
        elif self._body is None:
            self._idle()
        return None

    def _idle(self) -> None:
        self.deadline = self._loop.time() + self.limits.keepalive_timeout
        self._deadline_status = 0

    # -- writing ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the client has taken what was written, up to the send timeout."""
        if not self._write_paused or self.closed:
            return
        self._write_waiter = self._loop.create_future()
        self.deadline = self._loop.time() + self.limits.send_timeout
        self._deadline_status = -1
        try:
            await self._write_waiter
        finally:
            self._write_waiter = None
            if self._active:
                self._arm_active_deadline()
            else:
                self.deadline, self._deadline_status = 0.0, 0

    @property
    def is_idle(self) -> bool:
        return not self._active and not self._pending and not self._in_head

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    def finish(self, keep_alive: bool, body: Body | None) -> None:
        """The response is fully written. Keep the connection only if the framing allows it
        and the request body was read to its end (security rule G3: drain or close)."""
        if self.closed or self.transport is None:
            return
        if not keep_alive or (body is not None and not body.complete):
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def reject(self, status: int, reason: str) -> None:
        """Answer a request that failed parsing, then close (G1: never resynchronise)."""
        if self.closed or self._rejected is not None:
            return
        if self._active:
            # Requests parsed before the bad one are still answered in order, then this
            # rejection, then close; nothing after it is read. A body still arriving is the
            # bad message's own, so it fails with this status.
            self._rejected = (status, reason)
            self._pause_reading()
            body = self._body
            if body is not None and not body.done:
                body.fail(BodyError(status, reason))
            return
        self._pending.clear()
        self._on_reject(self, status, reason)
        self.close()

    def on_deadline(self, now: float) -> None:
        """Called by the sweeper when `deadline` has passed."""
        status = self._deadline_status
        self.deadline = 0.0
        if status == 408 and not self._active:
            self.reject(408, "request not received in time")
            return
        body = self._active_body
        if status == 408 and body is not None and not body.done:
            body.fail(BodyError(408, "request body not received in time"))
            return
        if status == -1:
            self.abort()
            return
        self.close()

    # -- flow control -------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._rejected is not None:
            return
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def _send_continue(self) -> None:
        self.write(b"HTTP/1.1 100 Continue\r\n\r\n")


class ConnectionRegistry:
    """Open client connections, swept for deadlines; used for metrics and graceful drain."""

    def __init__(self) -> None:
        self.connections: set[ClientConnection] = set()
        self.accepted_total = 0
        self.refused_total = 0  # over limits.max_connections

    def add(self, conn: ClientConnection) -> None:
        self.connections.add(conn)
        self.accepted_total += 1

    def discard(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)

    def sweep(self, now: float) -> None:
        for conn in list(self.connections):
            if conn.deadline and now >= conn.deadline:
                conn.on_deadline(now)

    def close_idle(self) -> None:
        for conn in list(self.connections):
            if conn.is_idle:
                conn.close()


def _offers_only_h2c(headers: Headers) -> bool:
    """The Upgrade fields name h2c (HTTP/2 over cleartext) and nothing else."""
    offered = {
        token.lower()
        for name, value in headers
        if name == b"upgrade"
        for token in split_list(value)
    }
    return offered == {b"h2c"}
