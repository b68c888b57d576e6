"""Errors raised when a rule expression is compiled.

    RuleSyntaxError        the text does not parse (bad token, missing operand, ...)
     └── RuleTypeError     it parses but means nothing: unknown field or function, a
                           comparison between incompatible types, an invalid regex

Both carry the character span of the offending text so a config loader can point at it:
``err.render(rule_name, expression)`` draws the line with a caret underneath.
"""

from __future__ import annotations


class RuleSyntaxError(ValueError):
    """An expression that cannot be compiled; ``position`` is a 0-based character offset."""

    def __init__(self, message: str, position: int, end: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.end = end if end is not None and end > position else position + 1

    def line_and_column(self, expression: str) -> tuple[int, int]:
        """1-based line and column of ``position`` within ``expression``."""
        before = expression[: self.position]
        line = before.count("\n") + 1
        column = self.position - (before.rfind("\n") + 1) + 1
        return line, column

    def render(self, rule_name: str, expression: str) -> str:
        """The message, the offending line of ``expression`` and a caret under the span."""
        line_no, column = self.line_and_column(expression)
        lines = expression.split("\n")
        text = lines[line_no - 1] if line_no - 1 < len(lines) else ""
        # The caret covers the offending span, clipped to the line it starts on.
        width = max(1, min(self.end, self.position + len(text) - column + 1) - self.position)
        gutter = f"{line_no} | "
        return (
            f'rule "{rule_name}": {self.message} (line {line_no}, column {column})\n'
            f"{gutter}{text}\n"
            f"{' ' * len(gutter)}{' ' * (column - 1)}{'^' * width}"
        )

    def __str__(self) -> str:
        return f"{self.message} (at offset {self.position})"


class RuleTypeError(RuleSyntaxError):
    """A well-formed expression that is meaningless: wrong types, unknown names, bad regex."""
