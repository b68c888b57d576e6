"""Compiled right-hand sides: IP/CIDR sets, integer sets with ranges, wildcards, regexes.

Regexes use RE2 (google-re2): matching is linear in the input, so no pattern can be a ReDoS.
Patterns are bounded in source length and in compiled program size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

import re2  # type: ignore[import-untyped]

MAX_PATTERN_LENGTH = 4096  # characters of regex source
MAX_PROGRAM_SIZE = 20_000  # RE2 instructions after compilation
_RE2_MAX_MEM = 8 << 20

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Table = tuple[tuple[int, frozenset[int]], ...]


class IpSet:
    """Membership in a union of networks: one hash probe per distinct prefix length."""

    __slots__ = ("_v4", "_v6")

    def __init__(self, networks: Iterable[Network]) -> None:
        tables: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        for net in networks:
            shift = net.max_prefixlen - net.prefixlen
            tables[net.version].setdefault(shift, set()).add(int(net.network_address) >> shift)
        self._v4 = tuple((shift, frozenset(s)) for shift, s in sorted(tables[4].items()))
        self._v6 = tuple((shift, frozenset(s)) for shift, s in sorted(tables[6].items()))

    @property
    def tables(self) -> tuple[Table, Table]:
        """(IPv4, IPv6) lists of (shift, prefixes): an address ``n`` is in the set when some
        ``n >> shift in prefixes``."""
        return self._v4, self._v6

    def __contains__(self, address: object) -> bool:
        if isinstance(address, IPv4Address):
            table = self._v4
        elif isinstance(address, IPv6Address):
            table = self._v6
        else:
            return False
        n = int(address)
        for shift, prefixes in table:
            if n >> shift in prefixes:
                return True
        return False


class IntSet:
    """Membership in a set of integers and inclusive ranges ``a..b``."""

    __slots__ = ("_values", "_ranges")

    def __init__(self, values: Iterable[int], ranges: Iterable[tuple[int, int]]) -> None:
        self._values = frozenset(values)
        self._ranges = tuple(ranges)

    def __contains__(self, value: object) -> bool:
        if value in self._values:
            return True
        if isinstance(value, int):
            for low, high in self._ranges:
                if low <= value <= high:
                    return True
        return False


def parse_network(text: str) -> Network:
    """An IP address or CIDR as a network; raise ValueError when it is neither."""
    return ip_network(text, strict=False)


class Wildcard:
    """Cloudflare's ``wildcard``: the whole value matches; ``*`` is any run, ``\\*`` a star.

    Matching splits the pattern at its stars and finds the pieces left to right, which is
    exact for star-only globs and linear in the value (no regex, no backtracking).
    """

    __slots__ = ("_pieces", "_fold")

    def __init__(self, pattern: str, case_sensitive: bool) -> None:
        pieces = split_wildcard(pattern)
        self._fold = not case_sensitive
        self._pieces = tuple(p.lower() for p in pieces) if self._fold else tuple(pieces)

    @property
    def pieces(self) -> tuple[str, ...]:
        """The literal pieces between the stars (lower case when the match folds case)."""
        return self._pieces

    @property
    def folds_case(self) -> bool:
        return self._fold

    def matches(self, value: str) -> bool:
        pieces = self._pieces
        if self._fold:
            value = value.lower()
        if len(pieces) == 1:
            return value == pieces[0]
        first, last = pieces[0], pieces[-1]
        end = len(value) - len(last)
        if end < len(first) or not value.startswith(first) or not value.endswith(last):
            return False
        at = len(first)
        for piece in pieces[1:-1]:
            found = value.find(piece, at, end)
            if found < 0:
                return False
            at = found + len(piece)
        return True


def split_wildcard(pattern: str) -> list[str]:
    """Literal pieces between unescaped stars; raise ValueError("...", offset) on errors."""
    pieces: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt not in ("*", "\\"):
                raise ValueError("in a wildcard only \\* and \\\\ may be escaped", i)
            current.append(nxt)
            i += 2
            continue
        if c == "*":
            if pattern[i + 1 : i + 2] == "*":
                raise ValueError("'**' is not allowed in a wildcard pattern", i)
            pieces.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    pieces.append("".join(current))
    return pieces


def raw_matcher(regex: Any) -> tuple[Callable[..., Any], object] | None:
    """``(match, anchor)``: RE2's own ``Match(anchor, utf8, 0, len(utf8))`` for ``regex``,
    which returns the match span first, ``(-1, -1)`` when there is none.

    ``regex.search(s) is not None`` is exactly ``match(anchor, s.encode(), 0, len(...))[0][0]
    >= 0`` (google-re2's search encodes and makes this same call), without the wrapper's
    per-call generator and offset decoding: about a fifth of the cost. None when the installed
    google-re2 is laid out differently (the caller then uses ``search``).
    """
    inner = getattr(regex, "_regexp", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    match = getattr(inner, "Match", None)
    if match is None or anchor is None:
        return None
    try:
        probe = match(anchor, b"", 0, 0)
        if not (isinstance(probe[0], tuple) and len(probe[0]) == 2):
            return None
    except Exception:  # noqa: BLE001 - any surprise means: use the public API
        return None
    return match, anchor


def compile_alternation(patterns: Iterable[str]) -> Any | None:
    """One RE2 regex that finds a match exactly when one of ``patterns`` would: each pattern
    in its own group, so flags like ``(?i)`` stay inside it. A rule set searches it once per
    request and tries the patterns one by one only when it matches. None when a pattern could
    leak out of its group (``\\Q`` quotes to the end) or the union is too big for RE2.
    """
    patterns = list(patterns)
    if any("\\Q" in pattern for pattern in patterns):
        return None
    try:
        # Each pattern is within the limits already; RE2's memory bound still applies.
        return compile_regex("|".join(f"(?:{pattern})" for pattern in patterns), bounded=False)
    except ValueError:
        return None


def compile_regex(pattern: str, *, bounded: bool = True) -> Any:
    """An RE2 regex object for ``pattern``; raise ValueError with a readable reason."""
    if bounded and len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"regular expression longer than {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False
    try:
        regex = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "rejected by RE2"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"invalid regular expression: {reason}") from None
    if bounded and regex.programsize > MAX_PROGRAM_SIZE:
        raise ValueError(
            f"regular expression too large ({regex.programsize} > {MAX_PROGRAM_SIZE} instructions)"
        )
    return regex
