"""Tokens of the rules language (wirefilter syntax).

Strings are ``"quoted"`` (escapes ``\\"``, ``\\\\`` and ``\\xHH``) or raw ``r"..."`` /
``r#"..."#``; numbers are decimal integers; IP addresses and CIDRs are bare literals
(``10.0.0.0/8``, ``2001:db8::/32``); a named list is ``$name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from originguard.protect.rules.errors import RuleSyntaxError


class Tok(Enum):
    IDENT = "identifier"
    STRING = "string"
    INT = "integer"
    IP = "IP address"
    LIST = "list reference"
    OP = "operator"
    PUNCT = "punctuation"
    EOF = "end of expression"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    text: str  # operator/keyword spelling, identifier, or decoded string value
    pos: int
    end: int


# English operators and logical words; they must be written in lower case.
KEYWORDS = frozenset("eq ne lt le gt ge contains matches in wildcard strict and or xor not".split())

_WS = re.compile(r"\s+")
_IPV6 = re.compile(
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})(?:/\d{1,3})?"
)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,3})?")
_INT = re.compile(r"-?\d+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_LIST = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_RAW = re.compile(r'r(#*)"')
_SYMBOLS = ("==", "!=", "<=", ">=", "&&", "||", "^^", "..", "<", ">", "~", "!")
_PUNCT = "(){}[],*"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an EOF token; raise RuleSyntaxError."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while True:
        ws = _WS.match(text, i)
        if ws:
            i = ws.end()
            continue
        if i >= n:
            tokens.append(Token(Tok.EOF, "", n, n))
            return tokens
        c = text[i]
        if c == '"':
            value, end = _quoted(text, i)
            tokens.append(Token(Tok.STRING, value, i, end))
            i = end
            continue
        raw = _RAW.match(text, i)
        if raw:
            closing = '"' + raw.group(1)
            stop = text.find(closing, raw.end())
            if stop < 0:
                raise RuleSyntaxError("unterminated raw string", i, n)
            end = stop + len(closing)
            tokens.append(Token(Tok.STRING, text[raw.end() : stop], i, end))
            i = end
            continue
        m = _IPV6.match(text, i) if (c in "0123456789abcdefABCDEF:") else None
        if m and ":" in m.group():
            tokens.append(Token(Tok.IP, m.group(), i, m.end()))
            i = m.end()
            continue
        kind = Tok.IDENT
        for pattern, candidate in ((_IPV4, Tok.IP), (_INT, Tok.INT), (_IDENT, Tok.IDENT)):
            m = pattern.match(text, i)
            if m:
                kind = candidate
                break
        if m:
            word = m.group()
            if kind is Tok.IDENT and word in KEYWORDS:
                kind = Tok.OP
            tokens.append(Token(kind, word, i, m.end()))
            i = m.end()
            continue
        m = _LIST.match(text, i)
        if m:
            tokens.append(Token(Tok.LIST, m.group()[1:], i, m.end()))
            i = m.end()
            continue
        for symbol in _SYMBOLS:
            if text.startswith(symbol, i):
                tokens.append(Token(Tok.OP, symbol, i, i + len(symbol)))
                i += len(symbol)
                break
        else:
            if c in _PUNCT:
                tokens.append(Token(Tok.PUNCT, c, i, i + 1))
                i += 1
            else:
                raise RuleSyntaxError(f"unexpected character {c!r}", i)


def _quoted(text: str, start: int) -> tuple[str, int]:
    """Decode the quoted string opening at ``start``; return (value, end offset)."""
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt in ('"', "\\"):
                out.append(nxt)
                i += 2
                continue
            if nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 2 : i + 4]):
                out.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
                continue
            raise RuleSyntaxError(
                'invalid escape in string: only \\" \\\\ and \\xHH are allowed'
                ' (use a raw string r"..." for regular expressions)',
                i,
                i + 2,
            )
        out.append(c)
        i += 1
    raise RuleSyntaxError("unterminated string", start, n)
