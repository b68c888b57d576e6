"""Byte ranges served from a whole stored representation (RFC 9110 §14)."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_RANGES = 16  # more ranges than this: serve the whole representation (RFC 9110 §14.2)
_INT = re.compile(rb"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """No requested range overlaps the representation: 416 with `bytes */length`."""


@dataclass(frozen=True, slots=True)
class Ignore:
    """Range is absent, malformed, in another unit or too fragmented: serve 200 in full."""


UNSATISFIABLE = Unsatisfiable()
IGNORE = Ignore()


def parse_range(value: bytes | None, length: int) -> list[tuple[int, int]] | Unsatisfiable | Ignore:
    """Inclusive (start, end) byte ranges of a Range field for a representation of `length`
    bytes. A syntactically invalid field is ignored (RFC 9110 §14.2); overlapping ranges are
    coalesced and sorted, which §14.2 permits, so a response is never larger than the object."""
    if value is None:
        return IGNORE
    unit, eq, spec = value.partition(b"=")
    if not eq or unit.strip().lower() != b"bytes":
        return IGNORE
    members = [m.strip() for m in spec.split(b",")]
    members = [m for m in members if m]  # RFC 9110 §5.6.1: empty list elements are allowed
    if not members or len(members) > MAX_RANGES:
        return IGNORE
    ranges: list[tuple[int, int]] = []
    for member in members:
        first, dash, last = member.partition(b"-")
        first, last = first.strip(), last.strip()
        if not dash:
            return IGNORE
        if not first:  # suffix-range: the final `last` bytes
            if not _INT.fullmatch(last):
                return IGNORE
            suffix = int(last)
            if suffix > 0 and length > 0:
                ranges.append((max(0, length - suffix), length - 1))
            continue
        if not _INT.fullmatch(first) or (last and not _INT.fullmatch(last)):
            return IGNORE
        start = int(first)
        end = int(last) if last else length - 1
        if last and end < start:
            return IGNORE  # RFC 9110 §14.1.1: last-pos < first-pos makes the field invalid
        if start < length:
            ranges.append((start, min(end, length - 1)))
    if not ranges:
        return UNSATISFIABLE
    return _coalesce(ranges) if len(ranges) > 1 else ranges


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ordered = sorted(ranges)
    if all(a[1] + 1 < b[0] for a, b in zip(ordered, ordered[1:], strict=False)):
        return ranges  # disjoint: keep the client's order
    merged = [ordered[0]]
    for start, end in ordered[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end + 1:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def content_range(start: int, end: int, length: int) -> bytes:
    """Content-Range of one part, e.g. b"bytes 0-99/1000" (RFC 9110 §14.4)."""
    return b"bytes %d-%d/%d" % (start, end, length)


def unsatisfied_range(length: int) -> bytes:
    """Content-Range of a 416 response, b"bytes */1000"."""
    return b"bytes */%d" % length


def multipart_byteranges(
    body: bytes, ranges: list[tuple[int, int]], content_type: bytes | None, boundary: bytes
) -> tuple[bytes, bytes]:
    """(Content-Type, body) of a multipart/byteranges 206 (RFC 9110 §14.6). The caller picks a
    boundary that does not occur in the body."""
    length = len(body)
    parts: list[bytes] = []
    for start, end in ranges:
        head = b"--" + boundary + b"\r\n"
        if content_type:
            head += b"content-type: " + content_type + b"\r\n"
        head += b"content-range: " + content_range(start, end, length) + b"\r\n\r\n"
        parts.append(head + body[start : end + 1] + b"\r\n")
    parts.append(b"--" + boundary + b"--\r\n")
    return b"multipart/byteranges; boundary=" + boundary, b"".join(parts)
