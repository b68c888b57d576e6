"""A raw-socket HTTP/1.1 client (the `c1` of a varnishtest script).

Requests are bytes the test writes itself, so malformed ones are as easy as good ones;
responses are parsed here on bytes, with the framing rules of RFC 9112 §6.3.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

DEFAULT_HOST = "site.test"


class ClientError(Exception):
    pass


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # names lower-cased, order and duplicates kept
    body: bytes
    interim: list[int] = field(default_factory=list)  # 1xx statuses that came first
    version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def build(
    method: str = "GET",
    target: str = "/",
    *,
    host: str | None = DEFAULT_HOST,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    """A well-formed request; Content-Length is added when there is a body and none given."""
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    given = list(headers)
    lines += [f"{name}: {value}" for name, value in given]
    framed = any(name.lower() in ("content-length", "transfer-encoding") for name, _ in given)
    if body and not framed:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes) -> bytes:
    """A chunked body of `pieces` and the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


class Client:
    """One client connection to the edge."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self._buffer = bytearray()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str = "GET", target: str = "/", **kwargs: object) -> Reply:
        self.send(build(method, target, **kwargs))  # type: ignore[arg-type]
        return self.read_reply(head_request=method == "HEAD")

    # -- reading --------------------------------------------------------------------------

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            data = b""
        if not data:
            return False
        self._buffer += data
        return True

    def _line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            if not self._fill():
                raise ClientError(f"connection closed inside a line: {bytes(self._buffer)!r}")

    def _exact(self, size: int, sink: Callable[[bytes], None]) -> None:
        while size:
            if not self._buffer and not self._fill():
                raise ClientError(f"connection closed with {size} body bytes missing")
            piece = bytes(self._buffer[:size])
            del self._buffer[: len(piece)]
            size -= len(piece)
            sink(piece)

    def read_reply(
        self, head_request: bool = False, sink: Callable[[bytes], None] | None = None
    ) -> Reply:
        """The next response; with `sink` the body goes there instead of into `Reply.body`."""
        interim: list[int] = []
        while True:
            if not self._buffer and not self._fill():
                raise ClientError("connection closed before a response")
            status_line = self._line().decode("latin-1")
            version, code, reason = (status_line.split(" ", 2) + [""])[:3]
            if not code.isdigit():
                raise ClientError(f"bad status line {status_line!r}")
            headers = []
            while line := self._line():
                name, _, value = line.decode("latin-1").partition(":")
                headers.append((name.lower(), value.strip(" \t")))
            status = int(code)
            if 100 <= status < 200:
                interim.append(status)
                continue
            break
        parts: list[bytes] = []
        take = sink or parts.append
        reply = Reply(status, reason, headers, b"", interim, version)
        te = (reply.header("transfer-encoding") or "").lower()
        if head_request or status in (204, 304):
            pass
        elif te == "chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                self._exact(size, take)
                if self._line() != b"":
                    raise ClientError("chunk not followed by CRLF")
        elif reply.header("content-length") is not None:
            self._exact(int(reply.header("content-length") or "0"), take)
        else:
            while self._buffer or self._fill():
                take(bytes(self._buffer))
                self._buffer.clear()
        reply.body = b"".join(parts)
        return reply

    def read_interim(self) -> int:
        """One 1xx interim response (such as 100 Continue); its status."""
        if not self._buffer and not self._fill():
            raise ClientError("connection closed before an interim response")
        line = self._line().decode("latin-1")
        while self._line():
            pass
        status = int(line.split(" ")[1])
        if not 100 <= status < 200:
            raise ClientError(f"expected an interim response, got {line!r}")
        return status

    def is_closed(self) -> bool:
        """True when the edge closed the connection (EOF or reset) with nothing more to read
        within the timeout; False when more bytes came or it stayed open."""
        if self._buffer:
            return False
        try:
            return not self._fill()
        except TimeoutError:
            return False


def request(port: int, method: str = "GET", target: str = "/", **kwargs: object) -> Reply:
    """One request on a fresh connection."""
    with Client(port) as client:
        return client.request(method, target, **kwargs)


def exchange(port: int, raw: bytes, head_request: bool = False) -> tuple[Reply, bool]:
    """Send raw bytes on a fresh connection; the reply and whether the edge then closed."""
    with Client(port) as client:
        client.send(raw)
        reply = client.read_reply(head_request)
        return reply, client.is_closed()
