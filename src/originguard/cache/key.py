"""Primary cache keys (spec §8.5).

A key is NUL-separated components; NUL inside a component is escaped, so two different
(scheme, host, path, query, ...) tuples can never produce the same key.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from originguard.cache.control import Headers, values


class QueryMode(enum.Enum):
    ALL = "all"
    NONE = "none"
    INCLUDE = "include"  # only the listed parameters
    EXCLUDE = "exclude"  # all but the listed parameters


# Spec §8.5: request headers the default key includes (when present).
DEFAULT_HEADERS = (
    b"origin",
    b"x-http-method-override",
    b"x-http-method",
    b"x-method-override",
    b"x-forwarded-host",
    b"x-host",
    b"x-forwarded-scheme",
    b"x-original-url",
    b"x-rewrite-url",
    b"forwarded",
)
# Spec §8.5: headers a custom key cannot include.
FORBIDDEN_HEADERS = frozenset(
    {b"accept", b"accept-charset", b"accept-encoding", b"accept-datetime", b"accept-language",
     b"referer", b"user-agent", b"connection", b"content-length", b"cache-control", b"range",
     b"upgrade", b"cookie", b"host", b"origin"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CacheKeyRule:
    """What goes into the key beyond scheme + path. Validated when built (config load)."""

    query: QueryMode = QueryMode.ALL
    query_params: frozenset[bytes] = frozenset()  # for INCLUDE / EXCLUDE
    sort_query: bool = False  # "ignore query string order"
    headers: tuple[bytes, ...] = ()  # values included
    headers_present: tuple[bytes, ...] = ()  # only presence included
    cookies: tuple[bytes, ...] = ()  # values included
    cookies_present: tuple[bytes, ...] = ()
    include_host: bool = True  # False: hosts share entries (an explicit operator choice)
    include_origin: bool = True  # the CORS Origin header, part of the default key
    device_type: bool = False  # mobile / tablet / desktop from User-Agent

    def __post_init__(self) -> None:
        for name in (*self.headers, *self.headers_present):
            if name != name.lower() or name in FORBIDDEN_HEADERS or name.startswith(
                (b"if-", b"cf-")
            ):
                raise ValueError(f"header {name!r} cannot be part of a cache key")
        for name in (*self.cookies, *self.cookies_present):
            if name.startswith(b"__cf"):
                raise ValueError(f"cookie {name!r} cannot be part of a cache key")


DEFAULT_KEY_RULE = CacheKeyRule()
_KEYED_DEFAULT = frozenset(DEFAULT_HEADERS)


_NEEDS_ESCAPE = re.compile(rb"[%\x00]")


def _escape(component: bytes) -> bytes:
    if b"%" not in component and b"\x00" not in component:
        return component
    return component.replace(b"%", b"%25").replace(b"\x00", b"%00")


def normalise_query(query: bytes, rule: CacheKeyRule) -> bytes:
    """The query string as the key sees it, parameters kept raw (not decoded)."""
    if rule.query is QueryMode.NONE or not query:
        return b""
    params = [p for p in query.split(b"&") if p]
    if rule.query is QueryMode.INCLUDE:
        params = [p for p in params if p.partition(b"=")[0] in rule.query_params]
    elif rule.query is QueryMode.EXCLUDE:
        params = [p for p in params if p.partition(b"=")[0] not in rule.query_params]
    if rule.sort_query:
        params.sort(key=lambda p: p.partition(b"="))
    return b"&".join(params)


def cookies(req_headers: Headers) -> dict[bytes, bytes]:
    """Cookie pairs of the request (RFC 6265 §5.4); the first of a repeated name wins."""
    jar: dict[bytes, bytes] = {}
    for line in values(req_headers, b"cookie"):
        for pair in line.split(b";"):
            name, _, value = pair.strip().partition(b"=")
            if name and name not in jar:
                jar[name] = value
    return jar


def device_type(user_agent: bytes | None) -> bytes:
    """b"mobile", b"tablet" or b"desktop", from User-Agent substrings."""
    ua = (user_agent or b"").lower()
    if b"ipad" in ua or b"tablet" in ua or (b"android" in ua and b"mobile" not in ua):
        return b"tablet"
    if b"mobi" in ua or b"iphone" in ua or b"android" in ua:
        return b"mobile"
    return b"desktop"


def make_key(
    scheme: bytes,
    host: bytes,
    path: bytes,
    query: bytes,
    headers: Headers,
    rule: CacheKeyRule = DEFAULT_KEY_RULE,
) -> bytes:
    """The primary key: scheme (to the origin), lower-cased host, case-sensitive path, the
    rule's view of the query, then the default and chosen headers, cookies and device type."""
    parts = [scheme.lower(), host.lower() if rule.include_host else b"", path]
    parts.append(b"?" + normalise_query(query, rule))
    # One pass over the request's fields picks out every keyed one (a hit computes a key).
    keyed = _KEYED_DEFAULT if not rule.headers else _KEYED_DEFAULT | frozenset(rule.headers)
    found: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        if name in keyed:
            found.setdefault(name, []).append(value)
    if found:
        for name in (*DEFAULT_HEADERS, *rule.headers):
            lines = found.get(name)
            if lines is None:
                continue
            if name == b"origin" and not rule.include_origin:
                continue
            if name == b"x-forwarded-scheme" and _is_http_scheme(lines):
                continue
            parts.append(b"h:" + name + b"=" + b",".join(v.strip() for v in lines))
    for name in rule.headers_present:
        parts.append(b"hp:" + name + (b"=1" if any(True for _ in values(headers, name)) else b"=0"))
    if rule.cookies or rule.cookies_present:
        jar = cookies(headers)
        for name in rule.cookies:
            parts.append(b"c:" + name + (b"=" + jar[name] if name in jar else b"!"))
        for name in rule.cookies_present:
            parts.append(b"cp:" + name + (b"=1" if name in jar else b"=0"))
    if rule.device_type:
        agent = next(values(headers, b"user-agent"), None)
        parts.append(b"d:" + device_type(agent))
    if _NEEDS_ESCAPE.search(b"".join(parts)) is not None:
        return b"\x00".join([_escape(p) for p in parts])
    return b"\x00".join(parts)  # the common key: nothing to escape


def _is_http_scheme(lines: list[bytes]) -> bool:
    """Spec §8.5: X-Forwarded-Scheme keys only when it is neither http nor https."""
    return lines[0].strip().lower() in (b"http", b"https")

