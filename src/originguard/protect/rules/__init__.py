"""The Cloudflare rules language (wirefilter syntax): compile once, evaluate per request.

expr = compile_expression('http.request.uri.path contains "/admin" and not ip.src in $office',
                          lists={"office": ["192.0.2.0/24"]})
expr.evaluate(view)  # -> bool
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
