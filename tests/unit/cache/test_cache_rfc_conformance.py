"""Regression tests for RFC behaviours the http-cache-tests suite found missing
(bench/cache-tests.sh). Each test is named after the rule and cites it."""

from originguard.cache.control import DELTA_MAX, age_field, parse_cache_control
from originguard.cache.policy import (
    CacheRule,
    NotStorable,
    Reason,
    Storable,
    initial_age,
    merge_304,
    storability,
    vary_key,
)
from originguard.cache.vary import normalise_accept_language

NOW = 1_700_000_000.0


def h(*lines: str) -> list[tuple[bytes, bytes]]:
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower().encode(), value.strip().encode()))
    return out


# --- RFC 9111 §4.2.3 / §5.1: Age --------------------------------------------------------------


def test_age_from_upstream_is_part_of_the_initial_age():
    # cache-tests freshness-max-age-age, other-age-update-*: the stored copy keeps its Age.
    assert initial_age(h("Age: 7200"), NOW, NOW) == 7200
    assert initial_age(h("Age: 30"), NOW - 2, NOW) == 32


def test_several_age_field_lines_make_a_response_stale():
    # RFC 9110 §5.5: a repeated singleton field may be treated as invalid; stale is the safe
    # reading (cache-tests age-parse-*-twoline).
    assert age_field(h("Age: 0", "Age: 7200")) == DELTA_MAX
    assert age_field(h("Age: 0", "Age: 0")) == DELTA_MAX
    assert age_field(h("Age: 0")) == 0


# --- RFC 9111 §3.2 / §4.3.4: freshening with a 304 ---------------------------------------------


def test_304_does_not_replace_the_stored_etag():
    stored = h('ETag: "abcdef"', "Cache-Control: max-age=2")
    merged = merge_304(stored, h('ETag: "ghijkl"', "Cache-Control: max-age=60"))
    assert (b"etag", b'"abcdef"') in merged
    assert (b"etag", b'"ghijkl"') not in merged
    assert (b"cache-control", b"max-age=60") in merged


def test_304_adds_an_etag_when_none_was_stored():
    merged = merge_304(h("Last-Modified: Wed, 01 Jan 2020 00:00:00 GMT"), h('ETag: "x"'))
    assert (b"etag", b'"x"') in merged


def test_304_does_not_replace_content_md5_which_digests_the_stored_body():
    merged = merge_304(h("Content-MD5: rL0Y20zC+Fzt72VPzMSk2A=="), h("Content-MD5: other=="))
    assert merged == h("Content-MD5: rL0Y20zC+Fzt72VPzMSk2A==")


# --- RFC 9111 §3: status codes the cache does not know ----------------------------------------


def test_unknown_status_with_explicit_freshness_is_stored():
    for status in (299, 499, 599):
        decision = storability(status, [], h("Cache-Control: max-age=3600"), response_time=NOW)
        assert isinstance(decision, Storable), status


def test_unknown_status_with_public_may_use_the_heuristic():
    resp = h("Cache-Control: public", "Last-Modified: Tue, 14 Nov 2023 00:00:00 GMT",
             "Date: Tue, 14 Nov 2023 22:13:20 GMT")  # fmt: skip
    assert isinstance(storability(599, [], resp, response_time=NOW), Storable)


def test_status_not_heuristically_cacheable_without_freshness_is_not_stored_rfc9111_3():
    # With the edge's default TTLs off, a response without explicit freshness used to be
    # stored stale, to be revalidated, whatever its status; §3 allows that only for a
    # heuristically cacheable status (or `public`). Always Online then served the stored 503
    # in place of the origin's fresh one.
    rfc_only = CacheRule(default_ttls=False)
    validators = ('ETag: "v1"', "Last-Modified: Tue, 14 Nov 2023 00:00:00 GMT",
                  "Date: Tue, 14 Nov 2023 00:00:00 GMT")  # fmt: skip
    for status in (302, 500, 503):
        decision = storability(status, [], h(*validators), rfc_only, response_time=NOW)
        assert isinstance(decision, NotStorable) and decision.reason is Reason.STATUS, status
    for status in (200, 404):
        decision = storability(status, [], h(*validators), rfc_only, response_time=NOW)
        assert isinstance(decision, Storable) and decision.always_revalidate, status
    public = h("Cache-Control: public", *validators)
    assert isinstance(storability(503, [], public, rfc_only, response_time=NOW), Storable)


def test_unknown_status_without_freshness_is_not_stored():
    decision = storability(599, [], h("Last-Modified: Tue, 14 Nov 2023 00:00:00 GMT"),
                           response_time=NOW)  # fmt: skip
    assert isinstance(decision, NotStorable) and decision.reason is Reason.STATUS


def test_must_understand_forbids_storing_an_unknown_status():
    # RFC 9111 §5.2.2.3 (cache-tests status-599-must-understand).
    resp = h("Cache-Control: max-age=3600, must-understand")
    decision = storability(599, [], resp, response_time=NOW)
    assert isinstance(decision, NotStorable) and decision.reason is Reason.STATUS
    assert parse_cache_control([b"must-understand"]).must_understand


def test_interim_and_304_responses_are_never_stored():
    for status in (100, 304):
        decision = storability(status, [], h("Cache-Control: max-age=60"), response_time=NOW)
        assert isinstance(decision, NotStorable), status


# --- RFC 9111 §4.1: Vary on Accept-Language ----------------------------------------------------


def test_accept_language_variants_ignore_order_case_and_whitespace():
    # RFC 4647 §2 (ranges are case-insensitive), RFC 9110 §12.4.2 (equal weights).
    key = vary_key([b"accept-language"], h("Accept-Language: en, de"))
    for other in ("de, en", "eN, De", " en ,   de"):
        assert vary_key([b"accept-language"], h(f"Accept-Language: {other}")) == key, other
    assert vary_key([b"accept-language"], h("Accept-Language: fr")) != key


def test_accept_language_keeps_weights_and_drops_refused_ranges():
    assert normalise_accept_language([b"fr;q=0.5, EN;q=0.9, de;q=0"]) == b"en;q=0.9,fr;q=0.5"
    assert normalise_accept_language([b"en;q=1.0"]) == b"en"


def test_absent_accept_language_differs_from_present():
    assert vary_key([b"accept-language"], []) != vary_key(
        [b"accept-language"], h("Accept-Language: en")
    )
