"""Invalidation after unsafe requests (RFC 9111 §4.4)."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from originguard.cache.control import Headers, first

SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})


class Target(NamedTuple):
    """A URI whose stored responses (every variant) must go."""

    scheme: bytes
    host: bytes
    path: bytes
    query: bytes


def _resolve(base: str, reference: str) -> tuple[str, Target] | None:
    """``reference`` resolved against ``base``: the absolute URI and its target; None when
    either is not a valid URI."""
    try:
        uri = urljoin(base, reference)
        parts = urlsplit(uri)
        host = (parts.hostname or "").encode("ascii")
        port = parts.port
    except (ValueError, UnicodeEncodeError):
        return None
    if port is not None and port != {"http": 80, "https": 443}.get(parts.scheme):
        host += b":%d" % port
    target = Target(
        parts.scheme.encode("ascii"),
        host,
        (parts.path or "/").encode("latin-1"),
        parts.query.encode("latin-1"),
    )
    return uri, target


def invalidation_targets(
    method: bytes,
    status: int,
    scheme: bytes,
    host: bytes,
    target: bytes,
    resp_headers: Headers,
) -> list[Target]:
    """URIs to invalidate after `method` on `scheme://host` + `target` answered `status`.

    RFC 9111 §4.4: "A cache MUST invalidate the target URI when it receives a non-error
    status code in response to an unsafe request method"; it may do the same for Location and
    Content-Location, but not when their host differs (a cross-origin denial of service).
    """
    if method in SAFE_METHODS or not 200 <= status < 400:
        return []
    base = scheme.decode("latin-1") + "://" + host.decode("latin-1").lower() + "/"
    resolved = _resolve(base, target.decode("latin-1"))
    if resolved is None:
        return []
    request_uri, request = resolved
    found = [request]
    for name in (b"location", b"content-location"):
        raw = first(resp_headers, name)
        if raw is None:
            continue
        located = _resolve(request_uri, raw.strip().decode("latin-1"))
        if located is None:
            continue
        other = located[1]
        if (other.scheme, other.host) != (request.scheme, request.host):
            continue
        if other not in found:
            found.append(other)
    return found
