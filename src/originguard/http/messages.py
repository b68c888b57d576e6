"""Parsed HTTP messages as the edge holds them.

Header names are lower-case ASCII bytes and values raw bytes; the order of fields is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]


def header_value(headers: Headers, name: bytes) -> bytes | None:
    """The first value of `name` (lower-case), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def header_values(headers: Headers, name: bytes) -> Iterator[bytes]:
    for key, value in headers:
        if key == name:
            yield value


@dataclass(slots=True)
class RequestHead:
    """The request as parsed and canonicalised at admission (security rule G6)."""

    method: bytes
    target: bytes          # as received: origin-form, absolute-form, or b"*"
    path: bytes            # canonical path (b"*" for OPTIONS *)
    query: bytes           # without the "?"; b"" when absent
    version: bytes         # b"1.1" or b"1.0"
    headers: Headers
    host: bytes = b""      # canonical host: lower-case, no port, no trailing dot
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    expect_continue: bool = False

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    @property
    def uri(self) -> bytes:
        return self.path + b"?" + self.query if self.query else self.path


@dataclass(slots=True)
class ResponseHead:
    status: int
    headers: Headers
    version: bytes = b"1.1"
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    has_connection: bool = False  # a Connection field names fields to drop (RFC 9110 §7.6.1)


@dataclass(slots=True)
class Response:
    """A response produced at the edge (error page, local answer) with its whole body."""

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
