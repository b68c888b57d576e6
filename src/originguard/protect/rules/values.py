"""Compiled values: a type plus a closure ``(RequestView) -> value``.

A value may be *each* (it came through ``[*]``: the closure returns a list and operations
apply element-wise, giving e.g. an array of booleans for ``any()``/``all()``), or *optional*
(``[0]`` past the end: the closure may return None, and a comparison on None is false, as in
wirefilter where a missing value never matches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from originguard.protect.rules.schema import Type
from originguard.protect.rules.view import RequestView

Fn = Callable[[RequestView], Any]


class _NotConst:
    def __repr__(self) -> str:
        return "NOT_CONST"


NOT_CONST: Any = _NotConst()


@dataclass(frozen=True, slots=True)
class Val:
    type: Type  # for an each value, the element type
    fn: Fn
    each: bool = False
    optional: bool = False
    const: Any = NOT_CONST

    @property
    def is_const(self) -> bool:
        return self.const is not NOT_CONST


def constant(type_: Type, value: object) -> Val:
    return Val(type_, lambda _view: value, const=value)


def lift(arg: Val, unary: Callable[[Any], Any], result: Type) -> Val:
    """Apply ``unary`` to a value, element-wise for each values, passing None through."""
    f = arg.fn
    if arg.is_const:
        return constant(result, unary(arg.const))
    fn: Fn
    if arg.each:

        def fn(view: RequestView) -> Any:
            return [unary(x) for x in f(view)]

    elif arg.optional:

        def fn(view: RequestView) -> Any:
            x = f(view)
            return None if x is None else unary(x)

    else:

        def fn(view: RequestView) -> Any:
            return unary(f(view))

    return Val(result, fn, each=arg.each, optional=arg.optional)


def combine(args: list[Val], op: Callable[..., Any], result: Type) -> Val:
    """Apply ``op`` to several non-each values (None in any argument gives None)."""
    if all(a.is_const for a in args):
        return constant(result, op(*(a.const for a in args)))
    fns = tuple(a.fn for a in args)
    optional = any(a.optional for a in args)

    def fn(view: RequestView) -> Any:
        xs = [g(view) for g in fns]
        if optional and None in xs:
            return None
        return op(*xs)

    return Val(result, fn, optional=optional)
