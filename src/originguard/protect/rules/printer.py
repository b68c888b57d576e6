"""The canonical text of a syntax tree: ``parse(format_expression(tree)) == tree``.

Canonical means one spelling per tree: English operators, one space around them, strings in
double quotes (only ``"``, ``\\`` and control characters escaped, never raw strings), sets as
``{a b c}`` and ranges as ``a..b``. Parentheses appear only where the grammar needs them to
keep the tree's shape: around an ``and``/``xor``/``or`` group inside a group that binds as
tightly or more (``(a or b) and c``, and ``(a and b) and c`` for a nested group of the same
operator), and around a group under ``not``.

The rule-set compiler also uses the text as the identity of a sub-expression: two rules that
read ``lower(http.request.uri.query)`` share one computed value per request.
"""

from __future__ import annotations

from originguard.protect.rules.lexer import Tok
from originguard.protect.rules.syntax import (
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
)

# How tightly each logical operator binds (syntax.py: not > and > xor > or).
_BINDING = {"or": 1, "xor": 2, "and": 3}
_SPELLING = {"strict_wildcard": "strict wildcard"}


def format_expression(node: Node | Literal) -> str:
    """The canonical text of ``node``."""
    if isinstance(node, Literal):
        return format_literal(node)
    if isinstance(node, Field):
        return node.name
    if isinstance(node, Index):
        if node.key is None:
            key = "*"
        elif isinstance(node.key, int):
            key = str(node.key)
        else:
            key = quote(node.key)
        return f"{format_expression(node.base)}[{key}]"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(format_expression(arg) for arg in node.args)})"
    if isinstance(node, Compare):
        op = _SPELLING.get(node.op, node.op)
        return f"{format_expression(node.lhs)} {op} {_format_rhs(node.rhs)}"
    if isinstance(node, Not):
        inner = format_expression(node.operand)
        return f"not ({inner})" if isinstance(node.operand, Logical) else f"not {inner}"
    parts = []
    for operand in node.operands:
        text = format_expression(operand)
        if isinstance(operand, Logical) and _BINDING[operand.op] <= _BINDING[node.op]:
            text = f"({text})"
        parts.append(text)
    return f" {node.op} ".join(parts)


def format_literal(node: Literal) -> str:
    return quote(node.value) if node.kind is Tok.STRING else node.value


def quote(value: str) -> str:
    """A double-quoted string literal the lexer decodes back to ``value``."""
    out = ['"']
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif c < " " or c == "\x7f":
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _format_rhs(rhs: Literal | SetLiteral | ListRef) -> str:
    if isinstance(rhs, Literal):
        return format_literal(rhs)
    if isinstance(rhs, ListRef):
        return "$" + rhs.name
    items = (
        f"{format_literal(item.low)}..{format_literal(item.high)}"
        if isinstance(item, Range)
        else format_literal(item)
        for item in rhs.items
    )
    return "{" + " ".join(items) + "}"
