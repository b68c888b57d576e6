"""Bytes on the wire: field checks, canonical forms, and serialisation (RFC 9110/9112).

Everything here works on bytes with explicit ASCII checks (security rule G8): no int() on
protocol text, no Unicode case mapping, no strip() that eats control characters.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from originguard.http.messages import Headers

# RFC 9110 §7.6.1: hop-by-hop fields, plus the legacy ones proxies still see.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

_DIGITS = re.compile(rb"[0-9]{1,18}\Z")
_HOST = re.compile(rb"[a-z0-9\-_.]{1,253}\Z")
_IPV6_HOST = re.compile(rb"\[[0-9a-f:.]{2,45}\]\Z")
_PORT = re.compile(rb"[0-9]{1,5}\Z")
_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")
_MANY_SLASHES = re.compile(rb"/{2,}")
# Anything canonical_path changes. One search: `b"%" in path` costs as much as a regex call.
_PATH_WORK = re.compile(rb"[%\\]|//|/\.")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_TCHAR_ONLY = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def parse_decimal(value: bytes) -> int | None:
    """A non-negative decimal of at most 18 ASCII digits, or None (RFC 9110 §8.6)."""
    if _DIGITS.match(value) is None:
        return None
    return int(value)


def is_token(value: bytes) -> bool:
    return _TCHAR_ONLY.match(value) is not None


def split_list(value: bytes) -> list[bytes]:
    """Elements of a comma-separated field, trimmed of SP/HTAB only, empty ones dropped."""
    items = []
    for part in value.split(b","):
        item = part.strip(b" \t")
        if item:
            items.append(item)
    return items


def connection_tokens(headers: Headers) -> set[bytes]:
    """Lower-cased option names listed in every Connection field."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(item.lower() for item in split_list(value))
    return tokens


def strip_hop_by_hop(headers: Headers) -> Headers:
    """Drop hop-by-hop fields and every field the Connection header names (RFC 9110 §7.6.1)."""
    named = connection_tokens(headers)
    if not named:
        return [(k, v) for k, v in headers if k not in HOP_BY_HOP]
    return [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in named]


def canonical_host(raw: bytes) -> bytes | None:
    """Host without port, lower-case, without a trailing dot; None when malformed."""
    known = _CANONICAL_HOSTS.get(raw)
    if known is not None:
        return known
    host = _canonical_host(raw)
    if host is not None:
        if len(_CANONICAL_HOSTS) >= _CANONICAL_HOSTS_MAX:
            _CANONICAL_HOSTS.clear()
        _CANONICAL_HOSTS[raw] = host
    return host


# Every request's Host goes through canonical_host, and a site has few spellings of its names.
_CANONICAL_HOSTS: dict[bytes, bytes] = {}
_CANONICAL_HOSTS_MAX = 4096


def _canonical_host(raw: bytes) -> bytes | None:
    host = raw.lower()
    if host.startswith(b"["):
        end = host.find(b"]")
        if end < 0:
            return None
        rest = host[end + 1 :]
        host = host[: end + 1]
        if _IPV6_HOST.match(host) is None:
            return None
        if rest and (not rest.startswith(b":") or _PORT.match(rest[1:]) is None):
            return None
        return host
    colon = host.rfind(b":")
    if colon >= 0:
        port = host[colon + 1 :]
        if _PORT.match(port) is None or int(port) > 65535:
            return None
        host = host[:colon]
    if host.endswith(b"."):
        host = host[:-1]
    if _HOST.match(host) is None or host.startswith(b".") or b".." in host:
        return None
    return host


def split_target(target: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Request target -> (authority, path, query). Authority is b"" for origin-form.

    Absolute-form (RFC 9112 §3.2.2) yields its authority, which then overrides Host.
    """
    authority = b""
    if not target.startswith(b"/"):
        lowered = target[:8].lower()
        if lowered.startswith(b"http://"):
            rest = target[7:]
        elif lowered.startswith(b"https://"):
            rest = target[8:]
        else:
            return None
        slash = rest.find(b"/")
        question = rest.find(b"?")
        cut = min(i for i in (slash, question, len(rest)) if i >= 0)
        authority, target = rest[:cut], rest[cut:]
        if b"@" in authority or not authority:
            return None
        if not target.startswith(b"/"):
            target = b"/" + target
    hash_at = target.find(b"#")
    if hash_at >= 0:
        target = target[:hash_at]
    question = target.find(b"?")
    if question < 0:
        return authority, target, b""
    return authority, target[:question], target[question + 1 :]


def canonical_path(path: bytes) -> bytes | None:
    """One canonical path (security rule G6): unreserved escapes decoded, other escapes
    upper-cased (RFC 3986 §6.2.2), backslashes turned into slashes and runs of slashes merged
    (as Cloudflare's URL normalisation does), dot segments removed (§5.2.4). None when
    malformed. The origin receives this path: routing, rules and the cache key saw it."""
    if _PATH_WORK.search(path) is None:
        return path  # the common path: nothing to decode, merge or remove
    if b"%" in path:
        if b"%00" in path:
            return None
        pieces = path.split(b"%")
        out = [pieces[0]]
        for piece in pieces[1:]:
            if len(piece) < 2 or _PCT.match(b"%" + piece[:2]) is None:
                return None
            code = int(piece[:2], 16)
            if code in _UNRESERVED:
                out.append(bytes((code,)) + piece[2:])
            else:
                out.append(b"%" + piece[:2].upper() + piece[2:])
        path = b"".join(out)
    if b"\\" in path:
        path = path.replace(b"\\", b"/")
    if b"//" in path:
        path = _MANY_SLASHES.sub(b"/", path)
    if b"/." in path:
        path = _remove_dot_segments(path)
    return path


def _remove_dot_segments(path: bytes) -> bytes:
    segments = path.split(b"/")
    out: list[bytes] = []
    for segment in segments[1:]:
        if segment == b".":
            continue
        if segment == b"..":
            if out:
                out.pop()
            continue
        out.append(segment)
    trailing = segments[-1] in (b".", b"..")
    result = b"/" + b"/".join(out)
    if trailing and not result.endswith(b"/"):
        result += b"/"
    return result


def reason_phrase(status: int) -> bytes:
    return _REASONS.get(status) or b"Unknown"


_REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}
_REASONS.update(
    {
        520: b"Web Server Returned an Unknown Error",
        521: b"Web Server Is Down",
        522: b"Connection Timed Out",
        523: b"Origin Is Unreachable",
        524: b"A Timeout Occurred",
        525: b"SSL Handshake Failed",
        526: b"Invalid SSL Certificate",
        530: b"Origin Unavailable",
    }
)
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status))
        _STATUS_LINES[status] = line
    return line


def serialize_headers(headers: Headers) -> bytes:
    return b"".join([name + b": " + value + b"\r\n" for name, value in headers])


def chunk(data: bytes) -> bytes:
    """One chunk of the chunked transfer coding (RFC 9112 §7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
