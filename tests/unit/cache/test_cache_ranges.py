"""Range requests served from a whole stored object (RFC 9110 §14)."""

import pytest

from originguard.cache.policy import (
    Ignore,
    Unsatisfiable,
    content_range,
    multipart_byteranges,
    parse_range,
    unsatisfied_range,
)

RANGES = [
    ("§14.1.2 first bytes", b"bytes=0-99", 1000, [(0, 99)]),
    ("§14.1.2 open-ended", b"bytes=900-", 1000, [(900, 999)]),
    ("§14.1.2 suffix", b"bytes=-100", 1000, [(900, 999)]),
    ("§14.1.2 suffix longer than object", b"bytes=-5000", 1000, [(0, 999)]),
    ("§14.1.2 last clamped", b"bytes=990-2000", 1000, [(990, 999)]),
    ("§14.1.2 unit case-insensitive", b"Bytes=0-0", 1000, [(0, 0)]),
    ("§14.1.2 whitespace", b"bytes= 0-1 , 5-6", 1000, [(0, 1), (5, 6)]),
    ("§14.2 disjoint ranges keep order", b"bytes=500-599,0-99", 1000, [(500, 599), (0, 99)]),
    ("§14.2 overlapping ranges coalesce", b"bytes=0-99,50-150,151-200", 1000, [(0, 200)]),
    ("§14.1.1 one satisfiable is enough", b"bytes=5000-,0-0", 1000, [(0, 0)]),
    ("§14.1.1 first past the end", b"bytes=1000-", 1000, Unsatisfiable()),
    ("§14.1.1 suffix of zero", b"bytes=-0", 1000, Unsatisfiable()),
    ("§14.1.1 empty object", b"bytes=0-", 0, Unsatisfiable()),
    ("§14.1.1 last < first is invalid", b"bytes=5-1", 1000, Ignore()),
    ("§14.2 other unit", b"items=0-1", 1000, Ignore()),
    ("§14.2 no dash", b"bytes=5", 1000, Ignore()),
    ("§14.2 letters", b"bytes=a-b", 1000, Ignore()),
    ("§14.2 negative", b"bytes=--5", 1000, Ignore()),
    ("§14.2 empty", b"bytes=", 1000, Ignore()),
    ("§14.2 absent", None, 1000, Ignore()),
    ("§14.2 too many ranges", b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(0, 40, 2)),
     1000, Ignore()),
    ("huge numbers are not converted", b"bytes=" + b"9" * 4000 + b"-", 1000, Ignore()),
]


@pytest.mark.parametrize(("anchor", "value", "length", "expected"), RANGES,
                         ids=[r[0] for r in RANGES])
def test_range_header_parsing(anchor, value, length, expected):
    assert parse_range(value, length) == expected


def test_content_range_formats():
    assert content_range(0, 99, 1000) == b"bytes 0-99/1000"
    assert unsatisfied_range(1000) == b"bytes */1000"  # the 416 form


def test_multipart_byteranges_body_carries_each_part():
    content_type, body = multipart_byteranges(b"0123456789", [(0, 1), (8, 9)], b"text/plain", b"B")
    assert content_type == b"multipart/byteranges; boundary=B"
    assert body == (
        b"--B\r\ncontent-type: text/plain\r\ncontent-range: bytes 0-1/10\r\n\r\n01\r\n"
        b"--B\r\ncontent-type: text/plain\r\ncontent-range: bytes 8-9/10\r\n\r\n89\r\n"
        b"--B--\r\n"
    )
