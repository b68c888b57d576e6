"""Conditional requests answered from cache and revalidation with the origin
(RFC 9110 §13, RFC 9111 §4.3)."""

import pytest

from originguard.cache.control import format_http_date
from originguard.cache.policy import (
    evaluate_conditional,
    if_range_matches,
    matches_304,
    merge_304,
    revalidation_headers,
    weaken_etags,
)

NOW = 1_700_000_000.0
LM = format_http_date(NOW - 1000).decode()
BEFORE = format_http_date(NOW - 2000).decode()
AFTER = format_http_date(NOW - 500).decode()
FUTURE = format_http_date(NOW + 500).decode()


def h(*lines: str) -> list[tuple[bytes, bytes]]:
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower().encode(), value.strip().encode()))
    return out


STORED = h('ETag: "v1"', f"Last-Modified: {LM}")
STORED_WEAK = h('ETag: W/"v1"', f"Last-Modified: {LM}")

CONDITIONALS = [
    ("§13.1.2 If-None-Match matches", STORED, ['If-None-Match: "v1"'], 304),
    ("§13.1.2 weak comparison", STORED, ['If-None-Match: W/"v1"'], 304),
    ("§13.1.2 weak stored, strong asked", STORED_WEAK, ['If-None-Match: "v1"'], 304),
    ("§13.1.2 list", STORED, ['If-None-Match: "a", "v1"'], 304),
    ("§13.1.2 list over lines", STORED, ['If-None-Match: "a"', 'If-None-Match: "v1"'], 304),
    ("§13.1.2 comma inside a tag", h('ETag: "a,b"'), ['If-None-Match: "x", "a,b"'], 304),
    ("§13.1.2 star", STORED, ["If-None-Match: *"], 304),
    ("§13.1.2 no match", STORED, ['If-None-Match: "v2"'], None),
    ("§13.1.2 no stored ETag", h(f"Last-Modified: {LM}"), ['If-None-Match: "v1"'], None),
    ("§13.2.2 INM wins over IMS", STORED, ['If-None-Match: "v2"', f"If-Modified-Since: {AFTER}"],
     None),
    ("§13.1.3 IMS after LM", STORED, [f"If-Modified-Since: {AFTER}"], 304),
    ("§13.1.3 IMS equal to LM", STORED, [f"If-Modified-Since: {LM}"], 304),
    ("§13.1.3 IMS before LM", STORED, [f"If-Modified-Since: {BEFORE}"], None),
    ("§13.1.3 invalid IMS ignored", STORED, ["If-Modified-Since: yesterday"], None),
    ("§13.1.3 future IMS ignored", STORED, [f"If-Modified-Since: {FUTURE}"], None),
    ("§4.3.2 no LM: Date used", h(f"Date: {LM}"), [f"If-Modified-Since: {AFTER}"], 304),
    ("§13.1.1 If-Match strong match", STORED, ['If-Match: "v1"'], None),
    ("§13.1.1 If-Match mismatch", STORED, ['If-Match: "v2"'], 412),
    ("§13.1.1 If-Match needs strong", STORED_WEAK, ['If-Match: W/"v1"'], 412),
    ("§13.1.1 If-Match star", STORED, ["If-Match: *"], None),
    ("§13.1.4 If-Unmodified-Since before LM", STORED, [f"If-Unmodified-Since: {BEFORE}"], 412),
    ("§13.1.4 If-Unmodified-Since after LM", STORED, [f"If-Unmodified-Since: {AFTER}"], None),
    ("§13.2.2 If-Match then INM", STORED, ['If-Match: "v1"', 'If-None-Match: "v1"'], 304),
    ("no conditionals", STORED, [], None),
]


@pytest.mark.parametrize(
    ("anchor", "stored", "req", "expected"), CONDITIONALS, ids=[c[0] for c in CONDITIONALS]
)
def test_conditional_request_against_stored_response(anchor, stored, req, expected):
    assert evaluate_conditional(h(*req), stored, NOW) == expected


def test_smart_edge_revalidation_uses_fill_time_without_validators():
    # spec §8.3: no Last-Modified, no ETag: the cache-fill time stands in.
    assert evaluate_conditional(h(f"If-Modified-Since: {AFTER}"), [], NOW,
                                stored_at=NOW - 1000) == 304


def test_preconditions_are_ignored_for_a_stored_non_2xx():
    # RFC 9110 §13.2.1
    assert evaluate_conditional(h("If-None-Match: *"), STORED, NOW, stored_status=404) is None


def test_revalidation_request_carries_stored_validators():
    assert revalidation_headers(STORED) == h('If-None-Match: "v1"', f"If-Modified-Since: {LM}")
    assert revalidation_headers([]) == []


def test_304_replaces_stored_fields_but_not_framing():
    # RFC 9111 §3.2: update every field the 304 carries, except Content-Length.
    stored = h("Content-Type: text/css", "Content-Length: 10", "Cache-Control: max-age=1",
               'ETag: "v1"', "X-Old: a", "X-Old: b")
    fresh = h("Cache-Control: max-age=60", "Content-Length: 0", "X-Old: c", "X-New: 1",
              "Connection: close")
    assert merge_304(stored, fresh) == h(
        "Content-Type: text/css", "Content-Length: 10", 'ETag: "v1"',
        "Cache-Control: max-age=60", "X-Old: c", "X-New: 1",
    )


MATCHES_304 = [
    ("§4.3.4 same strong ETag", ['ETag: "v1"'], True),
    ("§4.3.4 other ETag", ['ETag: "v2"'], False),
    ("§4.3.4 same Last-Modified", [f"Last-Modified: {LM}"], True),
    ("§4.3.4 other Last-Modified", [f"Last-Modified: {AFTER}"], False),
    ("§4.3.4 no validator", [], True),
]


@pytest.mark.parametrize(("anchor", "h304", "expected"), MATCHES_304,
                         ids=[m[0] for m in MATCHES_304])
def test_304_updates_only_the_response_its_validator_selects(anchor, h304, expected):
    assert matches_304(STORED, h(*h304)) is expected


IF_RANGE = [
    ("§13.1.5 strong ETag matches", '"v1"', STORED, True),
    ("§13.1.5 other ETag", '"v2"', STORED, False),
    ("§13.1.5 weak never matches", 'W/"v1"', STORED_WEAK, False),
    ("§13.1.5 exact date", LM, STORED, True),
    ("§13.1.5 other date", AFTER, STORED, False),
    ("§13.1.5 garbage", "soon", STORED, False),
]


@pytest.mark.parametrize(("anchor", "value", "stored", "expected"), IF_RANGE,
                         ids=[i[0] for i in IF_RANGE])
def test_if_range(anchor, value, stored, expected):
    assert if_range_matches(value.encode(), stored) is expected


def test_strong_etags_are_weakened_by_default():
    assert weaken_etags(h('ETag: "v1"', "X: 1")) == h('ETag: W/"v1"', "X: 1")
    assert weaken_etags(h('ETag: W/"v1"')) == h('ETag: W/"v1"')
