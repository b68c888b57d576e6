"""Compile-time errors: type mistakes are caught before a rule runs, with a caret."""

from __future__ import annotations

import pytest

from originguard.protect.rules import RuleSyntaxError, RuleTypeError, compile_expression
from originguard.protect.rules.matchers import MAX_PATTERN_LENGTH
from originguard.protect.rules.program import compile_rule_set


@pytest.mark.parametrize(
    ("text", "span", "fragment"),
    [
        ('http.hots eq "a"', "http.hots", "unknown field http.hots"),
        ("nope(http.host)", "nope", "unknown function nope()"),
        ('ip.src contains "x"', "contains", "needs a String"),
        ("http.host eq 5", "5", "must be a string, not an integer"),
        ('ip.src.asnum eq "5"', '"5"', "must be an integer"),
        ('ip.src lt 1.2.3.4', "lt", "only eq, ne and in"),
        ("ip.src eq 10.0.0.0/8", "10.0.0.0/8", "only valid inside a set"),
        ('ip.src in {"a"}', '"a"', "only IPs, CIDRs"),
        ("http.host in {1}", "1", "only strings"),
        ('ip.src.asnum in {"x" 1}', '"x"', "only integers"),
        ("ip.src.asnum in {9..1}", "9..1", "range start is above its end"),
        ("ip.src in {300.1.1.1}", "300.1.1.1", "invalid IP"),
        ('http.host matches "(unclosed"', '"(unclosed"', "invalid regular expression"),
        ('http.host wildcard "a**"', "**", "'**' is not allowed"),
        ('http.host wildcard "a\\\\b"', "\\\\b", "only \\* and \\\\"),
        ('http.host wildcard r"ab\\c"', "\\c", "only \\* and \\\\"),
        ("http.host in $nope", "$nope", "unknown list $nope"),
        ('http.request.headers["x"] eq "a"', 'eq "a"', "cannot use 'eq' on Array<String>"),
        ('http.request.headers["x"][*] eq "a"', 'http.request.headers["x"][*] eq "a"',
         "wrap the comparison in any() or all()"),
        ('http.request.headers["User-Agent"][0] eq "a"', '"User-Agent"', "lower-case"),
        ("http.host", "http.host", "must be a boolean"),
        ('ssl eq "x"', "eq", "use the field on its own"),
        ("not http.host", "http.host", "operand of 'not'"),
        ('ssl and http.host', "http.host", "each side of 'and'"),
        ('http.response.code eq 401', "http.response.code", "only counting expressions"),
        ('lower(ip.src) eq "a"', "ip.src", "must be String"),
        ('lower(http.host, "x") eq "a"', 'lower(http.host, "x")', "takes 1 arguments"),
        ('any(http.host eq "a")', 'http.host eq "a"', "comparison over an array"),
        ('substring(http.host, ip.src.asnum) eq "a"', "ip.src.asnum", "must be a literal"),
        ('url_decode(http.host, "z") eq "a"', '"z"', "options"),
        ('regex_replace(http.host, "(a)", "${2}") eq "a"', '"${2}"', "group that does not exist"),
        ('http.request.uri.args[0] eq "a"', "[0]", "cannot index Map"),
        ('http.request.headers.names["a"] eq "a"', '["a"]', "cannot index Array"),
    ],
)  # fmt: skip
def test_type_errors_are_reported_at_compile_time_with_their_span(
    text: str, span: str, fragment: str
) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        compile_expression(text)
    error = caught.value
    assert fragment in error.message
    assert span in text[error.position : max(error.end, error.position + len(span))]
    assert text.find(span) <= error.position < text.find(span) + len(span)


def test_type_errors_are_a_kind_of_syntax_error() -> None:
    with pytest.raises(RuleTypeError):
        compile_expression('http.hots eq "a"')


def test_render_prints_the_expression_with_a_caret_under_the_error() -> None:
    text = 'http.request.uri.path contains "/admin" and ip.src contains "10."'
    with pytest.raises(RuleSyntaxError) as caught:
        compile_expression(text)
    assert caught.value.render("block-admin", text) == (
        "rule \"block-admin\": 'contains' needs a String, not IP address (line 1, column 52)\n"
        '1 | http.request.uri.path contains "/admin" and ip.src contains "10."\n'
        "                                                       ^^^^^^^^"
    )


def test_render_shows_only_the_offending_line_of_a_multiline_expression() -> None:
    text = 'http.host eq "a"\nand http.hots eq "b"'
    with pytest.raises(RuleSyntaxError) as caught:
        compile_expression(text)
    assert caught.value.render("r", text).splitlines() == [
        'rule "r": unknown field http.hots (line 2, column 5)',
        '2 | and http.hots eq "b"',
        "        ^^^^^^^^^",
    ]


def test_overlong_regex_is_rejected() -> None:
    pattern = "a" * (MAX_PATTERN_LENGTH + 1)
    with pytest.raises(RuleTypeError, match="longer than"):
        compile_expression(f'http.host matches "{pattern}"')


def test_regex_whose_program_is_too_large_is_rejected() -> None:
    with pytest.raises(RuleTypeError, match="too large|invalid regular expression"):
        compile_expression('http.host matches "((a{100}){100}){100}"')


def test_a_list_of_strings_cannot_be_used_against_an_ip_field() -> None:
    with pytest.raises(RuleTypeError, match=r"list \$bots cannot be used with an IP address"):
        compile_expression("ip.src in $bots", {"bots": ["curl"]})


@pytest.mark.parametrize(
    "text",
    [
        "(" * 33 + 'http.host eq "a"' + ")" * 33,
        "not " * 33 + 'http.host eq "a"',
        "lower(" * 33 + "http.host" + ")" * 33 + ' eq "a"',
        "(" * 5000 + 'http.host eq "a"' + ")" * 5000,  # never a RecursionError
    ],
    ids=["groups", "nots", "calls", "very-deep"],
)
def test_nesting_deeper_than_the_limit_is_a_syntax_error(text: str) -> None:
    with pytest.raises(RuleSyntaxError, match="nested more than 32 levels deep"):
        compile_expression(text)


def test_nesting_up_to_the_limit_compiles_into_a_rule_set() -> None:
    deepest = "not " * 16 + "(" * 16 + 'http.host eq "a"' + ")" * 16
    assert compile_rule_set([deepest]).first_match is not None
