"""Cache-Control, HTTP-date and Age parsing (RFC 9111 §5.2, §4.2.1, §5.1; RFC 9110 §5.6.7)."""

import pytest

from originguard.cache.control import (
    DELTA_MAX,
    age_field,
    format_http_date,
    parse_cache_control,
    parse_delta,
    parse_http_date,
)

# (anchor, header lines, attribute, expected)
CASES = [
    ("§5.2.2.1", [b"max-age=3600"], "max_age", 3600),
    ("§5.2 case-insensitive", [b"Max-Age=60"], "max_age", 60),
    ("§5.2 quoted value accepted", [b'max-age="3600"'], "max_age", 3600),
    ("§1.2.2 leading zeros", [b"max-age=003600"], "max_age", 3600),
    ("§4.2.1 invalid means stale", [b"max-age=abc"], "max_age", 0),
    ("§4.2.1 trailing alpha", [b"max-age=3600a"], "max_age", 0),
    ("§4.2.1 negative", [b"max-age=-1"], "max_age", 0),
    ("§4.2.1 decimal", [b"max-age=3600.5"], "max_age", 0),
    ("§4.2.1 single quotes", [b"max-age='3600'"], "max_age", 0),
    ("grammar: no space before =", [b"max-age =3600"], "max_age", 0),
    ("grammar: no space after =", [b"max-age= 3600"], "max_age", 0),
    ("§1.2.2 overflow caps at 2^31", [b"max-age=99999999999999999999"], "max_age", DELTA_MAX),
    ("§4.2.1 first occurrence, same line", [b"max-age=1800, max-age=1"], "max_age", 1800),
    ("§4.2.1 first occurrence, two lines", [b"max-age=1", b"max-age=1800"], "max_age", 1),
    ("quoted string hides a directive", [b'ext="max-age=100", max-age=1'], "max_age", 1),
    ("quoted string after the directive", [b'max-age=1, ext="max-age=100"'], "max_age", 1),
    ("spaces around commas", [b"  public ,  s-maxage=10 ,"], "s_maxage", 10),
    ("§5.2.2.10 s-maxage", [b"s-maxage=5"], "s_maxage", 5),
    ("§5.2.2.5 no-store", [b"NO-STORE"], "no_store", True),
    ("§5.2.2.4 no-cache", [b"no-cache"], "no_cache", True),
    ("§5.2.2.4 qualified no-cache", [b'no-cache="set-cookie"'], "no_cache", False),
    ("§5.2.2.4 fields", [b'no-cache="Set-Cookie, X-A"'], "no_cache_fields",
     frozenset({b"set-cookie", b"x-a"})),
    ("§5.2.2.7 private", [b"private"], "private", True),
    ("§5.2.2.7 qualified private", [b'private="x-user"'], "private_fields", frozenset({b"x-user"})),
    ("unqualified private wins", [b'private="x-user", private'], "private_fields", frozenset()),
    ("§5.2.2.2 must-revalidate", [b"must-revalidate"], "must_revalidate", True),
    ("§5.2.2.8 proxy-revalidate", [b"proxy-revalidate"], "proxy_revalidate", True),
    ("RFC 8246 immutable", [b"immutable"], "immutable", True),
    ("RFC 5861 §3", [b"max-age=1, stale-while-revalidate=30"], "stale_while_revalidate", 30),
    ("RFC 5861 §4", [b"stale-if-error=600"], "stale_if_error", 600),
    ("§5.2.1.2 max-stale without value", [b"max-stale"], "max_stale", DELTA_MAX),
    ("§5.2.1.2 max-stale value", [b"max-stale=5"], "max_stale", 5),
    ("§5.2.1.3 min-fresh", [b"min-fresh=20"], "min_fresh", 20),
    ("§5.2.1.7 only-if-cached", [b"only-if-cached"], "only_if_cached", True),
    ("unknown extensions ignored", [b"foo, bar=baz"], "max_age", None),
    ("empty header", [b""], "max_age", None),
    ("unterminated quote swallows the rest", [b'=,,="\\", max-age'], "max_age", None),
    ("directive without its value is stale", [b"max-age"], "max_age", 0),
]


@pytest.mark.parametrize(("anchor", "lines", "attr", "expected"), CASES, ids=[c[0] for c in CASES])
def test_cache_control_directive_is_parsed(anchor, lines, attr, expected):
    assert getattr(parse_cache_control(lines), attr) == expected


def test_must_revalidate_s_maxage_and_no_cache_forbid_stale():
    for line in (b"must-revalidate", b"proxy-revalidate", b"s-maxage=5", b"no-cache"):
        assert parse_cache_control([line]).forbids_stale
    assert not parse_cache_control([b"max-age=5, stale-if-error=10"]).forbids_stale


EPOCH_1994 = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT

DATES = [
    ("IMF-fixdate", b"Sun, 06 Nov 1994 08:49:37 GMT", EPOCH_1994),
    ("rfc850-date", b"Sunday, 06-Nov-94 08:49:37 GMT", EPOCH_1994),
    ("asctime-date", b"Sun Nov  6 08:49:37 1994", EPOCH_1994),
    ("wrong case weekday", b"SUN, 06 NOV 1994 08:49:37 GMT", EPOCH_1994),
    ("invalid: 0", b"0", None),
    ("invalid: day 31 of November", b"Mon, 31 Nov 1994 08:49:37 GMT", None),
    ("invalid: hour 25", b"Sun, 06 Nov 1994 25:49:37 GMT", None),
    ("invalid: not GMT", b"Sun, 06 Nov 1994 08:49:37 PST", None),
    ("invalid: year 0000", b"Sat, 01 Jan 0000 00:00:00 GMT", None),
    ("invalid: asctime year 0000", b"Sat Jan  1 00:00:00 0000", None),
    ("invalid: huge year digits", b"Sun, 06 Nov 99999999999999 08:49:37 GMT", None),
    ("invalid: empty", b"", None),
]


@pytest.mark.parametrize(("form", "text", "expected"), DATES, ids=[d[0] for d in DATES])
def test_http_date_parses_all_three_formats_and_rejects_invalid(form, text, expected):
    assert parse_http_date(text) == expected


def test_rfc850_year_more_than_50_years_ahead_means_the_past():
    # RFC 9110 §5.6.7: in 2030 "-81" is 1981, but "-80" (exactly 50 years ahead) is 2080.
    now_2030 = parse_http_date(b"Tue, 01 Jan 2030 00:00:00 GMT")
    parsed = parse_http_date(b"Tuesday, 01-Jan-81 00:00:00 GMT", now=now_2030)
    assert parsed == parse_http_date(b"Thu, 01 Jan 1981 00:00:00 GMT")


def test_formatted_date_round_trips():
    assert format_http_date(EPOCH_1994) == b"Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_http_date(format_http_date(1_700_000_000.0)) == 1_700_000_000.0


AGES = [
    ("absent", [], 0),
    ("numeric", [(b"age", b"15")], 15),
    ("non-numeric is stale", [(b"age", b"abc")], DELTA_MAX),
    ("negative is stale", [(b"age", b"-7200")], DELTA_MAX),
    ("float is stale", [(b"age", b"7200.0")], DELTA_MAX),
    ("list on one line is stale", [(b"age", b"old, 0")], DELTA_MAX),
]


@pytest.mark.parametrize(("case", "headers", "expected"), AGES, ids=[a[0] for a in AGES])
def test_age_header_is_parsed_or_treated_as_stale(case, headers, expected):
    assert age_field(headers) == expected


def test_delta_seconds_is_never_converted_from_unchecked_text():
    assert parse_delta(b"1" * 5000) == DELTA_MAX
    assert parse_delta(b"0" * 5000) == 0
    assert parse_delta(b"+5") is None
