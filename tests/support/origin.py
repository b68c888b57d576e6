"""A scriptable origin server for integration tests (the `s1` of a varnishtest script).

It runs its own asyncio loop in a thread on 127.0.0.1 with an ephemeral port, writes every
response byte by hand, and records every request it receives, so a test can assert both what
the origin was sent and that it was sent nothing at all.

What it answers depends on the path (the query string is ignored):

    /bytes/N               200, Content-Length N, body streamed in 64 KiB writes
    /chunked/N             200, chunked, N body bytes in several chunks
    /close/N               200, no framing header: the body ends when the origin closes
    /status/N              status N; 204 and 304 have no body
    /hold/KEY              nothing until the test calls release(KEY), then 200
    /drop                  closes the connection without a byte of reply (edge: 520)
    /garbage               a response that is not HTTP (edge: 520)
    /reply-then-close      a keep-alive response, then the origin closes the connection
    /first-per-connection  answers the first request on a connection; later ones on the same
                           connection are dropped unanswered (an idle keep-alive connection
                           the origin closed just as the edge reused it)
    /echo                  200 with the request body as its body
    /hop                   a response carrying hop-by-hop fields and `Connection: x-secret`
    /truncated/N           declares Content-Length N, sends half of it, then closes
    /early-hints           a 103 interim response, then 200
    /raw/NAME              one of the hand-made responses in RAW_RESPONSES, then close
    anything else          200, body "<name> <METHOD> <target>"

Every response carries `x-origin: <name>`. A HEAD request gets the GET head without a body.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

KEEP_BODY = 1024 * 1024  # request bodies up to this size are kept whole; bigger ones hashed
PATTERN = bytes(range(256)) * 256  # 64 KiB of known bytes for generated bodies


# Responses that break the framing rules (RFC 9112 §6.3), for /raw/NAME.
RAW_RESPONSES = {
    "cl-and-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "bad-status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello",
    "nul-in-header": b"HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 5\r\n\r\nhello",
    "huge-head": b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"h" * (200 * 1024) + b"\r\n"
    b"Content-Length: 5\r\n\r\nhello",
    "status-zero": b"HTTP/1.1 000 Zero\r\nContent-Length: 5\r\n\r\nhello",
    "gzip-coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    # "chunked," ends in an empty coding: not chunked (llhttp), so the body runs to the close.
    "te-trailing-comma": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    # An unknown (not compressing) coding: the body ends when the connection closes.
    "odd-coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: x-odd\r\n\r\nhello",
    # Framed as 10 bytes (OWS around a field value is not part of it), cut short at 5.
    "short-spaced-length.css": b"HTTP/1.1 200 OK\r\nContent-Length: 10 \r\n"
    b"Cache-Control: max-age=600\r\n\r\nhello",
    # Trailer fields are not header fields: never relayed, stored or acted on.
    "trailers.css": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Cache-Control: max-age=600\r\n\r\n5\r\nhello\r\n0\r\nX-Injected: 1\r\n"
    b"Access-Control-Allow-Origin: *\r\nSet-Cookie: a=1\r\n\r\n",
}


def pattern_bytes(size: int) -> bytes:
    """The body /bytes/N and /chunked/N send, so tests can compare what arrived."""
    whole, rest = divmod(size, len(PATTERN))
    return PATTERN * whole + PATTERN[:rest]


@dataclass
class SeenRequest:
    """One request exactly as it reached the origin."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # names lower-cased, order and duplicates kept
    body: bytes
    body_size: int
    body_sha256: str
    connection: int  # which accepted connection (1, 2, ...) it came on
    head_bytes: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


class OriginError(Exception):
    pass


@dataclass(eq=False)
class _Conn:
    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    served: int = 0
    busy: bool = False


class Origin:
    def __init__(self, name: str = "a") -> None:
        self.name = name
        self.port = 0
        self.requests: list[SeenRequest] = []
        self.connections = 0  # accepted since start or the last forget()
        self._numbered = 0  # numbers connections for the record; never reset
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._accepted: set[socket.socket] = set()  # every accepted socket not yet closed
        self._opening = 0  # accepted connections whose handler has not started yet
        self._conns: set[_Conn] = set()
        self._stopping = False
        self._holds: dict[str, asyncio.Event] = {}
        self._changed = threading.Condition()

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Origin:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
                listener.setblocking(False)
                loop.add_reader(listener, self._accept, loop)
                self._listener = listener
                self.port = listener.getsockname()[1]
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()
            # Whatever is still open goes down with the loop, as a stopped process's sockets do.
            for accepted in list(self._accepted):
                accepted.close()
            self._accepted.clear()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"origin-{self.name}", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise OriginError("origin did not start within 10s")
        if failure:
            raise failure[0]
        return self

    def stop(self, abort: bool = False) -> None:
        """Stop listening, so later connects are refused. Gracefully (the default), requests
        being answered finish and idle keep-alive connections are closed; with `abort`, every
        connection is reset at once, as if the origin crashed."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shut() -> None:
            self._stopping = True
            if self._listener is not None:
                loop.remove_reader(self._listener)
                self._listener.close()
                self._listener = None
            for conn in list(self._conns):
                if abort:
                    conn.writer.transport.abort()
                elif not conn.busy:
                    conn.writer.close()
            for event in self._holds.values():
                event.set()
            for _ in range(500):
                if not self._conns and not self._opening:
                    break
                await asyncio.sleep(0.01)
            for conn in list(self._conns):
                conn.writer.transport.abort()

        future = asyncio.run_coroutine_threadsafe(shut(), loop)
        try:
            future.result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            self._loop = self._thread = None

    def release(self, key: str) -> None:
        """Let the requests waiting on /hold/KEY (now or later) be answered."""
        loop = self._loop
        assert loop is not None
        loop.call_soon_threadsafe(self._hold(key).set)

    # -- waiting on what arrived ------------------------------------------------------------

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[SeenRequest]:
        """Block until at least `count` requests have arrived (whole body included)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OriginError(
                        f"origin {self.name} saw {len(self.requests)} requests, wanted {count}"
                    )
                self._changed.wait(left)
            return list(self.requests)

    def forget(self) -> None:
        """Start a fresh record (for a shared origin between tests)."""
        with self._changed:
            self.requests.clear()
            self.connections = 0

    # -- serving ----------------------------------------------------------------------------

    def _hold(self, key: str) -> asyncio.Event:
        event = self._holds.get(key)
        if event is None:
            event = self._holds[key] = asyncio.Event()
        return event

    def _accept(self, loop: asyncio.AbstractEventLoop) -> None:
        """Accept what the listener holds. Accepting by hand (not asyncio.start_server) keeps
        every accepted socket on record from its first moment, so stop() can wait for it to be
        served and close it: a connection asyncio accepted while stopping was otherwise left
        open with nobody reading it, and the edge waited on it for its response timeout."""
        listener = self._listener
        while listener is not None:
            try:
                accepted, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            accepted.setblocking(False)
            # As asyncio.start_server does: without it Nagle holds a reply's second write
            # until the client's delayed ACK, about 40 ms per keep-alive request.
            accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._accepted.add(accepted)
            self._opening += 1
            loop.create_task(self._open(accepted))

    async def _open(self, accepted: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=accepted, limit=256 * 1024)
        except OSError:
            self._opening -= 1
            self._accepted.discard(accepted)
            accepted.close()
            return
        await self._serve(reader, writer, accepted)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, accepted: socket.socket
    ) -> None:
        self._opening -= 1
        with self._changed:
            self.connections += 1
            self._numbered += 1
            conn = _Conn(self._numbered, reader, writer)
        self._conns.add(conn)
        try:
            # A connection accepted before the listener closed gets its first request answered,
            # as a graceful server drains its accept queue; later ones end at stop.
            first = True
            while first or not self._stopping:
                first = False
                conn.busy = False
                request = await _read_request(reader, conn.number)
                if request is None:
                    return
                conn.busy = True
                with self._changed:
                    self.requests.append(request)
                    self._changed.notify_all()
                keep = await self._answer(conn, request)
                conn.served += 1
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, OriginError):
            return
        finally:
            self._conns.discard(conn)
            self._accepted.discard(accepted)
            writer.close()

    async def _answer(self, conn: _Conn, request: SeenRequest) -> bool:
        """Write the response for `request`; False when the connection must end."""
        writer = conn.writer
        path = request.target.split("?", 1)[0]
        parts = path.strip("/").split("/")
        route, arg = parts[0], parts[1] if len(parts) > 1 else ""
        head_only = request.method == "HEAD"
        closing = (request.header("connection") or "").lower() == "close"

        async def reply(
            status: int,
            headers: list[tuple[str, str]],
            body: bytes | Callable[[], Awaitable[None]] = b"",
            reason: str = "OK",
        ) -> None:
            lines = [f"HTTP/1.1 {status} {reason}", f"x-origin: {self.name}"]
            lines += [f"{name}: {value}" for name, value in headers]
            if closing:
                lines.append("connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if head_only:
                pass
            elif isinstance(body, bytes):
                writer.write(body)
            else:
                await body()
            await writer.drain()

        if route == "bytes":
            size = int(arg)

            async def stream() -> None:
                sent = 0
                while sent < size:
                    piece = PATTERN[: min(len(PATTERN), size - sent)]
                    writer.write(piece)
                    sent += len(piece)
                    await writer.drain()

            await reply(200, [("content-length", str(size))], stream)
        elif route == "chunked":
            data = pattern_bytes(int(arg))
            pieces = [data[i : i + 7000] for i in range(0, len(data), 7000)]
            coded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
            await reply(200, [("transfer-encoding", "chunked")], coded)
        elif route == "close":
            await reply(200, [("connection", "close")], pattern_bytes(int(arg)))
            return False
        elif route == "status":
            status = int(arg)
            if status in (204, 304):
                await reply(status, [("etag", '"v1"')], b"", reason="No Body")
            else:
                body = f"status {status}".encode()
                await reply(status, [("content-length", str(len(body)))], body, reason="Set")
        elif route == "hold":
            # /hold/<name>[?vary=<field>]: answers once released; with vary, a response that
            # varies on that request field and names its value in the body.
            await self._hold(arg).wait()
            vary = parse_qs(request.target.partition("?")[2]).get("vary", [])
            extra = [("vary", vary[0])] if vary else []
            value = f" {vary[0]}={request.header(vary[0].lower())}" if vary else ""
            body = f"released {arg}{value}".encode()
            await reply(200, [*extra, ("content-length", str(len(body)))], body)
        elif route == "drop":
            writer.transport.abort()
            return False
        elif route == "overflow":
            # A response followed by bytes its framing does not cover: a whole second
            # response, or (arg "partial") only the start of one.
            extra = (
                b"HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n"
                if arg == "partial"
                else b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Injected: yes\r\n\r\nEVIL"
            )
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + extra)
            await writer.drain()
        elif route == "switch":
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
            await writer.drain()
            return False
        elif route == "garbage":
            writer.write(b"THIS IS NOT HTTP\r\n\r\n")
            await writer.drain()
            return False
        elif route == "reply-then-close":
            body = b"closing after this"
            await reply(200, [("content-length", str(len(body)))], body)
            return False
        elif route == "first-per-connection":
            if conn.served > 0:
                writer.transport.abort()
                return False
            body = f"first on connection {conn.number}".encode()
            await reply(200, [("content-length", str(len(body)))], body)
        elif route == "truncated":
            size = int(arg)
            await reply(200, [("content-length", str(size))], pattern_bytes(size // 2))
            return False
        elif route == "echo":
            body = request.body
            kind = request.header("content-type") or "application/octet-stream"
            await reply(200, [("content-type", kind), ("content-length", str(len(body)))], body)
        elif route == "cacheable":
            # /cacheable/<name>?h=Name:Value&status=N: a body that changes on every call (the
            # origin's request count), with the response headers the query asks for; the
            # origin honours If-None-Match against an `etag` it was asked to send.
            query = parse_qs(request.target.partition("?")[2])
            status = int(query.get("status", ["200"])[0])
            headers = [tuple(h.split(":", 1)) for h in query.get("h", [])]
            etag = next((v for n, v in headers if n.lower() == "etag"), None)
            if etag is not None and request.header("if-none-match") == etag:
                await reply(304, [(n, v) for n, v in headers], b"", reason="Not Modified")
            else:
                body = f"{self.name} {arg} #{len(self.requests)}".encode()
                headers.append(("content-length", str(len(body))))
                await reply(status, headers, body, reason="Cacheable")
        elif route == "early-hints":
            writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n")
            body = b"after hints"
            await reply(200, [("content-length", str(len(body)))], body)
        elif route == "raw":
            writer.write(RAW_RESPONSES[arg])
            await writer.drain()
            return False
        elif route == "hop":
            body = b"hop"
            await reply(
                200,
                [
                    ("content-length", str(len(body))),
                    ("connection", "x-secret, keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("x-secret", "origin-internal"),
                    ("proxy-authenticate", "Basic"),
                    ("upgrade", "h2c"),
                    ("trailer", "x-checksum"),
                    ("x-kept", "yes"),
                ],
                body,
            )
        else:
            body = f"{self.name} {request.method} {request.target}".encode()
            await reply(
                200, [("content-type", "text/plain"), ("content-length", str(len(body)))], body
            )
        return not closing


async def _read_request(reader: asyncio.StreamReader, number: int) -> SeenRequest | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise OriginError(f"connection ended inside a head: {error.partial!r}") from None
        return None
    except asyncio.LimitOverrunError:
        raise OriginError("request head too large") from None
    lines = raw[:-4].decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.lower(), value.strip(" \t")))
    fields = dict(headers)
    digest = hashlib.sha256()
    kept: list[bytes] = []
    size = 0

    def take(data: bytes) -> None:
        nonlocal size
        size += len(data)
        digest.update(data)
        if size <= KEEP_BODY:
            kept.append(data)

    if fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            line = await reader.readuntil(b"\r\n")
            length = int(line[:-2].split(b";")[0], 16)
            if length == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields
                break
            left = length
            while left:
                data = await reader.read(min(left, 256 * 1024))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                take(data)
                left -= len(data)
            await reader.readexactly(2)
    elif "content-length" in fields:
        left = int(fields["content-length"])
        while left:
            data = await reader.read(min(left, 256 * 1024))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            take(data)
            left -= len(data)
    return SeenRequest(
        method=method,
        target=target,
        version=version,
        headers=headers,
        body=b"".join(kept) if size <= KEEP_BODY else b"",
        body_size=size,
        body_sha256=digest.hexdigest(),
        connection=number,
        head_bytes=raw,
    )


def refused_address() -> str:
    """host:port of a loopback port nobody listens on (connecting is refused: 521)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


class Blackhole:
    """A loopback port whose SYNs go unanswered, so connecting times out (522).

    The listener's accept queue (backlog 0) is filled by connections nobody accepts; the
    kernel then drops new SYNs instead of answering them.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        for _ in range(2):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.listener.close()
