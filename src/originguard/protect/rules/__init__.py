"""The Cloudflare rules language (wirefilter syntax): compile once, evaluate per request.

    expr = compile_expression(
        'http.request.uri.path contains "/admin" and not ip.src in $office',
        lists={"office": ["192.0.2.0/24"]},
    )
    expr.evaluate(view)  # -> bool; view is a RequestView

Pipeline: ``lexer`` (tokens) → ``syntax`` (tree with character spans) → ``compiler`` (type
check, closures). ``schema`` lists the fields, ``functions`` the functions, ``matchers`` the
compiled sets, wildcards and RE2 regexes, ``view`` the request as rules see it. ``printer``
gives a tree's canonical text (``parse(format_expression(tree)) == tree``); ``program``
compiles an ordered rule set into one generated function that agrees with the closures.

Decisions where Cloudflare leaves room or where we differ:
- Strings are ``str`` decoded latin-1 from the wire (one character per byte).
- An array field cannot be compared directly: use ``[0]`` for one element (past the end it
  never matches, whatever the operator) or ``any(x[*] ...)`` / ``all(x[*] ...)``.
  ``all()`` of an empty array is true, ``any()`` false.
- ``http.request.headers["Name"]`` with upper case is rejected: keys are lower-case, and
  Cloudflare would silently never match.
- ``http.request.uri.args`` values are not decoded; cookie names are URL-decoded, values not.
- Bool fields are used bare (``ssl``, ``not ssl``); there are no ``true``/``false`` literals.
- ``regex_replace`` replaces the first match; ``${N}`` is group N and ``$$`` a dollar.
- ``http.response.*`` compile only with ``allow_response_fields=True`` (counting expressions).
- Regexes are RE2 (linear time), at most ``MAX_PATTERN_LENGTH`` characters and
  ``MAX_PROGRAM_SIZE`` compiled instructions.
"""

from originguard.protect.rules.compiler import Expression, NamedLists, compile_expression
from originguard.protect.rules.errors import RuleSyntaxError, RuleTypeError
from originguard.protect.rules.view import RequestView

__all__ = [
    "Expression",
    "NamedLists",
    "RequestView",
    "RuleSyntaxError",
    "RuleTypeError",
    "compile_expression",
]
