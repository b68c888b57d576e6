"""Syntax tree of a rule expression and the recursive-descent parser that builds it.

Grammar (lowest precedence first; wirefilter's order ``not > and > xor > or``)::

    expr     := xor   (("or"  | "||") xor)*
    xor      := and   (("xor" | "^^") and)*
    and      := unary (("and" | "&&") unary)*
    unary    := ("not" | "!") unary | "(" expr ")" | test
    test     := value [compare-op rhs]
    value    := (IDENT | IDENT "(" [arg ("," arg)*] ")") ("[" (STRING | INT | "*") "]")*
    arg      := expr | literal
    rhs      := literal | "{" (literal | literal ".." literal)* "}" | "$" name
    literal  := STRING | INT | IP | CIDR

Every node keeps the character span it came from, so later errors can point at it. Spans are
not part of a node's value: two trees are equal when they mean the same expression, wherever
it was written (``parse(format_expression(tree)) == tree``, see ``printer``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from originguard.protect.rules.errors import RuleSyntaxError
from originguard.protect.rules.lexer import Tok, Token, tokenize


@dataclass(frozen=True, slots=True)
class Literal:
    kind: Tok  # STRING, INT or IP (an IP token may carry a /prefix)
    value: str
    pos: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Range:
    low: Literal
    high: Literal
    pos: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class SetLiteral:
    items: tuple[Literal | Range, ...]
    pos: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class ListRef:
    name: str
    pos: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    pos: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Index:
    base: Value
    key: str | int | None  # None is [*]: every element
    pos: int = field(compare=False)
    end: int = field(compare=False)
    key_pos: int = field(compare=False)
    key_end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node | Literal, ...]
    pos: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    lhs: Value
    op: str  # canonical English spelling: eq ne lt le gt ge contains matches in wildcard ...
    rhs: Literal | SetLiteral | ListRef
    op_pos: int = field(compare=False)
    op_end: int = field(compare=False)
    pos: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int = field(compare=False)
    end: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Logical:
    op: str  # "and", "xor" or "or"
    operands: tuple[Node, ...]
    pos: int = field(compare=False)
    end: int = field(compare=False)


Value = Field | Index | Call
Node = Value | Compare | Not | Logical

# C-like spellings mapped to the English operator they mean.
_CANONICAL = {
    "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "~": "matches",
    "&&": "and", "||": "or", "^^": "xor", "!": "not",
}  # fmt: skip
COMPARISONS = frozenset("eq ne lt le gt ge contains matches in wildcard strict_wildcard".split())


def parse(text: str) -> Node:
    """Parse ``text`` into a syntax tree; raise RuleSyntaxError pointing at the problem."""
    return _Parser(text).parse()


# Groups, `not`s and function calls nested deeper than this are refused: the parser recurses
# once per level, and the generated rule function (program.py) nests a parenthesis per level,
# where CPython's own parser stops at 200.
MAX_NESTING = 32


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def nest(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise RuleSyntaxError(
                f"nested more than {MAX_NESTING} levels deep", tok.pos, tok.end
            )

    # --- token helpers -------------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def op(self) -> str | None:
        """Canonical spelling of the operator at the cursor, or None."""
        tok = self.peek()
        if tok.kind is not Tok.OP:
            return None
        return _CANONICAL.get(tok.text, tok.text)

    def expect_punct(self, char: str, what: str) -> Token:
        tok = self.peek()
        if tok.kind is Tok.PUNCT and tok.text == char:
            return self.advance()
        raise RuleSyntaxError(f"expected {char!r} {what}, found {_describe(tok)}", tok.pos, tok.end)

    def at_punct(self, char: str) -> bool:
        tok = self.peek()
        return tok.kind is Tok.PUNCT and tok.text == char

    # --- grammar -------------------------------------------------------------------
    def parse(self) -> Node:
        if self.peek().kind is Tok.EOF:
            raise RuleSyntaxError("empty expression", 0)
        node = self.expr()
        tok = self.peek()
        if tok.kind is not Tok.EOF:
            hint = ""
            if tok.kind is Tok.IDENT and tok.text.lower() in _ENGLISH:
                hint = " (operators are written in lower case)"
            raise RuleSyntaxError(
                f"expected a logical operator or the end, found {_describe(tok)}{hint}",
                tok.pos,
                tok.end,
            )
        return node

    def expr(self) -> Node:
        return self.binary("or", self.xor)

    def xor(self) -> Node:
        return self.binary("xor", self.conj)

    def conj(self) -> Node:
        return self.binary("and", self.unary)

    def binary(self, word: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        items = [first]
        while self.op() == word:
            self.advance()
            items.append(operand())
        if len(items) == 1:
            return first
        return Logical(word, tuple(items), first.pos, items[-1].end)

    def unary(self) -> Node:
        tok = self.peek()
        if self.op() == "not":
            self.advance()
            self.nest(tok)
            inner = self.unary()
            self.depth -= 1
            return Not(inner, tok.pos, inner.end)
        if self.at_punct("("):
            self.advance()
            self.nest(tok)
            inner = self.expr()
            self.expect_punct(")", "to close the group")
            self.depth -= 1
            return inner
        return self.test()

    def test(self) -> Node:
        lhs = self.value()
        op = self.op()
        if op is None or op in ("and", "or", "xor", "not"):
            return lhs
        op_tok = self.advance()
        op_end = op_tok.end
        if op == "strict":
            nxt = self.peek()
            if self.op() != "wildcard":
                raise RuleSyntaxError(
                    f"expected 'wildcard' after 'strict', found {_describe(nxt)}", nxt.pos, nxt.end
                )
            op_end = self.advance().end
            op = "strict_wildcard"
        if op not in COMPARISONS:
            raise RuleSyntaxError(
                f"{op_tok.text!r} is not a comparison operator", op_tok.pos, op_end
            )
        rhs: Literal | SetLiteral | ListRef
        if op == "in":
            rhs = self.set_or_list()
        else:
            rhs = self.literal(f"after {op_tok.text!r}")
        return Compare(lhs, op, rhs, op_tok.pos, op_end, lhs.pos, rhs.end)

    def value(self) -> Value:
        tok = self.peek()
        if tok.kind is not Tok.IDENT:
            hint = ""
            if tok.kind in (Tok.STRING, Tok.INT, Tok.IP):
                hint = " (a literal goes on the right of the operator)"
            raise RuleSyntaxError(
                f"expected a field or function, found {_describe(tok)}{hint}", tok.pos, tok.end
            )
        self.advance()
        node: Value
        if self.at_punct("("):
            self.advance()
            self.nest(tok)
            args: list[Node | Literal] = []
            if not self.at_punct(")"):
                args.append(self.argument())
                while self.at_punct(","):
                    self.advance()
                    args.append(self.argument())
            close = self.expect_punct(")", "to close the function call")
            self.depth -= 1
            node = Call(tok.text, tuple(args), tok.pos, close.end)
        else:
            node = Field(tok.text, tok.pos, tok.end)
        while self.at_punct("["):
            self.advance()
            key_tok = self.advance()
            key: str | int | None
            if key_tok.kind is Tok.STRING:
                key = key_tok.text
            elif key_tok.kind is Tok.INT and not key_tok.text.startswith("-"):
                key = int(key_tok.text)
            elif key_tok.kind is Tok.PUNCT and key_tok.text == "*":
                key = None
            else:
                raise RuleSyntaxError(
                    f'expected a "key", an index or * inside [ ], found {_describe(key_tok)}',
                    key_tok.pos,
                    key_tok.end,
                )
            close = self.expect_punct("]", "to close the index")
            node = Index(node, key, node.pos, close.end, key_tok.pos, key_tok.end)
        return node

    def argument(self) -> Node | Literal:
        if self.peek().kind in (Tok.STRING, Tok.INT, Tok.IP):
            return self.literal("as an argument")
        return self.expr()

    def literal(self, where: str) -> Literal:
        tok = self.peek()
        if tok.kind not in (Tok.STRING, Tok.INT, Tok.IP):
            raise RuleSyntaxError(
                f"expected a string, number or IP address {where}, found {_describe(tok)}",
                tok.pos,
                tok.end,
            )
        self.advance()
        return Literal(tok.kind, tok.text, tok.pos, tok.end)

    def set_or_list(self) -> SetLiteral | ListRef:
        tok = self.peek()
        if tok.kind is Tok.LIST:
            self.advance()
            return ListRef(tok.text, tok.pos, tok.end)
        self.expect_punct("{", "or a $list after 'in'")
        items: list[Literal | Range] = []
        while not self.at_punct("}"):
            if self.peek().kind is Tok.EOF:
                raise RuleSyntaxError("unterminated set: expected '}'", tok.pos, self.peek().pos)
            low = self.literal("in the set")
            if self.op() == "..":
                self.advance()
                high = self.literal("to end the range")
                items.append(Range(low, high, low.pos, high.end))
            else:
                items.append(low)
        close = self.advance()
        if not items:
            raise RuleSyntaxError("empty set", tok.pos, close.end)
        return SetLiteral(tuple(items), tok.pos, close.end)


_ENGLISH = frozenset("eq ne lt le gt ge contains matches in wildcard strict and or xor not".split())


def _describe(tok: Token) -> str:
    if tok.kind is Tok.EOF:
        return "the end of the expression"
    if tok.kind is Tok.STRING:
        return "a string"
    return f"{tok.text!r}"
