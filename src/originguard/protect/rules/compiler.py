"""Type-check a syntax tree and turn it into nested closures.

``compile_expression`` is the only entry point: every error (syntax, unknown name, type
mismatch, invalid regex or wildcard, unknown list) surfaces here as a RuleSyntaxError or
RuleTypeError with a span, before the rule is ever evaluated.

Arrays: comparing an array field directly is an error (Cloudflare rejects it too). Take one
element with ``[0]`` or compare every element with ``[*]`` inside ``any()``/``all()``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address, IPv6Address, ip_address, summarize_address_range
from typing import Any

from originguard.protect.rules.errors import RuleSyntaxError, RuleTypeError
from originguard.protect.rules.functions import FUNCTIONS
from originguard.protect.rules.lexer import Tok
from originguard.protect.rules.matchers import (
    IntSet,
    IpSet,
    Network,
    Wildcard,
    compile_regex,
    parse_network,
)
from originguard.protect.rules.schema import BOOL, FIELDS, INT, IP, STRING, Kind, Type
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
    parse,
)
from originguard.protect.rules.values import Val, constant
from originguard.protect.rules.view import RequestView

NamedLists = Mapping[str, Sequence[str | int]]
Test = Callable[[Any], bool]

_ORDERING = {
    # x OP c  is  flipped(c, x): partial() binds the literal first and stays in C.
    "eq": operator.eq, "ne": operator.ne,
    "lt": operator.gt, "le": operator.ge, "gt": operator.lt, "ge": operator.le,
}  # fmt: skip
_SPELLING = {"strict_wildcard": "strict wildcard"}


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled rule expression. ``evaluate(view)`` is a plain closure: call it directly."""

    source: str
    fields_used: frozenset[str]
    evaluate: Callable[[RequestView], bool]


def compile_expression(
    text: str,
    lists: NamedLists | None = None,
    *,
    allow_response_fields: bool = False,
) -> Expression:
    """Compile ``text``; ``lists`` maps ``$name`` to its items (strings, ints or CIDRs).

    Response fields (``http.response.*``) are accepted only with ``allow_response_fields``,
    i.e. in rate-limit counting expressions.
    """
    compiler = TreeCompiler(text, lists or {}, allow_response_fields)
    tree = parse(text)
    result = compiler.value(tree)
    compiler.require_bool(tree, result, "the expression")
    return Expression(text, frozenset(compiler.fields), _truth(result))


class TreeCompiler:
    """Type-checks one expression's tree and compiles its nodes to values (closures).

    ``program`` reuses it node by node: every sub-expression it does not generate code for
    is the closure compiled here, so the two evaluators cannot drift apart.
    """

    def __init__(self, text: str, lists: NamedLists, allow_response_fields: bool) -> None:
        self.text = text
        self.lists = lists
        self.allow_response_fields = allow_response_fields
        self.fields: set[str] = set()
        self.list_cache: dict[tuple[str, Kind], object] = {}

    # --- values ----------------------------------------------------------------------
    def value(self, node: Node | Literal) -> Val:
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Field):
            return self.field(node)
        if isinstance(node, Index):
            return self.index(node)
        if isinstance(node, Call):
            builder = FUNCTIONS.get(node.name)
            if builder is None:
                raise RuleTypeError(
                    f"unknown function {node.name}()", node.pos, node.pos + len(node.name)
                )
            return builder(node, [self.value(arg) for arg in node.args])
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Not):
            return self.negate(node)
        return self.logical(node)

    def literal(self, node: Literal) -> Val:
        if node.kind is Tok.STRING:
            return constant(STRING, node.value)
        if node.kind is Tok.INT:
            return constant(INT, int(node.value))
        if "/" in node.value:
            raise RuleTypeError(
                "a CIDR is only valid inside a set: use ip.src in {" + node.value + "}",
                node.pos,
                node.end,
            )
        return constant(IP, self.address(node))

    def address(self, node: Literal) -> IPv4Address | IPv6Address:
        try:
            return ip_address(node.value)
        except ValueError:
            raise RuleSyntaxError(f"invalid IP address {node.value}", node.pos, node.end) from None

    def field(self, node: Field) -> Val:
        spec = FIELDS.get(node.name)
        if spec is None:
            raise RuleTypeError(f"unknown field {node.name}", node.pos, node.end)
        if spec.is_response and not self.allow_response_fields:
            raise RuleTypeError(
                f"{node.name} is a response field: only counting expressions may use it",
                node.pos,
                node.end,
            )
        self.fields.add(node.name)
        return Val(spec.type, spec.get)

    def index(self, node: Index) -> Val:
        base = self.value(node.base)
        f = base.fn
        key = node.key
        fn: Callable[[RequestView], Any]
        if base.each:
            raise RuleTypeError(
                "cannot index a value already taken with [*]", node.key_pos - 1, node.end
            )
        if base.type.kind is Kind.MAP and isinstance(key, str):
            assert base.type.elem is not None
            if _is_header_map(node.base) and key != key.lower():
                raise RuleTypeError(
                    f'header names are lower-case: write ["{key.lower()}"]',
                    node.key_pos,
                    node.key_end,
                )
            empty: Sequence[object] = ()

            def fn(view: RequestView) -> Any:
                return f(view).get(key, empty)

            return Val(base.type.elem, fn)
        if base.type.kind is Kind.ARRAY and key is None:
            assert base.type.elem is not None
            return Val(base.type.elem, f, each=True)
        if base.type.kind is Kind.ARRAY and isinstance(key, int):
            assert base.type.elem is not None
            position = key

            def fn(view: RequestView) -> Any:
                items = f(view)
                return items[position] if position < len(items) else None

            return Val(base.type.elem, fn, optional=True)
        wanted = {Kind.MAP: '["name"]', Kind.ARRAY: "[0] or [*]"}.get(base.type.kind)
        hint = f": use {wanted}" if wanted else ""
        raise RuleTypeError(f"cannot index {base.type} this way{hint}", node.key_pos - 1, node.end)

    # --- logic -----------------------------------------------------------------------
    def require_bool(self, node: Node | Literal, val: Val, what: str) -> None:
        if val.type != BOOL or val.each:
            kind = f"an array ({val.type} with [*])" if val.each else str(val.type)
            hint = ""
            if val.each:
                hint = ": wrap the comparison in any() or all()"
            elif val.type.kind in (Kind.ARRAY, Kind.MAP):
                hint = ": compare an element with [0], or all of them with any(...[*] ...)"
            elif val.type != BOOL:
                hint = ": compare it with an operator, e.g. eq"
            raise RuleTypeError(
                f"{what} must be a boolean, but this is {kind}{hint}", node.pos, node.end
            )

    def negate(self, node: Not) -> Val:
        inner = self.value(node.operand)
        self.require_bool(node.operand, inner, "the operand of 'not'")
        f = _truth(inner)

        def fn(view: RequestView) -> bool:
            return not f(view)

        return Val(BOOL, fn)

    def logical(self, node: Logical) -> Val:
        fns = []
        for operand in node.operands:
            val = self.value(operand)
            self.require_bool(operand, val, f"each side of '{node.op}'")
            fns.append(_truth(val))
        combined = fns[0]
        for nxt in fns[1:]:
            combined = _JOIN[node.op](combined, nxt)
        return Val(BOOL, combined)

    # --- comparisons -----------------------------------------------------------------
    def compare(self, node: Compare) -> Val:
        lhs = self.value(node.lhs)
        test = self.test_for(node, lhs)
        return _apply_test(lhs, test)

    def test_for(self, node: Compare, lhs: Val) -> Test:
        op, rhs, t = node.op, node.rhs, lhs.type
        spelled = _SPELLING.get(op, op)
        if t.kind in (Kind.ARRAY, Kind.MAP) or t == BOOL:
            hint = (
                "use the field on its own (ssl, not ssl)"
                if t == BOOL
                else "compare one element with [0], or every element with any(x[*] ...)"
            )
            raise RuleTypeError(f"cannot use '{spelled}' on {t}: {hint}", node.op_pos, node.op_end)
        if op == "in":
            assert isinstance(rhs, (SetLiteral, ListRef))
            members: Any = (
                self.named_list(rhs, t) if isinstance(rhs, ListRef) else self.set_literal(rhs, t)
            )
            contains: Test = members.__contains__
            return contains
        assert isinstance(rhs, Literal)
        if op in ("contains", "matches", "wildcard", "strict_wildcard"):
            if t != STRING:
                raise RuleTypeError(
                    f"'{spelled}' needs a String, not {t}", node.op_pos, node.op_end
                )
            self.require_literal(rhs, Tok.STRING, f"'{spelled}' needs a string")
            return self.string_test(op, rhs)
        # eq ne lt le gt ge
        if t == IP:
            if op not in ("eq", "ne"):
                raise RuleTypeError(
                    f"IP addresses support only eq, ne and in, not '{spelled}'",
                    node.op_pos,
                    node.op_end,
                )
            self.require_literal(rhs, Tok.IP, f"{_subject(node)} is an IP address")
            return partial(_ORDERING[op], self.literal(rhs).const)
        wanted = Tok.STRING if t == STRING else Tok.INT
        self.require_literal(rhs, wanted, f"{_subject(node)} is {_article(t)}")
        return partial(_ORDERING[op], self.literal(rhs).const)

    def require_literal(self, rhs: Literal, kind: Tok, message: str) -> None:
        if rhs.kind is not kind:
            raise RuleTypeError(
                f"{message}, so the value must be {_a(kind)}, not {_a(rhs.kind)}",
                rhs.pos,
                rhs.end,
            )

    def string_test(self, op: str, rhs: Literal) -> Test:
        needle = rhs.value
        if op == "contains":
            return lambda s: needle in s
        if op == "matches":
            try:
                regex = compile_regex(needle)
            except ValueError as exc:
                raise RuleTypeError(str(exc), rhs.pos, rhs.end) from None
            search = regex.search
            return lambda s: search(s) is not None
        try:
            wildcard = Wildcard(needle, case_sensitive=op == "strict_wildcard")
        except ValueError as exc:
            # Point into the string literal at the character where the pattern goes wrong.
            start = _source_offset(self.text, rhs, exc.args[1] if len(exc.args) > 1 else 0)
            raise RuleTypeError(str(exc.args[0]), start, start + 2) from None
        return wildcard.matches

    def set_literal(self, rhs: SetLiteral, t: Type) -> object:
        if t == STRING:
            strings = []
            for item in rhs.items:
                if not (isinstance(item, Literal) and item.kind is Tok.STRING):
                    raise RuleTypeError(_set_item_error(item, t), item.pos, item.end)
                strings.append(item.value)
            return frozenset(strings)
        if t == INT:
            ints, ranges = [], []
            for item in rhs.items:
                if isinstance(item, Range) and item.low.kind is Tok.INT is item.high.kind:
                    low, high = int(item.low.value), int(item.high.value)
                    if low > high:
                        raise RuleTypeError("range start is above its end", item.pos, item.end)
                    ranges.append((low, high))
                elif isinstance(item, Literal) and item.kind is Tok.INT:
                    ints.append(int(item.value))
                else:
                    raise RuleTypeError(_set_item_error(item, t), item.pos, item.end)
            return IntSet(ints, ranges)
        networks: list[Network] = []
        for item in rhs.items:
            if isinstance(item, Range) and item.low.kind is Tok.IP is item.high.kind:
                low_ip, high_ip = self.address(item.low), self.address(item.high)
                if low_ip.version != high_ip.version or int(low_ip) > int(high_ip):
                    raise RuleTypeError("invalid IP range", item.pos, item.end)
                networks.extend(summarize_address_range(low_ip, high_ip))
            elif isinstance(item, Literal) and item.kind is Tok.IP:
                try:
                    networks.append(parse_network(item.value))
                except ValueError:
                    raise RuleSyntaxError(
                        f"invalid IP address or CIDR {item.value}", item.pos, item.end
                    ) from None
            else:
                raise RuleTypeError(_set_item_error(item, t), item.pos, item.end)
        return IpSet(networks)

    def named_list(self, rhs: ListRef, t: Type) -> object:
        cached = self.list_cache.get((rhs.name, t.kind))
        if cached is not None:
            return cached
        items = self.lists.get(rhs.name)
        if items is None:
            raise RuleTypeError(f"unknown list ${rhs.name}", rhs.pos, rhs.end)
        members: object
        try:
            if t == STRING:
                members = frozenset(str(item) for item in items)
            elif t == INT:
                members = IntSet((_as_int(item) for item in items), ())
            else:
                members = IpSet(parse_network(str(item)) for item in items)
        except ValueError as exc:
            raise RuleTypeError(
                f"list ${rhs.name} cannot be used with {_article(t)}: {exc}", rhs.pos, rhs.end
            ) from None
        self.list_cache[(rhs.name, t.kind)] = members
        return members


def _source_offset(text: str, literal: Literal, index: int) -> int:
    """Offset in ``text`` of the ``index``-th decoded character of a string literal."""
    i = text.index('"', literal.pos) + 1
    if text[literal.pos] == "r":  # raw string: characters are taken as written
        return min(i + index, literal.end - 1)
    for _ in range(index):
        if text[i] == "\\":
            i += 4 if text[i + 1] == "x" else 2
        else:
            i += 1
    return min(i, literal.end - 1)


def _apply_test(lhs: Val, test: Test) -> Val:
    f = lhs.fn
    fn: Callable[[RequestView], Any]
    if lhs.each:

        def fn(view: RequestView) -> Any:
            return [test(x) for x in f(view)]

        return Val(BOOL, fn, each=True)
    if lhs.optional:

        def fn(view: RequestView) -> Any:
            x = f(view)
            return x is not None and test(x)

        return Val(BOOL, fn)
    if lhs.is_const:
        return constant(BOOL, test(lhs.const))

    def scalar(view: RequestView) -> bool:
        return test(f(view))

    return Val(BOOL, scalar)


Evaluator = Callable[[RequestView], Any]


def _truth(val: Val) -> Callable[[RequestView], bool]:
    """``val``'s closure as a strict bool: an optional value's None (missing) is false."""
    f = val.fn
    if not val.optional:
        return f
    return lambda view: f(view) is True


def _and(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda view: a(view) and b(view)


def _or(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda view: a(view) or b(view)


def _xor(a: Evaluator, b: Evaluator) -> Evaluator:
    return lambda view: a(view) != b(view)


_JOIN = {"and": _and, "or": _or, "xor": _xor}


def _is_header_map(node: Node) -> bool:
    return isinstance(node, Field) and node.name in (
        "http.request.headers",
        "http.response.headers",
    )


def _subject(node: Compare) -> str:
    lhs = node.lhs
    return lhs.name if isinstance(lhs, Field) else "the left side"


def _article(t: Type) -> str:
    return {STRING: "a String", INT: "an Int", IP: "an IP address"}.get(t, str(t))


def _set_item_error(item: Literal | Range, t: Type) -> str:
    if t == STRING:
        return "a set compared with a String may hold only strings"
    if t == INT:
        return "a set compared with an Int may hold only integers and ranges a..b"
    return "a set compared with an IP address may hold only IPs, CIDRs and ranges"


def _a(kind: Tok) -> str:
    return {Tok.STRING: "a string", Tok.INT: "an integer", Tok.IP: "an IP address"}.get(
        kind, kind.value
    )


def _as_int(item: str | int) -> int:
    if isinstance(item, int):
        return item
    return int(item)
