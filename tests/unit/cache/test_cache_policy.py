"""Eligibility, storability and freshness: RFC 9111 with the edge defaults of spec §8."""

import pytest

from originguard.cache.control import format_http_date, parse_cache_control
from originguard.cache.policy import (
    CacheLevel,
    CacheRule,
    CacheStatus,
    EdgeTTLMode,
    NotStorable,
    Reason,
    StaleUse,
    StatusTTL,
    Storable,
    age_header,
    cache_status_header,
    current_age,
    freshness_lifetime,
    is_eligible,
    is_fresh,
    may_serve_stale,
    storability,
    storable_headers,
)

NOW = 1_700_000_000.0


def h(*lines: str) -> list[tuple[bytes, bytes]]:
    """Header list from "Name: value" lines."""
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower().encode(), value.strip().encode()))
    return out


def date(offset: float) -> str:
    return format_http_date(NOW + offset).decode()


# --- eligibility (spec §8.1, §8.6) -----------------------------------------------------------

ELIGIBILITY = [
    ("§8.1 static extension", b"GET", b"/a/logo.PNG", None, True, Reason.DEFAULT_EXTENSION),
    ("§8.1 HEAD like GET", b"HEAD", b"/app.js", None, True, Reason.DEFAULT_EXTENSION),
    ("§8.1 robots.txt", b"GET", b"/robots.txt", None, True, Reason.DEFAULT_EXTENSION),
    ("§8.1 HTML not by default", b"GET", b"/index.html", None, False, Reason.EXTENSION),
    ("§8.1 JSON not by default", b"GET", b"/api/x.json", None, False, Reason.EXTENSION),
    ("§8.1 no extension", b"GET", b"/about", None, False, Reason.EXTENSION),
    ("§8.1 dot directory is not an extension", b"GET", b"/v1.css/x", None, False, Reason.EXTENSION),
    ("§8.1 hidden file", b"GET", b"/.css", None, False, Reason.EXTENSION),
    ("§8.1 POST never", b"POST", b"/logo.png", CacheRule(eligible=True), False, Reason.METHOD),
    ("§8.6 rule eligible", b"GET", b"/index.html", CacheRule(eligible=True), True,
     Reason.RULE_ELIGIBLE),
    ("§8.6 rule bypass", b"GET", b"/logo.png", CacheRule(eligible=False), False,
     Reason.RULE_BYPASS),
]


@pytest.mark.parametrize(
    ("anchor", "method", "path", "rule", "eligible", "reason"), ELIGIBILITY,
    ids=[e[0] for e in ELIGIBILITY],
)
def test_request_eligibility_follows_extension_list_and_rules(
    anchor, method, path, rule, eligible, reason
):
    decision = is_eligible(method, path, rule)
    assert (decision.eligible, decision.reason) == (eligible, reason)
    assert decision.status == (None if eligible else CacheStatus.DYNAMIC)


def test_basic_cache_level_refuses_a_query_string():
    rule = CacheRule(level=CacheLevel.BASIC)
    assert is_eligible(b"GET", b"/a.css", rule, query=b"v=1").reason is Reason.QUERY_STRING
    assert is_eligible(b"GET", b"/a.css", rule).eligible


def test_get_with_a_body_is_never_answered_from_cache():
    assert is_eligible(b"GET", b"/a.css", has_body=True).reason is Reason.REQUEST_BODY


# --- storability (RFC 9111 §3, spec §8.3, §8.4) ----------------------------------------------

EXPLICIT = CacheRule(edge_ttl_mode=EdgeTTLMode.OVERRIDE_ORIGIN, edge_ttl=600)
ELIGIBLE = CacheRule(eligible=True)

STORABILITY = [
    # (anchor, status, request headers, response headers, rule, expected reason, status shown)
    ("§8.2 200 with nothing: default TTL", 200, [], [], None, Reason.STORED, None),
    ("§8.2 302 with nothing", 302, [], [], None, Reason.STORED, None),
    ("§8.2 404 with nothing", 404, [], [], None, Reason.STORED, None),
    ("§8.2 500 with nothing: not cached", 500, [], [], None, Reason.STATUS, "BYPASS"),
    ("§8.2 403 with nothing: not cached", 403, [], [], None, Reason.STATUS, "BYPASS"),
    ("RFC 9111 §3 explicit freshness on 403", 403, [], ["Cache-Control: max-age=60"], None,
     Reason.STORED, None),
    ("§5.2.2.5 no-store", 200, [], ["Cache-Control: max-age=60, no-store"], None,
     Reason.NO_STORE, "BYPASS"),
    ("§5.2.1.5 request no-store", 200, ["Cache-Control: no-store"], [], None, Reason.NO_STORE,
     "BYPASS"),
    ("§5.2.2.7 private", 200, [], ["Cache-Control: private, max-age=60"], None, Reason.PRIVATE,
     "BYPASS"),
    ("§3.5 Authorization alone", 200, ["Authorization: Basic x"], ["Cache-Control: max-age=60"],
     None, Reason.AUTHORIZATION, "BYPASS"),
    ("§3.5 Authorization + public", 200, ["Authorization: Basic x"],
     ["Cache-Control: public, max-age=60"], None, Reason.STORED, None),
    ("§3.5 Authorization + s-maxage", 200, ["Authorization: Basic x"],
     ["Cache-Control: s-maxage=60"], None, Reason.STORED, None),
    ("§3.5 Authorization + must-revalidate", 200, ["Authorization: Basic x"],
     ["Cache-Control: must-revalidate, max-age=60"], None, Reason.STORED, None),
    ("§4.1 Vary: *", 200, [], ["Cache-Control: max-age=60", "Vary: Accept, *"], None,
     Reason.VARY_STAR, "BYPASS"),
    ("§8.3 Set-Cookie, default", 200, [], ["Set-Cookie: a=1", "Cache-Control: max-age=60"], None,
     Reason.SET_COOKIE, "BYPASS"),
    ("§8.3 Set-Cookie, eligible rule without TTL: MISS", 200, [], ["Set-Cookie: a=1"], ELIGIBLE,
     Reason.SET_COOKIE, "MISS"),
    ("§8.3 Set-Cookie, explicit TTL: stored stripped", 200, [], ["Set-Cookie: a=1"], EXPLICIT,
     Reason.STORED, None),
    ("§8.6 status TTL -1", 200, [], ["Cache-Control: max-age=60"],
     CacheRule(status_ttls=(StatusTTL(200, 299, -1),)), Reason.RULE_NO_STORE, "BYPASS"),
    ("§8.6 bypass_by_default, origin silent", 200, [], [],
     CacheRule(edge_ttl_mode=EdgeTTLMode.BYPASS_BY_DEFAULT), Reason.NO_FRESHNESS, "BYPASS"),
    ("§8.6 bypass_by_default, origin max-age", 200, [], ["Cache-Control: max-age=5"],
     CacheRule(edge_ttl_mode=EdgeTTLMode.BYPASS_BY_DEFAULT), Reason.STORED, None),
    ("§8.3 no-cache without validator", 200, [], ["Cache-Control: no-cache"], None,
     Reason.ZERO_TTL, "BYPASS"),
    ("§8.3 max-age=0 with ETag: stored to revalidate", 200, [],
     ["Cache-Control: max-age=0", 'ETag: "v1"'], None, Reason.STORED, None),
    ("§8.1 larger than the object limit", 200, [], ["Content-Length: 2000"],
     CacheRule(max_object_size=1000), Reason.TOO_LARGE, "BYPASS"),
    ("206 partial content is not stored", 206, [], ["Cache-Control: max-age=60"], None,
     Reason.PARTIAL, "BYPASS"),
    ("304 is not a storable response", 304, [], [], None, Reason.STATUS, "BYPASS"),
    ("RFC 9111 §3 unknown status with explicit freshness is stored", 599, [],
     ["Cache-Control: max-age=60"], None, Reason.STORED, None),
    ("RFC 9111 §3 unknown status without freshness", 599, [], [], None, Reason.STATUS, "BYPASS"),
    ("RFC 9111 §5.2.2.3 must-understand with an unknown status", 599, [],
     ["Cache-Control: max-age=60, must-understand"], None, Reason.STATUS, "BYPASS"),
    ("RFC 9111 §5.2.2.3 must-understand with a known status keeps no-store", 200, [],
     ["Cache-Control: max-age=60, must-understand, no-store"], None, Reason.NO_STORE, "BYPASS"),
]


@pytest.mark.parametrize(
    ("anchor", "status", "req", "resp", "rule", "reason", "shown"), STORABILITY,
    ids=[s[0] for s in STORABILITY],
)
def test_response_storability(anchor, status, req, resp, rule, reason, shown):
    decision = storability(status, h(*req), h(*resp), rule, response_time=NOW)
    assert decision.reason is reason
    if shown is None:
        assert isinstance(decision, Storable)
    else:
        assert isinstance(decision, NotStorable)
        assert decision.status is CacheStatus(shown)


def test_set_cookie_is_stripped_from_what_is_stored_under_an_explicit_ttl():
    resp = h("Set-Cookie: a=1", "Content-Type: text/css", "Connection: close, X-Hop", "X-Hop: 1")
    decision = storability(200, [], resp, EXPLICIT, response_time=NOW)
    assert isinstance(decision, Storable)
    assert storable_headers(resp, decision) == h("Content-Type: text/css")


def test_private_field_names_are_not_stored():
    resp = h('Cache-Control: private="x-user", max-age=60', "X-User: bob", "X-Other: 1")
    decision = storability(200, [], resp, response_time=NOW)
    assert isinstance(decision, Storable)
    assert [n for n, _ in storable_headers(resp, decision)] == [b"cache-control", b"x-other"]


def test_deception_armor_refuses_html_under_a_static_extension():
    rule = CacheRule(cache_deception_armor=True)
    html = h("Content-Type: text/html; charset=utf-8")
    css = h("Content-Type: text/css")
    assert storability(200, [], html, rule, path=b"/account.php/x.css").reason is (
        Reason.DECEPTION_ARMOR
    )
    assert isinstance(storability(200, [], css, rule, path=b"/site.css"), Storable)
    assert isinstance(storability(200, [], h("Content-Type: image/png"), rule, path=b"/a.png"),
                      Storable)


# --- freshness lifetime (RFC 9111 §4.2.1, §4.2.2, spec §8.2) ---------------------------------

FRESHNESS = [
    ("§4.2.1 s-maxage beats max-age", 200, ["Cache-Control: max-age=10, s-maxage=20"], None, 20),
    ("§4.2.1 max-age beats Expires", 200,
     ["Cache-Control: max-age=10", f"Expires: {date(1000)}", f"Date: {date(0)}"], None, 10),
    ("§4.2.1 Expires minus Date", 200, [f"Expires: {date(300)}", f"Date: {date(0)}"], None, 300),
    ("§4.2.1 Expires without Date uses receipt", 200, [f"Expires: {date(300)}"], None, 300),
    ("§5.3 Expires older than Date", 200, [f"Expires: {date(-100)}", f"Date: {date(0)}"], None, 0),
    ("§5.3 invalid Expires is expired", 200, ["Expires: 0"], None, 0),
    ("§8.1 no freshness headers: the default TTL, not the heuristic", 200,
     [f"Date: {date(0)}", f"Last-Modified: {date(-10000)}"], None, 7200),
    ("§4.2.2 heuristic 10% of Date - Last-Modified (default TTLs off)", 200,
     [f"Date: {date(0)}", f"Last-Modified: {date(-10000)}"], CacheRule(default_ttls=False), 1000),
    ("§4.2.2 heuristic is capped (default TTLs off)", 200,
     [f"Date: {date(0)}", f"Last-Modified: {date(-10**8)}"], CacheRule(default_ttls=False),
     86400),
    ("§4.2.2 heuristic for a status without a default TTL", 203,
     [f"Date: {date(0)}", f"Last-Modified: {date(-10000)}"], None, 1000),
    ("§4.2.2 heuristic not for 302: default TTL", 302,
     [f"Date: {date(0)}", f"Last-Modified: {date(-10000)}"], None, 1200),
    ("§8.2 200 default 120 min", 200, [], None, 7200),
    ("§8.2 206 default 120 min", 206, [], None, 7200),
    ("§8.2 301 default 120 min", 301, [], None, 7200),
    ("§8.2 302 default 20 min", 302, [], None, 1200),
    ("§8.2 303 default 20 min", 303, [], None, 1200),
    ("§8.2 404 default 3 min", 404, [], None, 180),
    ("§8.2 410 default 3 min", 410, [], None, 180),
    ("§8.2 500 not cached", 500, [], None, 0),
    ("§5.2.2.4 no-cache", 200, ["Cache-Control: no-cache, max-age=60"], None, 0),
    ("§8.3 no-cache=field present", 200, ['Cache-Control: no-cache="x-a", max-age=60', "X-A: 1"],
     None, 0),
    ("§8.3 no-cache=field absent", 200, ['Cache-Control: no-cache="x-a", max-age=60'], None, 60),
    ("§8.6 override ignores origin", 200, ["Cache-Control: max-age=10"], EXPLICIT, 600),
    ("§8.6 respect origin with a rule default", 200, [],
     CacheRule(edge_ttl=30), 30),
    ("§8.6 respect origin keeps origin max-age", 200, ["Cache-Control: max-age=10"],
     CacheRule(edge_ttl=30), 10),
    ("§8.6 bypass_by_default, origin silent", 200, [],
     CacheRule(edge_ttl_mode=EdgeTTLMode.BYPASS_BY_DEFAULT), 0),
    ("§8.6 status-code TTL range", 404, ["Cache-Control: max-age=10"],
     CacheRule(status_ttls=(StatusTTL(400, 499, 45),)), 45),
    ("§8.6 304 inherits the 200 TTL", 304, [], CacheRule(status_ttls=(StatusTTL(200, 200, 99),)),
     99),
]


@pytest.mark.parametrize(
    ("anchor", "status", "resp", "rule", "expected"), FRESHNESS, ids=[f[0] for f in FRESHNESS]
)
def test_freshness_lifetime_precedence(anchor, status, resp, rule, expected):
    assert freshness_lifetime(status, h(*resp), rule, response_time=NOW) == expected


# --- age (RFC 9111 §4.2.3) -------------------------------------------------------------------

def test_current_age_adds_age_header_delay_and_residence():
    resp = h(f"Date: {date(-2)}", "Age: 10")
    # corrected_age_value = 10 + (NOW - (NOW-1)) = 11 > apparent_age 2; resident 5.
    assert current_age(resp, NOW - 1, NOW, NOW + 5) == 16


def test_current_age_uses_apparent_age_when_larger():
    resp = h(f"Date: {date(-30)}")
    assert current_age(resp, NOW, NOW, NOW + 5) == 35


def test_age_greater_than_max_age_is_not_fresh():
    resp = h(f"Date: {date(0)}", "Cache-Control: max-age=10", "Age: 15")
    lifetime = freshness_lifetime(200, resp, response_time=NOW)
    assert not is_fresh(lifetime, current_age(resp, NOW, NOW, NOW))


def test_unusable_age_makes_the_response_stale():
    resp = h(f"Date: {date(0)}", "Cache-Control: max-age=3600", "Age: abc")
    assert not is_fresh(3600, current_age(resp, NOW, NOW, NOW))


REQUEST_FRESHNESS = [
    ("§5.2.1.1 request max-age younger", b"max-age=5", 100, 10, False),
    ("§5.2.1.1 request max-age satisfied", b"max-age=50", 100, 10, True),
    ("§5.2.1.3 min-fresh not met", b"min-fresh=95", 100, 10, False),
    ("§5.2.1.4 request no-cache", b"no-cache", 100, 10, False),
    ("no request directives", b"", 100, 10, True),
]


@pytest.mark.parametrize(
    ("anchor", "cc", "lifetime", "age", "fresh"), REQUEST_FRESHNESS,
    ids=[r[0] for r in REQUEST_FRESHNESS],
)
def test_request_directives_narrow_freshness(anchor, cc, lifetime, age, fresh):
    assert is_fresh(lifetime, age, parse_cache_control([cc])) is fresh


# --- serving stale (RFC 5861, RFC 9111 §4.2.4, spec §8.3, §8.8) ------------------------------

ALWAYS_ONLINE = CacheRule(always_online=True)
NO_SWR = CacheRule(serve_stale_while_updating=False)

STALE = [
    ("RFC 5861 §3 within SWR window", b"max-age=10, stale-while-revalidate=30", 35,
     StaleUse.WHILE_REVALIDATE, None, True),
    ("RFC 5861 §3 past SWR window", b"max-age=10, stale-while-revalidate=30", 41,
     StaleUse.WHILE_REVALIDATE, None, False),
    ("§8.3 SWR disabled by must-revalidate", b"max-age=10, stale-while-revalidate=30, "
     b"must-revalidate", 15, StaleUse.WHILE_REVALIDATE, None, False),
    ("§8.3 SWR disabled by s-maxage", b"s-maxage=10, stale-while-revalidate=30", 15,
     StaleUse.WHILE_REVALIDATE, None, False),
    ("§8.3 SWR disabled by proxy-revalidate", b"max-age=10, stale-while-revalidate=30, "
     b"proxy-revalidate", 15, StaleUse.WHILE_REVALIDATE, None, False),
    ("§8.6 serve stale while updating off", b"max-age=10, stale-while-revalidate=30", 15,
     StaleUse.WHILE_REVALIDATE, NO_SWR, False),
    ("RFC 5861 §4 within SIE window", b"max-age=10, stale-if-error=60", 50, StaleUse.IF_ERROR,
     None, True),
    ("RFC 5861 §4 past SIE window", b"max-age=10, stale-if-error=60", 71, StaleUse.IF_ERROR,
     None, False),
    ("§8.3 stale-if-error=0 disables", b"max-age=10, stale-if-error=0", 11, StaleUse.IF_ERROR,
     None, False),
    ("no directive: no stale", b"max-age=10", 11, StaleUse.IF_ERROR, None, False),
    ("§8.8 Always Online serves any stale copy", b"max-age=10", 10**6, StaleUse.IF_ERROR,
     ALWAYS_ONLINE, True),
    ("§8.8 Always Online disables SWR", b"max-age=10, stale-while-revalidate=30", 15,
     StaleUse.WHILE_REVALIDATE, ALWAYS_ONLINE, False),
    ("§4.2.4 must-revalidate beats Always Online", b"max-age=10, must-revalidate", 15,
     StaleUse.IF_ERROR, ALWAYS_ONLINE, False),
]


@pytest.mark.parametrize(
    ("anchor", "cc", "age", "use", "rule", "allowed"), STALE, ids=[s[0] for s in STALE]
)
def test_may_serve_stale(anchor, cc, age, use, rule, allowed):
    assert may_serve_stale(parse_cache_control([cc]), 10, age, use, rule) is allowed


def test_request_max_stale_allows_stale_on_error():
    resp_cc = parse_cache_control([b"max-age=10"])
    req_cc = parse_cache_control([b"max-stale=100"])
    assert may_serve_stale(resp_cc, 10, 50, StaleUse.IF_ERROR, request_cc=req_cc)


# --- Cache-Status (RFC 9211) -----------------------------------------------------------------

STATUS_HEADERS = [
    (CacheStatus.HIT, {"ttl": 120}, b"originguard; hit; ttl=120"),
    (CacheStatus.MISS, {"stored": True}, b"originguard; fwd=uri-miss; stored"),
    (CacheStatus.MISS, {"vary_miss": True, "collapsed": True},
     b"originguard; fwd=vary-miss; collapsed"),
    (CacheStatus.EXPIRED, {"fwd_status": 200, "stored": True},
     b"originguard; fwd=stale; fwd-status=200; stored"),
    (CacheStatus.REVALIDATED, {"ttl": 60}, b"originguard; fwd=stale; fwd-status=304; ttl=60"),
    (CacheStatus.UPDATING, {"ttl": -5}, b"originguard; hit; ttl=-5; detail=updating"),
    (CacheStatus.STALE, {"ttl": -500}, b"originguard; hit; ttl=-500; detail=stale"),
    (CacheStatus.BYPASS, {"detail": "set-cookie"}, b"originguard; fwd=uri-miss; detail=set-cookie"),
    (CacheStatus.DYNAMIC, {}, b"originguard; fwd=bypass"),
    (CacheStatus.NONE, {}, b"originguard; detail=none"),
    (CacheStatus.BYPASS, {"detail": 'bad "token"'},
     b"originguard; fwd=uri-miss; detail=bad--token-"),
]


@pytest.mark.parametrize(("status", "params", "expected"), STATUS_HEADERS)
def test_cache_status_header_follows_rfc_9211(status, params, expected):
    assert cache_status_header(status, **params) == expected


def test_og_cache_status_value_is_the_spec_name():
    assert CacheStatus.REVALIDATED.header_value == b"REVALIDATED"


def test_age_header_is_whole_seconds():
    assert age_header(12.9) == b"12"
    assert age_header(-3) == b"0"
