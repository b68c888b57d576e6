"""Vary keys (RFC 9111 §4.1), Cache-Tag and stripped headers (spec §2.3, §8.7), and
invalidation after unsafe methods (RFC 9111 §4.4)."""

import pytest

from originguard.cache.invalidate import Target
from originguard.cache.policy import (
    invalidation_targets,
    normalise_accept_encoding,
    parse_cache_tags,
    strip_for_client,
    vary_key,
    vary_names,
)


def h(*lines: str) -> list[tuple[bytes, bytes]]:
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower().encode(), value.strip().encode()))
    return out


ENCODINGS = [
    ("browser", [b"gzip, deflate, br"], b"br"),
    ("order and q do not matter", [b"br;q=0.5, gzip;q=1"], b"br"),
    ("gzip only", [b"gzip, deflate"], b"gzip"),
    ("x-gzip is gzip", [b"x-gzip"], b"gzip"),
    ("br refused", [b"br;q=0, gzip"], b"gzip"),
    ("q=0.000 refuses", [b"gzip;q=0.000"], b"identity"),
    ("star", [b"*"], b"br"),
    ("star but br refused", [b"*, br;q=0"], b"gzip"),
    ("identity", [b"identity"], b"identity"),
    ("absent", [], b"identity"),
    ("case", [b"GZIP"], b"gzip"),
]


@pytest.mark.parametrize(("case", "lines", "bucket"), ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_accept_encoding_is_reduced_to_a_bucket(case, lines, bucket):
    assert normalise_accept_encoding(lines) == bucket


def test_clients_differing_trivially_in_accept_encoding_share_a_variant():
    chrome = vary_key([b"Accept-Encoding"], h("Accept-Encoding: gzip, deflate, br, zstd"))
    firefox = vary_key([b"accept-encoding"], h("Accept-Encoding: br, gzip"))
    curl = vary_key([b"accept-encoding"], [])
    assert chrome == firefox != curl


def test_vary_key_distinguishes_absent_from_empty_and_values():
    names = [b"accept-language"]
    absent = vary_key(names, [])
    empty = vary_key(names, h("Accept-Language:"))
    fr = vary_key(names, h("Accept-Language: fr"))
    assert len({absent, empty, fr}) == 3


def test_vary_key_normalises_whitespace_and_line_splits():
    # RFC 9111 §4.1: fields may be normalised, e.g. combining lines and dropping whitespace.
    names = [b"x-a"]
    assert vary_key(names, h("X-A: 1,2")) == vary_key(names, h("X-A: 1 ,  2"))
    assert vary_key(names, h("X-A: 1", "X-A: 2")) == vary_key(names, h("X-A: 1, 2"))


def test_vary_key_is_independent_of_the_order_of_names():
    req = h("X-A: 1", "X-B: 2")
    assert vary_key([b"X-A, x-b"], req) == vary_key([b"x-b", b"x-a"], req)


def test_vary_names_and_star():
    assert vary_names(h("Vary: Accept-Encoding, X-A", "Vary: x-a")) == (b"accept-encoding", b"x-a")
    assert vary_names(h("Vary: X, *")) is None
    assert vary_names([]) == ()


TAGS = [
    ("§8.7 comma-separated, trimmed", [b" a , b,c "], (b"a", b"b", b"c")),
    ("§8.7 case-insensitive, dedup", [b"Product, PRODUCT, product"], (b"product",)),
    ("§8.7 repeated header lines", [b"a", b"b,a"], (b"a", b"b")),
    ("§8.7 repeated and trailing commas", [b",,a,,b,"], (b"a", b"b")),
    ("§8.7 spaces inside a tag: dropped", [b"a b, c"], (b"c",)),
    ("§8.7 non-printable dropped", [b"a\x01, c"], (b"c",)),
]


@pytest.mark.parametrize(("anchor", "lines", "tags"), TAGS, ids=[t[0] for t in TAGS])
def test_cache_tags_are_normalised(anchor, lines, tags):
    assert parse_cache_tags(lines) == tags


def test_cache_tags_stop_at_16_kb():
    line = b",".join(b"tag-%05d" % i for i in range(5000))
    tags = parse_cache_tags([line])
    assert 1000 < len(tags) < 5000
    assert sum(len(t) + 1 for t in tags) <= 16 * 1024


def test_cache_tag_and_x_accel_headers_never_reach_the_client():
    resp = h("Content-Type: text/css", "Cache-Tag: a", "X-Accel-Redirect: /x",
             "X-Accel-Buffering: no", "X-Accelerated: keep")
    assert strip_for_client(resp) == h("Content-Type: text/css", "X-Accelerated: keep")


INVALIDATION = [
    ("§4.4 POST invalidates target", b"POST", 200, b"/a?x=1", [],
     [Target(b"https", b"example.com", b"/a", b"x=1")]),
    ("§4.4 with Location and Content-Location", b"PUT", 201, b"/a",
     ["Location: /b", "Content-Location: https://example.com/c?q"],
     [Target(b"https", b"example.com", b"/a", b""), Target(b"https", b"example.com", b"/b", b""),
      Target(b"https", b"example.com", b"/c", b"q")]),
    ("§4.4 relative Location resolves against the target", b"POST", 303, b"/dir/a",
     ["Location: b"], [Target(b"https", b"example.com", b"/dir/a", b""),
                       Target(b"https", b"example.com", b"/dir/b", b"")]),
    ("§4.4 other host is not invalidated", b"DELETE", 204, b"/a",
     ["Location: https://evil.example/a"], [Target(b"https", b"example.com", b"/a", b"")]),
    ("§4.4 other scheme is another origin", b"DELETE", 204, b"/a",
     ["Location: http://example.com/a"], [Target(b"https", b"example.com", b"/a", b"")]),
    ("§4.4 error status invalidates nothing", b"POST", 500, b"/a", [], []),
    ("§4.4 safe method invalidates nothing", b"GET", 200, b"/a", [], []),
    ("§4.4 unknown method is unsafe", b"PURGE", 200, b"/a", [],
     [Target(b"https", b"example.com", b"/a", b"")]),
    ("an invalid Location is ignored", b"DELETE", 204, b"/a", ["Location: http://[::1"],
     [Target(b"https", b"example.com", b"/a", b"")]),
    ("an invalid absolute-form target invalidates nothing", b"POST", 200, b"http://[::1", [],
     []),
]


@pytest.mark.parametrize(("anchor", "method", "status", "target", "resp", "expected"),
                         INVALIDATION, ids=[i[0] for i in INVALIDATION])
def test_unsafe_methods_invalidate_same_origin_uris(anchor, method, status, target, resp, expected):
    assert invalidation_targets(method, status, b"https", b"Example.com", target, h(*resp)) == (
        expected
    )
