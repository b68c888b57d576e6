"""The request (and, for counting expressions, response) that rule expressions look at.

Strings handed to rules are ``str`` decoded as latin-1 from the wire bytes: one character per
byte, so ``len()`` counts bytes as Cloudflare's does, and nothing can fail to decode.
Derived values (the header map, cookies, query arguments) are computed on first use and
memoised on the view, so a rule set of 200 rules parses the cookies once per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

T = TypeVar("T")

_RESPONSE_PREFIX = "response."


@dataclass(frozen=True, slots=True)
class RequestView:
    """One request as rules see it. Header names must already be lower-case bytes."""

    scheme: str  # "http" or "https"
    host: str  # the Host header value, as routing canonicalised it
    method: str
    path: str
    query: str  # without the "?"; "" when absent
    uri: str  # path?query as received
    version: str  # e.g. "HTTP/1.1"
    headers: list[tuple[bytes, bytes]]
    client_ip: IPv4Address | IPv6Address
    country: str | None = None  # ISO 3166-1 alpha-2, from the GeoIP database when configured
    asnum: int | None = None
    response_status: int | None = None  # set only when evaluating counting expressions
    response_headers: list[tuple[bytes, bytes]] | None = None
    _memo: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def memoised(self, key: str, compute: Callable[[RequestView], T]) -> T:
        """``compute(self)``, computed once per view and key."""
        memo = self._memo
        try:
            return memo[key]  # type: ignore[return-value]
        except KeyError:
            value = memo[key] = compute(self)
            return value

    def with_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> RequestView:
        """The same request with its response attached; request-side memos are kept."""
        view = RequestView(
            self.scheme, self.host, self.method, self.path, self.query, self.uri, self.version,
            self.headers, self.client_ip, self.country, self.asnum, status, headers,
        )  # fmt: skip
        view._memo.update(
            (k, v) for k, v in self._memo.items() if not k.startswith(_RESPONSE_PREFIX)
        )
        return view


def response_key(name: str) -> str:
    """Memo key for a value derived from the response (dropped by ``with_response``)."""
    return _RESPONSE_PREFIX + name
