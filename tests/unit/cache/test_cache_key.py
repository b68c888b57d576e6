"""Primary cache keys (spec §8.5)."""

import pytest

from originguard.cache.key import (
    DEFAULT_KEY_RULE,
    CacheKeyRule,
    QueryMode,
    device_type,
    make_key,
    normalise_query,
)


def key(path=b"/a", query=b"", headers=(), rule=DEFAULT_KEY_RULE, host=b"example.com"):
    return make_key(b"https", host, path, query, list(headers), rule)


def test_host_is_case_insensitive_and_path_case_sensitive():
    assert key(host=b"EXAMPLE.com") == key(host=b"example.com")
    assert key(path=b"/A") != key(path=b"/a")


def test_two_hosts_never_collide_even_with_crafted_components():
    assert key(host=b"a.com", path=b"/x") != key(host=b"a.co", path=b"m/x")
    assert key(host=b"a\x00b", path=b"/") != key(host=b"a", path=b"b\x00/")


def test_scheme_to_origin_is_part_of_the_key():
    assert make_key(b"http", b"h", b"/", b"", [], CacheKeyRule()) != make_key(
        b"https", b"h", b"/", b"", [], CacheKeyRule()
    )


QUERIES = [
    ("all, order kept", CacheKeyRule(), b"b=2&a=1", b"b=2&a=1"),
    ("sorted", CacheKeyRule(sort_query=True), b"b=2&a=1&a=0", b"a=0&a=1&b=2"),
    ("none", CacheKeyRule(query=QueryMode.NONE), b"b=2&a=1", b""),
    ("include", CacheKeyRule(query=QueryMode.INCLUDE, query_params=frozenset({b"a"})),
     b"b=2&a=1", b"a=1"),
    ("exclude", CacheKeyRule(query=QueryMode.EXCLUDE, query_params=frozenset({b"utm"})),
     b"utm=x&a=1", b"a=1"),
    ("empty members dropped", CacheKeyRule(), b"&a=1&&", b"a=1"),
]


@pytest.mark.parametrize(
    ("case", "rule", "query", "expected"), QUERIES, ids=[q[0] for q in QUERIES]
)
def test_query_string_rules(case, rule, query, expected):
    assert normalise_query(query, rule) == expected


def test_default_key_includes_origin_and_method_override_headers():
    assert key(headers=[(b"origin", b"https://a")]) != key(headers=[(b"origin", b"https://b")])
    assert key(headers=[(b"x-http-method-override", b"DELETE")]) != key()
    no_origin = CacheKeyRule(include_origin=False)
    assert key(headers=[(b"origin", b"https://a")], rule=no_origin) == key(rule=no_origin)


def test_x_forwarded_scheme_counts_only_when_not_http_or_https():
    assert key(headers=[(b"x-forwarded-scheme", b"https")]) == key()
    assert key(headers=[(b"x-forwarded-scheme", b"gopher")]) != key()


def test_unchosen_headers_and_cookies_do_not_split_the_cache():
    assert key(headers=[(b"user-agent", b"x"), (b"cookie", b"s=1")]) == key()


def test_chosen_headers_and_cookies_split_the_cache():
    rule = CacheKeyRule(headers=(b"x-tenant",), cookies=(b"lang",), cookies_present=(b"s",))
    base = key(rule=rule)
    assert key(headers=[(b"x-tenant", b"a")], rule=rule) != base
    assert key(headers=[(b"cookie", b"lang=fr; other=1")], rule=rule) != key(
        headers=[(b"cookie", b"lang=de")], rule=rule
    )
    assert key(headers=[(b"cookie", b"s=1")], rule=rule) == key(
        headers=[(b"cookie", b"s=2")], rule=rule
    ) != base


def test_host_can_be_left_out_by_explicit_choice():
    rule = CacheKeyRule(include_host=False)
    assert key(host=b"a.com", rule=rule) == key(host=b"b.com", rule=rule)


def test_device_type_is_off_by_default_and_splits_when_on():
    iphone = [(b"user-agent", b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile")]
    assert key(headers=iphone) == key()
    rule = CacheKeyRule(device_type=True)
    assert key(headers=iphone, rule=rule) != key(rule=rule)
    assert device_type(b"Mozilla/5.0 (iPad; CPU OS 17_0)") == b"tablet"
    assert device_type(b"Mozilla/5.0 (Linux; Android 14) Mobile") == b"mobile"
    assert device_type(None) == b"desktop"


@pytest.mark.parametrize("name", [b"accept-encoding", b"cookie", b"if-none-match", b"cf-ray",
                                  b"Host", b"origin", b"range"])
def test_restricted_headers_cannot_be_key_components(name):
    with pytest.raises(ValueError):
        CacheKeyRule(headers=(name,))


def test_cf_cookies_cannot_be_key_components():
    with pytest.raises(ValueError):
        CacheKeyRule(cookies=(b"__cf_bm",))
