"""The canonical printer: parse(format_expression(tree)) == tree for any tree, and real rules
print to one spelling."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from originguard.protect.rules.lexer import KEYWORDS, Tok
from originguard.protect.rules.printer import format_expression
from originguard.protect.rules.schema import FIELDS
from originguard.protect.rules.syntax import (
    COMPARISONS,
    Call,
    Compare,
    Field,
    Index,
    ListRef,
    Literal,
    Logical,
    Node,
    Not,
    Range,
    SetLiteral,
    Value,
    parse,
)

# Spans are not part of a node's value, so generated trees carry zeros.
names = st.one_of(
    st.sampled_from(sorted(FIELDS)),
    st.from_regex(r"[a-z_][a-z0-9_]{0,6}(\.[a-z_][a-z0-9_]{0,6}){0,2}", fullmatch=True).filter(
        lambda name: name not in KEYWORDS
    ),
)
strings = st.builds(lambda s: Literal(Tok.STRING, s, 0, 0), st.text(max_size=12))
ints = st.builds(lambda n: Literal(Tok.INT, str(n), 0, 0), st.integers(-(2**40), 2**40))
addresses = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=4).map(lambda a: f"{a}/{int(a) % 33}"),
    st.ip_addresses(v=6).map(lambda a: f"{a}/{int(a) % 129}"),
)
ips = st.builds(lambda text: Literal(Tok.IP, text, 0, 0), addresses)
literals = st.one_of(strings, ints, ips)
ranges = st.one_of(
    st.builds(lambda a, b: Range(a, b, 0, 0), ints, ints),
    st.builds(lambda a, b: Range(a, b, 0, 0), ips, ips),
)
sets = st.builds(
    lambda items: SetLiteral(tuple(items), 0, 0),
    st.lists(st.one_of(literals, ranges), min_size=1, max_size=4),
)
list_refs = st.builds(lambda name: ListRef(name, 0, 0), names)


def index(base: Value, key: str | int | None) -> Index:
    return Index(base, key, 0, 0, 0, 0)


def compare(lhs: Value, op: str, rhs: Literal, items: SetLiteral | ListRef) -> Compare:
    return Compare(lhs, op, items if op == "in" else rhs, 0, 0, 0, 0)


fields = st.builds(lambda name: Field(name, 0, 0), names)
calls = st.builds(
    lambda name, args: Call(name, tuple(args), 0, 0),
    names,
    st.lists(st.one_of(st.deferred(lambda: trees), literals), max_size=3),
)
values = st.recursive(
    st.one_of(fields, calls),
    lambda inner: st.builds(index, inner, st.one_of(st.text(max_size=8), st.integers(0, 99),
                                                    st.none())),
    max_leaves=3,
)  # fmt: skip


def extend(nodes: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        values,
        st.builds(
            compare, values, st.sampled_from(sorted(COMPARISONS)), literals,
            st.one_of(sets, list_refs),
        ),
        st.builds(lambda operand: Not(operand, 0, 0), nodes),
        st.builds(
            lambda op, operands: Logical(op, tuple(operands), 0, 0),
            st.sampled_from(["and", "or", "xor"]),
            st.lists(nodes, min_size=2, max_size=4),
        ),
    )  # fmt: skip


trees: st.SearchStrategy[Node] = st.recursive(fields, extend, max_leaves=12)


@settings(max_examples=600, deadline=None)
@given(trees)
def test_parsing_the_printed_tree_gives_the_same_tree(tree: Node) -> None:
    assert parse(format_expression(tree)) == tree


@given(st.text(max_size=40))
def test_a_printed_string_literal_reads_back_as_the_same_string(text: str) -> None:
    written = Compare(Field("http.host", 0, 0), "eq", Literal(Tok.STRING, text, 0, 0), 0, 0, 0, 0)
    tree = parse(format_expression(written))
    assert isinstance(tree, Compare) and isinstance(tree.rhs, Literal)
    assert tree.rhs.value == text


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ('http.host == "a" && !ssl', 'http.host eq "a" and not ssl'),
        ("(a or b) and c", "(a or b) and c"),
        ("a or (b and c)", "a or b and c"),
        ("a and (b and c)", "a and (b and c)"),
        ("not (a or b)", "not (a or b)"),
        ("!!a", "not not a"),
        ('http.user_agent ~ r"(?i)bot\\d"', 'http.user_agent matches "(?i)bot\\\\d"'),
        ('http.host strict  wildcard "*.Example.com"', 'http.host strict wildcard "*.Example.com"'),
        ("ip.src.asnum in { 1 2..5 }", "ip.src.asnum in {1 2..5}"),
        ("ip.src in {10.0.0.0/8 ::1}", "ip.src in {10.0.0.0/8 ::1}"),
        ('any(http.request.headers["x"][*] eq "a\\"b")',
         'any(http.request.headers["x"][*] eq "a\\"b")'),
        ('len(concat(http.host,"x"))>3', 'len(concat(http.host, "x")) gt 3'),
        ("http.host in $bad_hosts", "http.host in $bad_hosts"),
    ],
)  # fmt: skip
def test_real_rules_print_in_one_canonical_spelling(written: str, canonical: str) -> None:
    assert format_expression(parse(written)) == canonical
    assert parse(canonical) == parse(written)


def test_a_control_character_is_printed_as_a_hex_escape() -> None:
    tree = parse('http.host eq "a\\x0ab"')
    assert format_expression(tree) == 'http.host eq "a\\x0ab"'
