"""Evaluation: every field, operator and function against one request view."""

from __future__ import annotations

import pytest
from rules_requests import make_view

from originguard.protect.rules import RequestView, compile_expression
from originguard.protect.rules.program import compile_rule_set

VIEW = make_view(
    path="/Admin/Login.PHP",
    query="user=bob&id=7&id=8&q=red+apples&flag",
    headers=[
        (b"host", b"www.example.com"),
        (b"user-agent", b"Mozilla/5.0 (X11) sqlmap/1.7"),
        (b"referer", b"https://google.com/"),
        (b"x-forwarded-for", b"198.51.100.1"),
        (b"x-forwarded-for", b"198.51.100.2"),
        (b"cookie", b"session=abc123; theme=dark"),
        (b"cookie", b"session=second; caf%C3%A9=1"),
        (b"accept", b"text/html"),
        (b"x-tag", b"Alpha"),
        (b"x-tag", b"beta"),
    ],
    client_ip="192.0.2.77",
)


def check(expression: str, view: RequestView = VIEW, **lists: list[str | int]) -> bool:
    return compile_expression(expression, lists).evaluate(view)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('http.host eq "www.example.com"', True),
        ('http.request.method eq "GET"', True),
        ('http.request.uri eq "/Admin/Login.PHP?user=bob&id=7&id=8&q=red+apples&flag"', True),
        ('http.request.uri.path eq "/Admin/Login.PHP"', True),
        ('http.request.uri.path.extension eq "php"', True),
        ('http.request.uri.query eq "user=bob&id=7&id=8&q=red+apples&flag"', True),
        ('any(http.request.uri.args["id"][*] eq "8")', True),
        ('http.request.uri.args["q"][0] eq "red+apples"', True),  # no decoding (Cloudflare)
        ('http.request.uri.args["flag"][0] eq ""', True),
        ('len(http.request.uri.args["id"]) eq 2', True),
        ('any(http.request.uri.args.names[*] eq "user")', True),
        ('any(http.request.uri.args.values[*] eq "bob")', True),
        ('any(http.request.headers["x-tag"][*] eq "beta")', True),
        ('http.request.headers["accept"][0] eq "text/html"', True),
        ('any(http.request.headers.names[*] eq "referer")', True),
        ('http.request.cookies["session"][1] eq "second"', True),  # equal names merge
        ('http.request.cookies["café"][0] eq "1"', False),  # names decode as latin-1 bytes
        ('http.request.cookies["caf\\xc3\\xa9"][0] eq "1"', True),
        ('http.cookie eq "session=abc123; theme=dark; session=second; caf%C3%A9=1"', True),
        ('http.user_agent contains "sqlmap"', True),
        ('http.referer eq "https://google.com/"', True),
        ('http.x_forwarded_for eq "198.51.100.1, 198.51.100.2"', True),
        ('http.request.version eq "HTTP/1.1"', True),
        ("ip.src eq 192.0.2.77", True),
        ('ip.src.country eq "GB"', True),
        ("ip.src.asnum eq 64500", True),
        ("ssl", True),
        ("not ssl", False),
    ],
)
def test_each_field_reads_the_request(expression: str, expected: bool) -> None:
    assert check(expression) is expected


def test_full_uri_joins_scheme_host_and_uri() -> None:
    assert check('http.request.full_uri eq "https://www.example.com/Admin/Login.PHP?'
                 'user=bob&id=7&id=8&q=red+apples&flag"')  # fmt: skip


def test_missing_country_and_asn_read_as_empty_and_zero() -> None:
    view = make_view(country=None, asnum=None)
    assert check('ip.src.country eq ""', view) and check("ip.src.asnum eq 0", view)


def test_a_missing_header_is_an_empty_array_and_its_joined_field_empty() -> None:
    view = make_view(headers=[])
    assert check('len(http.request.headers["x-nope"]) eq 0', view)
    assert check('http.user_agent eq ""', view)
    assert not check('any(http.request.headers["x-nope"][*] eq "")', view)
    assert check('all(http.request.headers["x-nope"][*] eq "")', view)


def test_an_index_past_the_end_never_matches_even_with_ne() -> None:
    assert not check('http.request.headers["x-tag"][9] ne "x"')
    assert not check('http.request.headers["x-tag"][9] eq "x"')
    assert check('not http.request.headers["x-tag"][9] eq "x"')


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('starts_with(http.request.headers["x-nope"][0], "yes")', False),
        ('not starts_with(http.request.headers["x-nope"][0], "yes")', True),
        ('starts_with(http.request.headers["x-nope"][0], "yes") xor not ssl', False),  # https
        ('starts_with(http.request.headers["x-nope"][0], "yes") xor ssl', True),
        ('starts_with(http.request.headers["x-nope"][0], "y") or not ssl', False),
        ('ssl and ends_with(http.request.headers["x-nope"][0], "y")', False),
    ],
)
def test_a_function_of_a_missing_value_is_strictly_false(expression: str, expected: bool) -> None:
    result = check(expression)
    assert result is expected  # a bool, not None: compiled callers declare bool
    assert compile_rule_set([expression]).first_match(VIEW, 0) == (0 if expected else -1)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('http.host eq "www.example.com"', True),
        ('http.host == "WWW.EXAMPLE.COM"', False),  # case-sensitive
        ('http.host ne "a"', True),
        ('http.host != "www.example.com"', False),
        ('http.request.method lt "POST"', True),
        ('http.request.method le "GET"', True),
        ('http.request.method gt "DELETE"', True),
        ('http.request.method >= "HEAD"', False),
        ("ip.src.asnum < 64501", True),
        ("ip.src.asnum <= 64499", False),
        ("ip.src.asnum > 1", True),
        ("ip.src.asnum ge 64500", True),
        ('http.request.uri.path contains "/Admin/"', True),
        ('http.request.uri.path contains "/admin/"', False),
        ('http.request.uri.path matches "^/admin"', False),
        ('http.request.uri.path matches "(?i)^/admin"', True),
        (r'http.request.uri.path ~ r"\.PHP$"', True),
        ('http.request.method in {"GET" "HEAD"}', True),
        ('http.request.method in {"POST"}', False),
        ("ip.src.asnum in {1 2 64000..65000}", True),
        ("ip.src.asnum in {1..10}", False),
        ("ip.src in {192.0.2.0/24}", True),
        ("ip.src in {10.0.0.0/8 2001:db8::/32}", False),
        ("ip.src in {192.0.2.70..192.0.2.80}", True),
        ("ip.src in {192.0.2.77}", True),
        ("ip.src ne 192.0.2.78", True),
        ("ip.src eq ::1", False),
    ],
)
def test_every_comparison_operator(expression: str, expected: bool) -> None:
    assert check(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("ssl and ssl", True), ("ssl && not ssl", False),
        ("not ssl or ssl", True), ("not ssl || not ssl", False),
        ("ssl xor ssl", False), ("ssl ^^ not ssl", True),
        ("!ssl", False), ("not ssl and not ssl or ssl", True),
        ("ssl or ssl and not ssl", True),  # and binds tighter: ssl or (ssl and not ssl)
        ("(ssl or ssl) and not ssl", False),
        ("ssl xor ssl or ssl", True),  # (ssl xor ssl) or ssl
        ("ssl xor (ssl or ssl)", False),
    ],
)  # fmt: skip
def test_logical_operators_evaluate_with_their_precedence(expression: str, expected: bool) -> None:
    assert check(expression) is expected


@pytest.mark.parametrize(
    ("list_items", "expression", "expected"),
    [
        (["192.0.2.0/24", "2001:db8::/32"], "ip.src in $office", True),
        (["10.0.0.0/8", "192.0.2.78"], "ip.src in $office", False),
        (["GET", "HEAD"], "http.request.method in $office", True),
        ([64500, 13335], "ip.src.asnum in $office", True),
        (["64501"], "ip.src.asnum in $office", False),
    ],
)
def test_named_lists_match_by_the_field_type(
    list_items: list[str | int], expression: str, expected: bool
) -> None:
    assert check(expression, office=list_items) is expected


def test_ipv6_client_matches_its_cidr_and_not_an_ipv4_one() -> None:
    view = make_view(client_ip="2001:db8::42")
    assert check("ip.src in {2001:db8::/48}", view)
    assert not check("ip.src in {0.0.0.0/0}", view)
    assert check("ip.src in {::/0}", view)


@pytest.mark.parametrize(
    ("pattern", "value", "wildcard", "strict"),
    [
        ("*.example.com", "www.example.com", True, True),
        ("*.example.com", "example.com", False, False),
        ("*.EXAMPLE.com", "www.example.com", True, False),
        ("/api/*/admin", "/api/v1/admin", True, True),
        ("/api/*/admin", "/api/v1/admin/x", False, False),  # whole value
        ("/api/*", "/api/", True, True),  # * may be empty
        ("*", "", True, True),
        ("a*b*c", "abc", True, True),
        ("a*b*c", "aXbYbZc", True, True),
        ("a*b*c", "acb", False, False),
        ("ab*ba", "aba", False, False),  # pieces may not overlap
        (r"a\\*b", "a*b", True, True),  # \* is a literal star
        (r"a\\*b", "axb", False, False),
        (r"a\\\\b", "a\\b", True, True),  # \\ is a literal backslash
    ],
)
def test_wildcard_matches_whole_values_and_strict_is_case_sensitive(
    pattern: str, value: str, wildcard: bool, strict: bool
) -> None:
    view = make_view(path=value)
    assert check(f'http.request.uri.path wildcard "{pattern}"', view) is wildcard
    assert check(f'http.request.uri.path strict wildcard "{pattern}"', view) is strict


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('lower(http.request.uri.path) eq "/admin/login.php"', True),
        ('upper(http.request.method) eq "GET"', True),
        ("len(http.request.uri.path) eq 16", True),
        ('starts_with(http.request.uri.path, "/Admin")', True),
        ('ends_with(http.request.uri.path, ".php")', False),
        ('ends_with(lower(http.request.uri.path), ".php")', True),
        ('concat(http.host, http.request.uri.path) eq "www.example.com/Admin/Login.PHP"', True),
        ('len(concat(http.request.headers["x-tag"], http.request.cookies["theme"])) eq 3', True),
        ('substring(http.request.uri.path, 1, 6) eq "Admin"', True),
        ('substring(http.request.uri.path, -3) eq "PHP"', True),
        ('to_string(ip.src.asnum) eq "64500"', True),
        ('to_string(ip.src) eq "192.0.2.77"', True),
        ('to_string(ssl) eq "true"', True),
        ('url_decode("%2Fa%20b+c") eq "/a b c"', True),
        ('url_decode("%252F") eq "%2F"', True),
        ('url_decode("%252F", "r") eq "/"', True),
        ('url_decode("%' + "25" * 7 + '41", "r") eq "A"', True),  # 8 passes: the limit
        ('url_decode("%' + "25" * 20 + '41", "r") eq "%' + "25" * 12 + '41"', True),
        ('url_decode("%u0041", "u") eq "A"', True),
        ('any(url_decode(http.request.uri.args["q"][*]) eq "red apples")', True),
        (
            'regex_replace(http.request.uri.path, "^/Admin/(.*)$", "/x/${1}") eq "/x/Login.PHP"',
            True,
        ),
        ('regex_replace("/a/a/a", "a", "b") eq "/b/a/a"', True),  # first match only
        ('regex_replace("abc", "z", "y") eq "abc"', True),
        ('regex_replace("price", "i", "$$") eq "pr$ce"', True),
        ('to_string(cidr(ip.src, 24, 64)) eq "192.0.2.0"', True),
        ('any(lower(http.request.headers["x-tag"][*]) eq "alpha")', True),
        ('all(http.request.headers["x-tag"][*] contains "a")', True),
        ('all(http.request.headers["x-tag"][*] eq "beta")', False),
        ('any(starts_with(http.request.headers["x-tag"][*], "be"))', True),
        ('any(len(http.request.headers["x-tag"][*]) eq 5)', True),
    ],
)
def test_every_function(expression: str, expected: bool) -> None:
    assert check(expression) is expected


def test_catastrophic_regex_completes_on_a_long_input() -> None:
    # (a+)+$ backtracks exponentially in engines like Python's re; RE2 is linear time.
    view = make_view(path="/" + "a" * 100_000 + "!")
    assert not check(r'http.request.uri.path matches "(a+)+$"', view)


def test_response_fields_are_read_when_allowed() -> None:
    view = make_view().with_response(401, [(b"www-authenticate", b"Basic")])
    expression = compile_expression(
        'http.response.code eq 401 and http.response.headers["www-authenticate"][0] eq "Basic"',
        allow_response_fields=True,
    )
    assert expression.evaluate(view)


def test_fields_used_lists_each_field_once() -> None:
    expression = compile_expression(
        'http.host eq "a" or any(http.request.headers["x"][*] eq "b") or http.host eq "c"'
    )
    assert expression.fields_used == {"http.host", "http.request.headers"}
    assert expression.source.startswith("http.host")
