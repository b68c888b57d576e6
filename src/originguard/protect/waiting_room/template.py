"""A small Mustache subset for queue pages (spec §9.4: custom pages are Mustache templates).

Supported: ``{{name}}`` (HTML-escaped), ``{{#name}}…{{/name}}`` (rendered when the value is
truthy) and ``{{^name}}…{{/name}}`` (rendered when falsy). Sections nest. Unknown names render as
empty / falsy. Everything is escaped: there is no triple-mustache, so a template cannot inject
raw values. Lists, partials, lambdas and delimiter changes are not supported.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TAG = re.compile(r"\{\{\s*([#^/]?)\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class TemplateError(ValueError):
    """An unbalanced or misnamed section, with the character offset where it was found."""


@dataclass(frozen=True, slots=True)
class _Section:
    name: str
    inverted: bool
    body: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str


_Node = str | _Variable | _Section


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template; parse once at config load, render per request."""

    nodes: tuple[_Node, ...]

    def render(self, context: Mapping[str, object]) -> str:
        parts: list[str] = []
        _render(self.nodes, context, parts)
        return "".join(parts)


def parse(source: str) -> Template:
    """Parse a template, or raise TemplateError naming the offending tag and offset."""
    stack: list[tuple[str, bool, int, list[_Node]]] = []
    current: list[_Node] = []
    position = 0
    for match in _TAG.finditer(source):
        if match.start() > position:
            current.append(source[position : match.start()])
        position = match.end()
        kind, name = match.group(1), match.group(2)
        if kind in ("#", "^"):
            stack.append((name, kind == "^", match.start(), current))
            current = []
        elif kind == "/":
            if not stack or stack[-1][0] != name:
                raise TemplateError(f"unexpected {{{{/{name}}}}} at offset {match.start()}")
            opened, inverted, _, parent = stack.pop()
            parent.append(_Section(opened, inverted, tuple(current)))
            current = parent
        else:
            current.append(_Variable(name))
    if stack:
        name, _, offset, _ = stack[-1]
        raise TemplateError(f"section {{{{#{name}}}}} opened at offset {offset} is never closed")
    if position < len(source):
        current.append(source[position:])
    return Template(tuple(current))


def _render(nodes: tuple[_Node, ...], context: Mapping[str, object], out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Variable):
            out.append(html.escape(_text(context.get(node.name))))
        elif bool(context.get(node.name)) != node.inverted:
            _render(node.body, context, out)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
