"""Fields targeted at this cache: RFC 9213 CDN-Cache-Control and Surrogate-Control (W3C Edge
Architecture 1.0), read instead of Cache-Control and Expires for the edge's own policy."""

import pytest

from originguard.cache.control import (
    SURROGATE_CAPABILITY,
    SURROGATE_TOKEN,
    edge_cache_control,
    parse_dictionary,
)
from originguard.cache.policy import (
    CacheRule,
    NotStorable,
    Reason,
    Storable,
    freshness_lifetime,
    storability,
)

NOW = 1_700_000_000.0
DATE = b"Tue, 14 Nov 2023 22:13:20 GMT"  # NOW
LATER = b"Wed, 15 Nov 2023 22:13:20 GMT"  # NOW + 1 day


def h(*lines: str) -> list[tuple[bytes, bytes]]:
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower().encode(), value.strip().encode()))
    return out


RFC_ONLY = CacheRule(default_ttls=False)  # no spec §8.2 default TTL to mask a lifetime of 0


def lifetime(headers: list[tuple[bytes, bytes]]) -> float:
    return freshness_lifetime(200, headers, RFC_ONLY, response_time=NOW)


# --- RFC 9213 §2.2: CDN-Cache-Control ---------------------------------------------------------


def test_cdn_cache_control_max_age_stores_what_cache_control_no_store_keeps_from_others():
    # RFC 9213 §3 example: a CDN stores it for 600 s, every other cache stores nothing.
    headers = h("Cache-Control: no-store", "CDN-Cache-Control: max-age=600")
    assert isinstance(storability(200, [], headers), Storable)
    assert lifetime(headers) == 600


def test_cdn_cache_control_no_store_prevents_storing_a_fresh_cache_control_response():
    headers = h("Cache-Control: max-age=10000", "CDN-Cache-Control: no-store")
    decision = storability(200, [], headers)
    assert isinstance(decision, NotStorable) and decision.reason is Reason.NO_STORE


def test_cdn_cache_control_short_max_age_wins_over_a_long_cache_control():
    assert lifetime(h("Cache-Control: max-age=3600", "CDN-Cache-Control: max-age=1")) == 1


def test_cdn_cache_control_makes_the_cache_ignore_expires():
    # RFC 9213 §2.2: with a targeted field in use, Cache-Control *and Expires* are ignored;
    # `none` is the RFC's own example of a valid field that grants nothing.
    headers = h(f"Date: {DATE.decode()}", f"Expires: {LATER.decode()}",
                "CDN-Cache-Control: none", "ETag: \"v1\"")  # fmt: skip
    assert lifetime(headers) == 0
    assert lifetime(headers[:2]) == 86400


@pytest.mark.parametrize(
    "value",
    [b"", b"MaX-AGE=10", b"max-age=10,", b"max-age =10", b'max-age="10'],
    ids=["empty", "upper-case key", "trailing comma", "space before =", "open string"],
)
def test_an_empty_or_unparsable_cdn_cache_control_is_ignored(value):
    # RFC 9213 §2.1: such a field MUST be ignored, so Cache-Control applies.
    headers = [(b"cache-control", b"max-age=5"), (b"cdn-cache-control", value)]
    cc = edge_cache_control(headers)
    assert (cc.max_age, cc.targeted) == (5, False)


def test_a_cdn_cache_control_value_of_the_wrong_type_is_not_consumed():
    # RFC 9213 §2.1: a Decimal max-age is not coerced to an integer; it grants nothing.
    assert lifetime(h("Cache-Control: max-age=3600", "CDN-Cache-Control: max-age=3600.0")) == 0


def test_cdn_cache_control_directives_keep_cache_control_semantics():
    cc = edge_cache_control(
        h('CDN-Cache-Control: max-age=60, must-revalidate, no-cache="set-cookie", x;a=1')
    )
    assert cc.max_age == 60 and cc.must_revalidate and cc.forbids_stale
    assert cc.no_cache_fields == frozenset({b"set-cookie"})


# --- Surrogate-Control ------------------------------------------------------------------------


def test_surrogate_control_max_age_overrides_cache_control_no_store():
    headers = h(
        "Cache-Control: no-store", f"Surrogate-Control: max-age=10000;{SURROGATE_TOKEN.decode()}"
    )
    assert isinstance(storability(200, [], headers), Storable)
    assert lifetime(headers) == 10000


def test_surrogate_control_no_store_prevents_storing_despite_fresh_cache_control():
    headers = h("Cache-Control: max-age=10000", f"Date: {DATE.decode()}",
                f"Expires: {LATER.decode()}", "Surrogate-Control: no-store")  # fmt: skip
    assert isinstance(storability(200, [], headers), NotStorable)


def test_surrogate_control_directive_targeted_at_another_surrogate_does_not_apply():
    headers = h("Cache-Control: max-age=5", "Surrogate-Control: max-age=3600;not-for-you")
    cc = edge_cache_control(headers)
    assert (cc.max_age, cc.targeted) == (5, False)


def test_surrogate_control_directive_targeted_at_this_edge_wins_over_an_untargeted_one():
    headers = h("Surrogate-Control: max-age=60, max-age=600;originguard, no-store;other")
    cc = edge_cache_control(headers)
    assert (cc.max_age, cc.no_store) == (600, False)


def test_surrogate_control_is_case_insensitive_and_skips_unknown_directives():
    assert lifetime(h("Surrogate-Control: foobar, MaX-aGe=3600")) == 3600


def test_surrogate_control_max_age_ignores_the_grace_period():
    assert lifetime(h("Surrogate-Control: max-age=300+60")) == 300


def test_surrogate_control_without_a_caching_directive_leaves_cache_control_in_charge():
    cc = edge_cache_control(h("Cache-Control: max-age=5", 'Surrogate-Control: content="ESI/1.0"'))
    assert (cc.max_age, cc.targeted) == (5, False)


def test_cdn_cache_control_comes_before_surrogate_control_on_the_target_list():
    headers = h("Surrogate-Control: max-age=10", "CDN-Cache-Control: max-age=20")
    assert lifetime(headers) == 20


def test_the_edge_announces_the_token_it_answers_to():
    name, value = SURROGATE_CAPABILITY
    assert name == b"surrogate-capability"
    assert value.split(b"=")[0] == SURROGATE_TOKEN


# --- RFC 8941 §4.2.2 Dictionary, as RFC 9213 reads it -----------------------------------------

DICTIONARIES = [
    (b"max-age=600", [(b"max-age", 600)]),
    (b"no-store, max-age=0", [(b"no-store", True), (b"max-age", 0)]),
    (b'no-cache="a, b";p=1', [(b"no-cache", b"a, b")]),
    (b"private=?0", [(b"private", False)]),
    (b"max-age=1, max-age=2", [(b"max-age", 2)]),
    (
        b"x=1.5, y=(1 2), z=:AA==:, t=tok/1",
        [(b"x", 1.5), (b"y", (1, 2)), (b"z", (b":AA==:",)), (b"t", b"tok/1")],
    ),
    (b"max-age=1234567890123456", None),
    (b"max-age=1,,", None),
    (b"Max-Age=1", None),
    (b'a="\\x"', None),
]


@pytest.mark.parametrize(
    ("text", "expected"), DICTIONARIES, ids=[d[0].decode() for d in DICTIONARIES]
)
def test_structured_dictionary_is_parsed_or_rejected_whole(text, expected):
    assert parse_dictionary(text) == expected
