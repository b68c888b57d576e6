"""Functions of the rules language (Cloudflare "Functions" reference, spec §7.1).

Each builder checks its arguments at compile time and returns a compiled value. Functions
that transform one string apply element-wise to an array taken with ``[*]``:
``any(lower(http.request.headers["x"][*]) eq "a")``.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import Any

from originguard.protect.rules.errors import RuleTypeError
from originguard.protect.rules.matchers import compile_regex
from originguard.protect.rules.schema import BOOL, INT, IP, STRING, Kind, Type
from originguard.protect.rules.syntax import Call
from originguard.protect.rules.values import Val, combine, lift
from originguard.protect.rules.view import RequestView

Builder = Callable[[Call, list[Val]], Val]


def _fail(call: Call, index: int | None, message: str) -> RuleTypeError:
    if index is None or index >= len(call.args):
        return RuleTypeError(message, call.pos, call.end)
    node = call.args[index]
    return RuleTypeError(message, node.pos, node.end)


def _arity(call: Call, args: list[Val], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise _fail(call, None, f"{call.name}() takes {want} arguments, got {len(args)}")


def _expect(call: Call, args: list[Val], index: int, *types: Type, each_ok: bool = False) -> Val:
    arg = args[index]
    if arg.type not in types:
        wanted = " or ".join(str(t) for t in types)
        raise _fail(
            call, index, f"{call.name}() argument {index + 1} must be {wanted}, not {arg.type}"
        )
    if arg.each and not each_ok:
        raise _fail(call, index, f"{call.name}() argument {index + 1} cannot use [*] here")
    return arg


def _expect_const(call: Call, args: list[Val], index: int, type_: Type) -> Any:
    arg = _expect(call, args, index, type_)
    if not arg.is_const:
        raise _fail(call, index, f"{call.name}() argument {index + 1} must be a literal")
    return arg.const


def _string_map(op: Callable[[str], Any], result: Type) -> Builder:
    """One string in (element-wise through [*]), one value out."""

    def build(call: Call, args: list[Val]) -> Val:
        _arity(call, args, 1)
        return lift(_expect(call, args, 0, STRING, each_ok=True), op, result)

    return build


def _len(call: Call, args: list[Val]) -> Val:
    _arity(call, args, 1)
    arg = args[0]
    if arg.type.kind is Kind.ARRAY and not arg.each:
        return lift(arg, len, INT)
    return lift(_expect(call, args, 0, STRING, each_ok=True), len, INT)


def _affix(method: Callable[[str, str], bool]) -> Builder:
    def build(call: Call, args: list[Val]) -> Val:
        _arity(call, args, 2)
        subject = _expect(call, args, 0, STRING, each_ok=True)
        _expect(call, args, 1, STRING)
        if args[1].is_const:
            affix: str = args[1].const
            return lift(subject, lambda s: method(s, affix), BOOL)
        if subject.each:
            raise _fail(call, 1, f"{call.name}() needs a literal here when argument 1 uses [*]")
        return combine(args, method, BOOL)

    return build


def _concat(call: Call, args: list[Val]) -> Val:
    if not args:
        raise _fail(call, None, "concat() takes at least one argument")
    first = args[0].type
    if first.kind is Kind.ARRAY:
        for i in range(len(args)):
            _expect(call, args, i, first)
        return combine(args, lambda *xs: [x for arr in xs for x in arr], first)
    for i in range(len(args)):
        _expect(call, args, i, STRING)
    return combine(args, lambda *xs: "".join(xs), STRING)


def _substring(call: Call, args: list[Val]) -> Val:
    # substring(field, start[, end]): byte offsets; negative counts from the end.
    _arity(call, args, 2, 3)
    subject = _expect(call, args, 0, STRING, each_ok=True)
    start: int = _expect_const(call, args, 1, INT)
    end: int | None = _expect_const(call, args, 2, INT) if len(args) == 3 else None
    return lift(subject, lambda s: s[start:end], STRING)


def _to_string(call: Call, args: list[Val]) -> Val:
    _arity(call, args, 1)
    arg = _expect(call, args, 0, INT, BOOL, IP, STRING, each_ok=True)
    if arg.type == BOOL:
        return lift(arg, lambda b: "true" if b else "false", STRING)
    return lift(arg, str, STRING)


def _quantifier(name: str, reduce: Callable[[Any], bool]) -> Builder:
    def build(call: Call, args: list[Val]) -> Val:
        _arity(call, args, 1)
        arg = args[0]
        if arg.type != BOOL or not arg.each:
            raise _fail(
                call,
                0,
                f"{name}() takes a comparison over an array with [*],"
                f' e.g. {name}(http.request.headers["x"][*] eq "v")',
            )
        f = arg.fn

        def fn(view: RequestView) -> bool:
            return reduce(f(view))

        return Val(BOOL, fn)

    return build


# "r" stops after this many passes: each is linear, but "%2525...41" needs one per level, so
# unbounded repetition let one request cost seconds (quadratic in its length).
MAX_DECODE_PASSES = 8


def _url_decode(call: Call, args: list[Val]) -> Val:
    # url_decode(source[, options]): "+" and %XX decode; option "r" repeats until stable,
    # option "u" also decodes %uXXXX (to UTF-8 bytes, shown latin-1 like every string).
    _arity(call, args, 1, 2)
    subject = _expect(call, args, 0, STRING, each_ok=True)
    options: str = _expect_const(call, args, 1, STRING) if len(args) == 2 else ""
    if set(options) - {"r", "u"}:
        raise _fail(call, 1, 'url_decode() options are "r" (recursive) and "u" (%uXXXX)')
    recursive, unicode = "r" in options, "u" in options

    def decode(s: str) -> str:
        out = _percent_decode(s, unicode)
        passes = 1
        while recursive and out != s and passes < MAX_DECODE_PASSES:
            s, out = out, _percent_decode(out, unicode)
            passes += 1
        return out

    return lift(subject, decode, STRING)


_HEX = frozenset("0123456789abcdefABCDEF")


def _percent_decode(s: str, unicode: bool) -> str:
    if "%" not in s and "+" not in s:
        return s
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "+":
            out.append(" ")
        elif c == "%" and i + 2 < n and s[i + 1] in _HEX and s[i + 2] in _HEX:
            out.append(chr(int(s[i + 1 : i + 3], 16)))
            i += 3
            continue
        elif (
            c == "%" and unicode and s[i + 1 : i + 2] in ("u", "U")
            and len(s[i + 2 : i + 6]) == 4 and set(s[i + 2 : i + 6]) <= _HEX
        ):  # fmt: skip
            out.append(chr(int(s[i + 2 : i + 6], 16)).encode("utf-8", "replace").decode("latin-1"))
            i += 6
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _regex_replace(call: Call, args: list[Val]) -> Val:
    # regex_replace(source, regex, replacement): the first match only; ${N} is group N.
    _arity(call, args, 3)
    subject = _expect(call, args, 0, STRING, each_ok=True)
    pattern: str = _expect_const(call, args, 1, STRING)
    replacement: str = _expect_const(call, args, 2, STRING)
    try:
        regex = compile_regex(pattern)
    except ValueError as exc:
        raise _fail(call, 1, str(exc)) from None
    template = _parse_template(call, replacement, regex.groups)

    def replace(s: str) -> str:
        m = regex.search(s)
        if m is None:
            return s
        parts = [piece if isinstance(piece, str) else (m.group(piece) or "") for piece in template]
        return s[: m.start()] + "".join(parts) + s[m.end() :]

    return lift(subject, replace, STRING)


def _parse_template(call: Call, text: str, groups: int) -> list[str | int]:
    pieces: list[str | int] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            pieces.append("$")
            i += 2
        elif text.startswith("${", i):
            close = text.find("}", i)
            number = text[i + 2 : close] if close > 0 else ""
            if not number.isdigit() or int(number) > groups:
                raise _fail(
                    call, 2, f"replacement refers to a group that does not exist: {text[i:]}"
                )
            pieces.append(int(number))
            i = close + 1
        else:
            pieces.append(text[i])
            i += 1
    return pieces


def _cidr(call: Call, args: list[Val]) -> Val:
    # cidr(address, ipv4_bits, ipv6_bits): the network address of the enclosing prefix.
    _arity(call, args, 3)
    address = _expect(call, args, 0, IP)
    v4: int = _expect_const(call, args, 1, INT)
    v6: int = _expect_const(call, args, 2, INT)
    if not 1 <= v4 <= 32:
        raise _fail(call, 1, "cidr() IPv4 prefix length must be 1 to 32")
    if not 1 <= v6 <= 128:
        raise _fail(call, 2, "cidr() IPv6 prefix length must be 1 to 128")

    def network(ip: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
        bits = v4 if ip.version == 4 else v6
        return ip_network((ip, bits), strict=False).network_address

    return lift(address, network, IP)


FUNCTIONS: dict[str, Builder] = {
    "lower": _string_map(str.lower, STRING),
    "upper": _string_map(str.upper, STRING),
    "len": _len,
    "starts_with": _affix(str.startswith),
    "ends_with": _affix(str.endswith),
    "concat": _concat,
    "substring": _substring,
    "to_string": _to_string,
    "url_decode": _url_decode,
    "regex_replace": _regex_replace,
    "cidr": _cidr,
    "any": _quantifier("any", any),
    "all": _quantifier("all", all),
}
