"""An ordered rule set compiled into one generated Python function.

Evaluating 200 expressions as nested closures costs a Python call per node; the generated
function instead reads like a hand-written ``if`` chain::

    def first_match(view, start=0):
        t0 = view.path                       # values two or more rules read: once per request
        t1 = k0(view)                        # e.g. lower(http.request.uri.query)
        if start <= 0:
            if t0 == '/admin/0':             # eq against a literal: inline
                return 0
            if (t0.startswith('/wp-1') and view.method == 'POST'):
                return 1
        if start <= 2:                       # a rule a caller may resume after
            if k1(t0) is not None:           # matches: the RE2 object's search, bound
                return 2
        return -1

Safety: the source never contains text from a rule. Strings and integers enter through
``repr()`` (checked to read back equal), every other constant (regex, set, IP address,
compiled sub-expression) is a closure cell ``kN`` of the factory, and names are generated.

Semantics: the closure compiler (``compiler.TreeCompiler``) type-checks each expression first
and supplies every value; only comparisons, ``and``/``or``/``xor``/``not`` and a few calls
are generated, and each generated piece computes what the closure would (same operand order,
same values, not just the same truth). Anything else is called as its closure.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any, TypeGuard

from originguard.protect.rules.compiler import NamedLists, TreeCompiler
from originguard.protect.rules.lexer import Tok
from originguard.protect.rules.matchers import (
    IpSet,
    Wildcard,
    compile_alternation,
    compile_regex,
    raw_matcher,
)
from originguard.protect.rules.printer import format_expression
from originguard.protect.rules.schema import FIELDS
from originguard.protect.rules.syntax import (
    Call,
    Compare,
    Field,
    Index,
    Literal,
    Logical,
    Node,
    Not,
    Value,
    parse,
)
from originguard.protect.rules.values import Val
from originguard.protect.rules.view import RequestView

FirstMatch = Callable[[RequestView, int], int]

# ``x OP literal`` is evaluated as the closure does: ``literal FLIPPED x``.
_FLIPPED = {"eq": "==", "ne": "!=", "lt": ">", "le": ">=", "gt": "<", "ge": "<="}


@dataclass(frozen=True, slots=True)
class RuleProgram:
    """``first_match(view, start)``: the index of the first rule at or after ``start`` whose
    expression holds, or -1. ``start`` must be one of ``entries`` (0 always is)."""

    first_match: FirstMatch
    entries: frozenset[int]
    source: str  # the generated code, for tests and for reading


def compile_rule_set(
    expressions: Sequence[str],
    lists: NamedLists | None = None,
    *,
    entries: Iterable[int] | None = None,
    allow_response_fields: bool = False,
) -> RuleProgram:
    """Compile ``expressions`` (in order) into one function.

    ``entries``: the indices a caller may resume at, e.g. after a rule that does not stop
    evaluation; None means every index. Each entry costs one integer comparison per request.
    Raises RuleSyntaxError/RuleTypeError exactly as ``compile_expression`` does.
    """
    starts = {0} | (set(range(len(expressions))) if entries is None else set(entries))
    writer = _Writer()
    bodies = []
    for text in expressions:
        compiler = TreeCompiler(text, lists or {}, allow_response_fields)
        tree = parse(text)
        compiler.require_bool(tree, compiler.value(tree), "the expression")
        bodies.append(writer.boolean(compiler, tree))
    source, cells = writer.assemble(bodies, starts)
    builtins = {"any": any, "all": all, "len": len, "int": int, "isinstance": isinstance}
    namespace: dict[str, Any] = {"__builtins__": builtins}
    exec(compile(source, "<rule set>", "exec"), namespace)  # noqa: S102 - see module docstring
    first_match: FirstMatch = namespace["build"](*cells)
    return RuleProgram(first_match, frozenset(starts), source)


Code = list["str | _Term"]


class _Term:
    """A value some rules read (a field, an element, a function of them): computed once per
    request when read twice or more, else inline where it is read."""

    __slots__ = ("name", "compute", "uses", "optional")

    def __init__(self, name: str, compute: Code, optional: bool = False) -> None:
        self.name = name
        self.compute = compute
        self.uses = 0
        self.optional = optional  # may be None: nothing is derived from it up front




class _Writer:
    def __init__(self) -> None:
        self.cells: list[object] = []
        self.terms: dict[str, _Term] = {}
        self.gates: dict[str, tuple[_Term, _Term, list[str]]] = {}

    # --- constants and terms ---------------------------------------------------------
    def bind(self, value: object) -> str:
        """A name for ``value``: a literal for str and int, else a closure cell."""
        if type(value) in (str, int, bool):
            text = repr(value)
            if ast.literal_eval(text) == value:
                return text
        self.cells.append(value)
        return f"k{len(self.cells) - 1}"

    def term(self, node: Value, val: Val) -> _Term:
        key = format_expression(node)
        term = self.terms.get(key)
        if term is None:
            attribute = FIELDS[node.name].attribute if isinstance(node, Field) else None
            if attribute is not None and attribute.isidentifier():
                compute: Code = [f"view.{attribute}"]
            else:
                compute = [f"{self.bind(val.fn)}(view)"]
            term = self.terms[key] = _Term(f"t{len(self.terms)}", compute, val.optional)
        term.uses += 1
        return term

    def derived(self, subject: _Term, how: str, code: Code, uses: int) -> _Term:
        """A term computed from another (its UTF-8 bytes, its lower case, ...): ``code``
        with ``subject`` in it, once per request when read twice or more."""
        key = f"\x00{how} " + next(k for k, t in self.terms.items() if t is subject)
        term = self.terms.get(key)
        if term is None:
            subject.uses += code.count(subject)
            term = self.terms[key] = _Term(f"t{len(self.terms)}", code)
        term.uses += uses
        return term

    # --- booleans --------------------------------------------------------------------
    def boolean(self, compiler: TreeCompiler, node: Node) -> Code:
        """Code for a Bool node that computes the value its closure returns."""
        if isinstance(node, Logical):
            parts = [self.boolean(compiler, operand) for operand in node.operands]
            if node.op == "xor":  # closure: a != b, folded left; never a chained comparison
                code = parts[0]
                for part in parts[1:]:
                    code = ["(", *code, " != ", *part, ")"]
                return code
            joined: Code = ["("]
            for i, part in enumerate(parts):
                joined += [f" {node.op} "] if i else []
                joined += part
            return [*joined, ")"]
        if isinstance(node, Not):
            return ["(not ", *self.boolean(compiler, node.operand), ")"]
        if isinstance(node, Compare):
            return self.compare(compiler, node)
        val = compiler.value(node)
        if val.is_const:
            return [self.bind(val.const)]
        if isinstance(node, Field) and not val.optional:
            return [self.term(node, val)]  # ssl
        inline = self.call(compiler, node) if isinstance(node, Call) else None
        code = inline if inline is not None else [f"{self.bind(val.fn)}(view)"]
        return ["(", *code, " is True)"] if val.optional else code  # closure: _truth

    def compare(self, compiler: TreeCompiler, node: Compare) -> Code:
        lhs = compiler.value(node.lhs)
        test = compiler.test_for(node, lhs)
        if lhs.is_const:
            return [self.bind(test(lhs.const))]
        if lhs.each:  # only inside any()/all(), handled there
            return [f"{self.bind(compiler.value(node).fn)}(view)"]
        term = self.term(node.lhs, lhs)
        if lhs.optional:
            self.term(node.lhs, lhs)  # read twice: computed once, up front
            return ["(", term, " is not None and ", *self.test(node, test, term), ")"]
        return self.test(node, test, term)

    def test(self, node: Compare, test: Callable[[Any], bool], subject: str | _Term) -> Code:
        """``test(subject)`` as code, for a comparison against a literal, set or list."""
        op, rhs = node.op, node.rhs
        if op == "in":  # the set or list: test is its bound __contains__
            members = getattr(test, "__self__", None)
            if isinstance(members, IpSet) and _is_derivable(subject):
                return self.ip_set(members, subject)
            if members is not None:
                return ["(", subject, f" in {self.bind(members)})"]
        elif isinstance(rhs, Literal):
            if op in _FLIPPED:
                const = _literal_value(rhs, test)
                return [f"({self.bind(const)} {_FLIPPED[op]} ", subject, ")"]
            if op == "contains":
                return [f"({self.bind(rhs.value)} in ", subject, ")"]
            if op == "matches":
                regex = compile_regex(rhs.value)
                raw = raw_matcher(regex)
                if raw is None or not _is_derivable(subject):
                    return [f"({self.bind(regex.search)}(", subject, ") is not None)"]
                utf8 = self.derived(subject, "utf-8", [subject, ".encode()"], 2)
                gate = self.gate(subject, utf8, rhs.value)
                return ["(", gate, " and ", *self.search(raw, utf8), ")"]
            if op in ("wildcard", "strict_wildcard"):
                wildcard = Wildcard(rhs.value, case_sensitive=op == "strict_wildcard")
                if _is_derivable(subject) and len(wildcard.pieces) <= 2:
                    return self.wildcard(wildcard, subject)
                return [f"{self.bind(wildcard.matches)}(", subject, ")"]
        return [f"{self.bind(test)}(", subject, ")"]

    def search(self, raw: tuple[Callable[..., Any], object], utf8: _Term) -> Code:
        match, anchor = (self.bind(x) for x in raw)
        return [f"({match}({anchor}, ", utf8, ", 0, len(", utf8, "))[0][0] >= 0)"]

    def gate(self, subject: _Term, utf8: _Term, pattern: str) -> _Term:
        """A term true when one of the regexes read from ``subject`` could match: the
        alternation of all of them, searched once (filled in by ``assemble``)."""
        gate = self.derived(subject, "regex-gate", [], 1)
        self.gates.setdefault(gate.name, (gate, utf8, []))[2].append(pattern)
        return gate

    def close_gates(self) -> None:
        for gate, utf8, patterns in self.gates.values():
            combined = compile_alternation(patterns) if len(patterns) > 1 else None
            raw = raw_matcher(combined) if combined is not None else None
            if raw is None:
                gate.compute[:] = ["True"]
            else:
                utf8.uses += 2
                gate.uses += 1  # searched once, up front
                gate.compute[:] = self.search(raw, utf8)

    def wildcard(self, wildcard: Wildcard, subject: _Term) -> Code:
        """Wildcard.matches inline for a pattern with at most one star."""
        pieces = wildcard.pieces
        reads = 1 if len(pieces) == 1 else 3
        value = subject
        if wildcard.folds_case:
            value = self.derived(subject, "lower", [subject, ".lower()"], reads)
        else:
            subject.uses += reads - 1
        if len(pieces) == 1:
            return ["(", value, f" == {self.bind(pieces[0])})"]
        first, last = (self.bind(piece) for piece in pieces)
        return [
            "(len(", value, f") >= {len(pieces[0]) + len(pieces[1])} and ",
            value, f".startswith({first}) and ", value, f".endswith({last}))",
        ]  # fmt: skip

    def ip_set(self, members: IpSet, subject: _Term) -> Code:
        """IpSet.__contains__ inline: one shift and one set probe per prefix length."""
        v4, v6 = members.tables
        number = self.derived(subject, "int", ["int(", subject, ")"], len(v4) + len(v6))
        v4_bound = self.bind(IPv4Address)
        is_v4 = self.derived(subject, "v4", ["isinstance(", subject, f", {v4_bound})"], 1)
        branches: list[Code] = []
        for table in (v4, v6):
            probes: Code = []
            for shift, prefixes in table:
                probes += [" or "] if probes else []
                probes += ["(", number, f" >> {shift} in {self.bind(prefixes)})"]
            branches.append(["(", *probes, ")"] if probes else ["False"])
        return ["(", *branches[0], " if ", is_v4, " else ", *branches[1], ")"]

    def call(self, compiler: TreeCompiler, node: Call) -> Code | None:
        """Code for the calls worth inlining, or None to call the closure."""
        if node.name in ("starts_with", "ends_with") and len(node.args) == 2:
            subject_node, affix_node = node.args
            if not isinstance(subject_node, (Field, Index, Call)):
                return None
            subject, affix = compiler.value(subject_node), compiler.value(affix_node)
            if subject.each or subject.optional or subject.is_const or not affix.is_const:
                return None
            method = "startswith" if node.name == "starts_with" else "endswith"
            term = self.term(subject_node, subject)
            return [term, f".{method}({self.bind(affix.const)})"]
        if node.name in ("any", "all") and len(node.args) == 1:
            inner = node.args[0]
            if not isinstance(inner, Compare):
                return None
            lhs = compiler.value(inner.lhs)
            if not lhs.each or lhs.is_const:
                return None
            test = compiler.test_for(inner, lhs)
            term = self.term(inner.lhs, lhs)
            if node.name == "any" and inner.op == "eq" and isinstance(inner.rhs, Literal):
                return [f"({self.bind(_literal_value(inner.rhs, test))} in ", term, ")"]
            body = self.test(inner, test, "_e")
            return [f"{node.name}([", *body, " for _e in ", term, "])"]
        return None

    # --- the function ----------------------------------------------------------------
    def assemble(self, bodies: list[Code], starts: set[int]) -> tuple[str, list[object]]:
        self.close_gates()
        hoisted = [term for term in self.terms.values() if term.uses > 1]
        lines = [
            "def build(" + ", ".join(f"k{i}" for i in range(len(self.cells))) + "):",
            "    def first_match(view, start=0):",
        ]
        lines += [f"        {term.name} = {_code(term.compute)}" for term in hoisted]
        for index, body in enumerate(bodies):
            if index in starts:
                lines.append(f"        if start <= {index}:")
            lines.append(f"            if {_code(body)}:")
            lines.append(f"                return {index}")
        lines += ["        return -1", "    return first_match", ""]
        return "\n".join(lines), self.cells


def _is_derivable(subject: str | _Term) -> TypeGuard[_Term]:
    """A term that always has a value, so values derived from it can be computed up front."""
    return isinstance(subject, _Term) and not subject.optional


def _code(code: Code) -> str:
    """Source text: a term is its name when hoisted, else its computation in place."""
    return "".join(
        piece if isinstance(piece, str) else piece.name if piece.uses > 1 else _code(piece.compute)
        for piece in code
    )


def _literal_value(rhs: Literal, test: Callable[[Any], bool]) -> object:
    """The constant the closure compares with: the partial's bound argument."""
    args = getattr(test, "args", ())
    if args:
        return args[0]
    return int(rhs.value) if rhs.kind is Tok.INT else rhs.value
