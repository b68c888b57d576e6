"""The request the origin sees: re-serialised from the parsed form (security rules G2, G5)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from originguard.http.messages import Headers, RequestHead
from originguard.http.wire import HOP_BY_HOP, connection_tokens, split_list

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Client-supplied identity and routing-override headers the edge regenerates or drops (G5).
_REGENERATED = frozenset(
    {
        b"host",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"og-connecting-ip",
        b"og-ray",
        b"x-real-ip",
        b"true-client-ip",
        b"x-original-url",
        b"x-rewrite-url",
        b"x-original-host",
        b"x-forwarded-server",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-forwarded-ssl",
        b"x-forwarded-scheme",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"cf-connecting-ip",
        b"cf-connecting-ipv6",
        b"fastly-client-ip",
        b"front-end-https",
    }
)
VIA = b"1.1 originguard"
# Client fields that are not copied as they are: regenerated, hop-by-hop, or Via (extended).
_NOT_COPIED = _REGENERATED | HOP_BY_HOP | {b"via"}


def client_ip(peer_ip: str, head: RequestHead, trusted: Sequence[IpNetwork]) -> str:
    """The visitor's address: the TCP peer, unless the peer is a trusted proxy, in which case
    the right-most X-Forwarded-For entry that is not itself a trusted proxy."""
    if not trusted or not is_trusted(peer_ip, trusted):
        return peer_ip
    hops: list[bytes] = []
    for name, value in head.headers:
        if name == b"x-forwarded-for":
            hops.extend(split_list(value))
    for hop in reversed(hops):
        try:
            parsed = ipaddress.ip_address(hop.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return peer_ip
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped  # ::ffff:a.b.c.d is the IPv4 client a.b.c.d
        address = str(parsed)
        if not is_trusted(address, trusted):
            return address
    return peer_ip


def is_trusted(ip: str, trusted: Sequence[IpNetwork]) -> bool:
    if not trusted:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def build_head(
    head: RequestHead,
    *,
    headers: Headers | None = None,
    host: bytes,
    peer_ip: str,
    visitor_ip: str,
    peer_trusted: bool,
    scheme: bytes,
    ray: bytes,
    body_length: int | None,
) -> bytes:
    """Serialise the upstream request head. `body_length` None with a body means chunked.
    `headers` replaces the client's fields (the cache drops conditionals on a fill)."""
    if headers is None:
        headers = head.headers
    # Two passes in C-speed comprehensions beat one Python loop with branches per field.
    lines = [name + b": " + value + b"\r\n" for name, value in headers if name not in _NOT_COPIED]
    special = [(name, value) for name, value in headers if name in _NOT_COPIED]
    incoming_xff: list[bytes] = []
    via: list[bytes] = []
    for name, value in special:
        if name == b"x-forwarded-for":
            if peer_trusted:
                incoming_xff.append(value)
        elif name == b"via":
            via.append(value)
        elif name == b"connection":
            named = connection_tokens(headers)
            lines = [
                name + b": " + value + b"\r\n"
                for name, value in headers
                if name not in _NOT_COPIED and name not in named
            ]
    lines.insert(0, b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (head.method, _origin_target(head), host))
    append = lines.append
    peer = peer_ip.encode()
    xff = b", ".join([*incoming_xff, peer]) if incoming_xff else peer
    via.append(VIA)
    # The canonical host (G6): what routing, rules and the cache key saw, never the raw field
    # (a port, upper case or a trailing dot there would let one client poison a cache entry).
    original_host = head.host
    append(
        b"x-forwarded-for: %s\r\nx-forwarded-proto: %s\r\nx-forwarded-host: %s\r\n"
        b"via: %s\r\nog-connecting-ip: %s\r\nog-ray: %s\r\n"
        % (xff, scheme, original_host, b", ".join(via), visitor_ip.encode(), ray)
    )
    if head.has_body or head.chunked:
        if body_length is None:
            append(b"transfer-encoding: chunked\r\n")
        else:
            append(b"content-length: %d\r\n" % body_length)
    elif head.method in (b"POST", b"PUT", b"PATCH"):
        append(b"content-length: 0\r\n")
    append(b"\r\n")
    return b"".join(lines)


def _origin_target(head: RequestHead) -> bytes:
    if head.path == b"*":
        return b"*"
    return head.uri
