"""The generated rule-set function agrees with the closures, rule by rule, on random rule sets
and random requests; its source carries no rule text."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_requests import make_view

from originguard.protect.rules import RequestView, RuleTypeError, compile_expression
from originguard.protect.rules.program import compile_rule_set

LISTS: dict[str, list[str | int]] = {
    "office": ["192.0.2.0/24", "2001:db8::/48"],
    "words": ["GET", "bob", "/admin"],
    "asns": [64500, 13335],
}
WORDS = ["", "a", "A", "/admin", "GET", "POST", "www.example.com", "bob", "/api/v1", "GB", "php",
         "session=abc", "Mozilla", "x", "é"]  # fmt: skip
REGEXES = ["(?i)admin", "^/api/v[0-9]+", r"php$", "a|b", "^$", "[0-9]{2,}", "(?i)MOZILLA", "é"]
WILDCARDS = ["*", "/admin*", "*.php", "*a*", "www.*.com", "/API/*", "*/v1/*/x", "bob"]
STRING_SUBJECTS = [
    "http.host", "http.request.method", "http.request.uri.path", "http.request.uri.query",
    "http.request.uri", "http.request.full_uri", "http.user_agent", "http.cookie",
    "http.referer", "http.x_forwarded_for", "http.request.version", "ip.src.country",
    "http.request.uri.path.extension", "lower(http.request.uri.path)",
    'http.request.headers["x-tag"][0]', 'http.request.headers["x-tag"][1]',
    'http.request.uri.args["id"][0]', 'http.request.cookies["session"][0]',
    "url_decode(http.request.uri.query)", "concat(http.host, http.request.uri.path)",
    'regex_replace(http.request.uri.path, "[0-9]+", "N")', "to_string(ip.src)",
    'substring(http.request.uri.path, 1, 4)',
]  # fmt: skip
INT_SUBJECTS = ["ip.src.asnum", "len(http.request.uri.path)", 'len(http.request.headers["x-tag"])',
                'len(http.request.headers["x-tag"][0])']  # fmt: skip
ARRAYS = ['http.request.headers["x-tag"][*]', "http.request.headers.names[*]",
          'lower(http.request.uri.args["id"][*])', "http.request.uri.args.values[*]"]  # fmt: skip
ADDRESSES = ["192.0.2.7", "198.51.100.1", "2001:db8::1", "2001:db8:1::5", "10.0.0.1"]


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


words = st.sampled_from(WORDS).map(quoted)
string_tests = st.one_of(
    st.tuples(st.sampled_from(["eq", "ne", "lt", "ge", "contains", "=="]), words).map(" ".join),
    st.sampled_from(REGEXES).map(lambda r: "matches " + quoted(r)),
    st.tuples(st.sampled_from(["wildcard", "strict wildcard"]), st.sampled_from(WILDCARDS)).map(
        lambda t: f"{t[0]} {quoted(t[1])}"
    ),
    st.lists(words, min_size=1, max_size=3).map(lambda ws: "in {" + " ".join(ws) + "}"),
    st.just("in $words"),
)
int_tests = st.one_of(
    st.tuples(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]), st.integers(0, 20)).map(
        lambda t: f"{t[0]} {t[1]}"
    ),
    st.just("in {1 3..12 64500}"),
    st.just("in $asns"),
)
ip_tests = st.one_of(
    st.sampled_from(ADDRESSES).map(lambda a: "eq " + a),
    st.sampled_from(ADDRESSES).map(lambda a: "ne " + a),
    st.just("in {192.0.2.0/24 198.51.100.1 2001:db8::/32 10.0.0.0/8}"),
    st.just("in {192.0.2.0..192.0.2.9}"),
    st.just("in $office"),
)
comparisons = st.one_of(
    st.tuples(st.sampled_from(STRING_SUBJECTS), string_tests).map(" ".join),
    st.tuples(st.sampled_from(INT_SUBJECTS), int_tests).map(" ".join),
    st.tuples(st.sampled_from(["ip.src", "cidr(ip.src, 24, 64)"]), ip_tests).map(" ".join),
    st.tuples(st.sampled_from(["any", "all"]), st.sampled_from(ARRAYS), string_tests).map(
        lambda t: f"{t[0]}({t[1]} {t[2]})"
    ),
    st.tuples(st.sampled_from(["starts_with", "ends_with"]), st.sampled_from(STRING_SUBJECTS),
              words).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),  # fmt: skip
    st.just("starts_with(http.request.uri.path, http.request.method)"),
    st.just('len("abc") eq 3'),
    st.just("ssl"),
)
expressions = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        inner.map(lambda e: f"not ({e})"),
        st.tuples(inner, st.sampled_from(["and", "or", "xor", "&&", "||", "^^"]), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
    ),
    max_leaves=5,
)


@st.composite
def views(draw: st.DrawFn) -> RequestView:
    header_pool = [
        (b"x-tag", b"Alpha"), (b"x-tag", b"beta"), (b"x-tag", b"12"),
        (b"user-agent", b"Mozilla/5.0 admin"), (b"cookie", b"session=abc; theme=dark"),
        (b"referer", b"https://www.example.com/"), (b"x-forwarded-for", b"198.51.100.1"),
        (b"x-debug", b"\xe9"),
    ]  # fmt: skip
    return make_view(
        path=draw(st.sampled_from(["/", "/admin", "/api/v12/x", "/a.php", "/Admin/Login.PHP",
                                   "/API/v1/b/x", "/\xe9t\xe9"])),  # fmt: skip
        query=draw(st.sampled_from(["", "id=1&id=Bob", "q=%41+b", "id=a"])),
        headers=draw(st.lists(st.sampled_from(header_pool), max_size=5)),
        client_ip=draw(st.sampled_from(ADDRESSES)),
        host=draw(st.sampled_from(["www.example.com", "api.example.com", "bob"])),
        method=draw(st.sampled_from(["GET", "POST", "/"])),
        scheme=draw(st.sampled_from(["http", "https"])),
        country=draw(st.sampled_from([None, "GB", "XX"])),
        asnum=draw(st.sampled_from([None, 64500, 7])),
    )


def compiles(expression: str) -> bool:
    try:
        compile_expression(expression, LISTS)
    except RuleTypeError:
        return False
    return True


def first_by_closures(closures: list[object], view: RequestView, start: int) -> int:
    for index in range(start, len(closures)):
        if closures[index](view):  # type: ignore[operator]
            return index
    return -1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(expressions.filter(compiles), min_size=1, max_size=25),
    st.lists(views(), min_size=1, max_size=4),
)
def test_generated_function_agrees_with_the_closures(
    rules: list[str], requests: list[RequestView]
) -> None:
    program = compile_rule_set(rules, LISTS)
    closures = [compile_expression(rule, LISTS).evaluate for rule in rules]
    for view in requests:
        for start in range(len(rules) + 1):
            assert program.first_match(view, start) == first_by_closures(closures, view, start), (
                rules, start, program.source,
            )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(expressions.filter(compiles), views())
def test_one_rule_matches_exactly_when_its_closure_is_true(rule: str, view: RequestView) -> None:
    matched = compile_rule_set([rule], LISTS).first_match(view, 0) == 0
    assert matched == bool(compile_expression(rule, LISTS).evaluate(view))


def test_resuming_only_at_entries_still_finds_every_later_match() -> None:
    rules = ['http.host eq "a"', "ssl", 'http.request.method eq "GET"', "ssl"]
    program = compile_rule_set(rules, entries=[2, 3])
    view = make_view()
    assert program.first_match(view, 0) == 1
    assert program.first_match(view, 2) == 2
    assert program.first_match(view, 3) == 3
    assert program.first_match(view, 4) == -1


def test_rule_text_never_reaches_the_generated_source() -> None:
    hostile = '"); import os; os.system("x") #'
    rules = [
        f"http.host eq {quoted(hostile)}",
        f"http.request.uri.path matches {quoted('(?i)import os; os.system')}",
        f"http.user_agent contains {quoted(chr(10) + 'raise SystemExit')}",
    ]
    program = compile_rule_set(rules)
    assert "import os" not in program.source.replace(repr(hostile), "")
    assert "SystemExit" not in program.source.replace(repr(chr(10) + "raise SystemExit"), "")
    assert program.first_match(make_view(host=hostile), 0) == 0
    assert program.first_match(make_view(), 0) == -1


def test_values_read_by_several_rules_are_read_once_per_request() -> None:
    rules = [f'lower(http.request.uri.query) contains "{i}"' for i in range(5)]
    program = compile_rule_set(rules)
    assert program.source.count("(view)") == 1


def test_regexes_on_one_value_are_searched_together_first() -> None:
    rules = [f'http.request.uri.path matches "^/v{i}/"' for i in range(4)]
    program = compile_rule_set(rules)
    view = make_view(path="/v2/x")
    assert program.first_match(view, 0) == 2
    assert program.first_match(make_view(path="/v9/x"), 0) == -1


@pytest.mark.parametrize("address", ["192.0.2.1", "2001:db8::1", "203.0.113.1"])
def test_ip_sets_are_probed_inline_for_both_families(address: str) -> None:
    program = compile_rule_set(["ip.src in {192.0.2.0/24 2001:db8::/32}"])
    expected = 0 if address != "203.0.113.1" else -1
    assert program.first_match(make_view(client_ip=str(ip_address(address))), 0) == expected
