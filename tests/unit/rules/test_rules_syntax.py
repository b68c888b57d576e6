"""Parsing: precedence, both notations, literals, and where syntax errors point."""

from __future__ import annotations

import pytest

from originguard.protect.rules import RuleSyntaxError, compile_expression
from originguard.protect.rules.lexer import Tok, tokenize
from originguard.protect.rules.syntax import Compare, Field, Logical, Not, parse


def _shape(node: object) -> object:
    """A compact picture of a tree: field names for tests, (op, ...) for logic."""
    if isinstance(node, Logical):
        return (node.op, *(_shape(o) for o in node.operands))
    if isinstance(node, Not):
        return ("not", _shape(node.operand))
    if isinstance(node, Compare):
        return _shape(node.lhs)
    assert isinstance(node, Field)
    return node.name


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("a or b and c", ("or", "a", ("and", "b", "c"))),
        ("a and b or c", ("or", ("and", "a", "b"), "c")),
        ("not a and b", ("and", ("not", "a"), "b")),
        ("a xor b and c", ("xor", "a", ("and", "b", "c"))),
        ("a or b xor c", ("or", "a", ("xor", "b", "c"))),
        ("a || b && c", ("or", "a", ("and", "b", "c"))),
        ("!a && b ^^ c", ("xor", ("and", ("not", "a"), "b"), "c")),
        ("(a or b) and c", ("and", ("or", "a", "b"), "c")),
        ("not (a or b)", ("not", ("or", "a", "b"))),
        ("not not a", ("not", ("not", "a"))),
        ("a and b and c", ("and", "a", "b", "c")),
        ('not x eq "1" and y', ("and", ("not", "x"), "y")),
    ],
)
def test_logical_operators_bind_not_then_and_then_xor_then_or(text: str, shape: object) -> None:
    assert _shape(parse(text)) == shape


@pytest.mark.parametrize(
    ("english", "symbol"),
    [("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="),
     ("matches", "~")],
)  # fmt: skip
def test_c_like_comparison_parses_to_the_english_operator(english: str, symbol: str) -> None:
    a = parse(f'http.host {english} "x"')
    b = parse(f'http.host {symbol} "x"')
    assert isinstance(a, Compare) and isinstance(b, Compare)
    assert a.op == b.op == ("matches" if symbol == "~" else english)


@pytest.mark.parametrize(
    ("source", "kind", "value"),
    [
        (r'"a\"b\\c"', Tok.STRING, 'a"b\\c'),
        (r'"\x41"', Tok.STRING, "A"),
        (r'r"\d+\.php"', Tok.STRING, r"\d+\.php"),
        (r'r#"say "hi""#', Tok.STRING, 'say "hi"'),
        ("10.0.0.0/8", Tok.IP, "10.0.0.0/8"),
        ("2001:db8::/32", Tok.IP, "2001:db8::/32"),
        ("::1", Tok.IP, "::1"),
        ("-42", Tok.INT, "-42"),
        ("$bad_bots", Tok.LIST, "bad_bots"),
    ],
)
def test_literals_are_read_as_cloudflare_writes_them(source: str, kind: Tok, value: str) -> None:
    token = tokenize(source)[0]
    assert (token.kind, token.text) == (kind, value)


def test_an_int_range_in_a_set_is_two_numbers_around_dots() -> None:
    kinds = [t.text for t in tokenize("{80 8000..8999}")]
    assert kinds == ["{", "80", "8000", "..", "8999", "}", ""]


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty expression"),
        ('http.host eq "a" and', 20, "expected a field"),
        ('http.host eq "a" http.host', 17, "expected a logical operator"),
        ('http.host EQ "a"', 10, "lower case"),
        ("http.host eq", 12, "expected a string, number or IP"),
        ('http.host eq "abc', 13, "unterminated string"),
        (r'http.host eq "\d"', 14, "invalid escape"),
        ('(http.host eq "a"', 17, "to close the group"),
        ("http.host in {", 13, "unterminated set"),
        ("http.host in {}", 13, "empty set"),
        ("http.host in 5", 13, "or a $list"),
        ('http.host strict "a"', 17, "expected 'wildcard'"),
        ('"a" eq http.host', 0, "a literal goes on the right"),
        ('http.request.headers[x] eq "a"', 21, "inside [ ]"),
        ('lower(http.host eq "a"', 22, "to close the function call"),
        ('http.host eq "a" @', 17, "unexpected character"),
    ],
)
def test_syntax_errors_point_at_the_offending_position(
    text: str, position: int, fragment: str
) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        compile_expression(text)
    assert caught.value.position == position
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        'http.host eq "example.com"',
        'http.request.uri.path contains "/wp-admin" or http.request.uri.path contains "/xmlrpc"',
        "ip.src in {192.0.2.0/24 2001:db8::/32 198.51.100.1} and not ssl",
        'ip.src.country in {"CN" "RU"} && http.request.method != "GET"',
        'any(http.request.headers["user-agent"][*] contains "curl")',
        'http.user_agent matches r"(?i)(sqlmap|nikto)"',
        'http.request.uri.path wildcard "/api/*/admin"',
        'http.request.full_uri strict wildcard "https://*.example.com/*"',
        "ip.src.asnum in {13335 64496..64511}",
        "ip.src in $office_ips",
        '(http.host eq "a" xor http.host eq "b") || ssl',
        "len(http.request.uri.query) gt 1024",
        'any(http.request.headers.names[*] eq "x-debug") ^^ http.request.method eq "GET"',
    ],
)
def test_real_world_expressions_parse(text: str) -> None:
    parse(text)
