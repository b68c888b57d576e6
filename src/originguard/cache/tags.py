"""Cache-Tag handling (spec §8.7) and the origin headers the client never sees (spec §2.3)."""

from __future__ import annotations

from collections.abc import Iterable

from originguard.cache.control import Headers

MAX_TAGS_BYTES = 16 * 1024  # aggregate Cache-Tag size kept per response
MAX_TAG_LENGTH = 1024


def parse_cache_tags(header_values: Iterable[bytes]) -> tuple[bytes, ...]:
    """Tags of every Cache-Tag line: comma-separated, trimmed, lower-cased (tags are
    case-insensitive), de-duplicated in order; tags with spaces or non-printable bytes are
    dropped; tags beyond an aggregate 16 KB are ignored."""
    tags: dict[bytes, None] = {}
    total = 0
    for line in header_values:
        for raw in line.split(b","):
            tag = raw.strip().lower()
            if not tag or len(tag) > MAX_TAG_LENGTH or tag in tags:
                continue
            if any(byte <= 0x20 or byte >= 0x7F for byte in tag):
                continue
            total += len(tag) + 1
            if total > MAX_TAGS_BYTES:
                return tuple(tags)
            tags[tag] = None
    return tuple(tags)


_STRIPPED = frozenset({b"cache-tag"})


def strip_for_client(resp_headers: Headers) -> Headers:
    """The origin's response fields without Cache-Tag and X-Accel-* (spec §2.3, §8.7)."""
    return [
        (name, value)
        for name, value in resp_headers
        if name not in _STRIPPED and not name.startswith(b"x-accel-")
    ]
