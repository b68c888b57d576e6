"""Parsing of the fields caching depends on: Cache-Control and the fields targeted at this
cache (RFC 9213 CDN-Cache-Control, Surrogate-Control), HTTP-dates, Age, delta-seconds.

Everything here is tolerant of bad input and never raises on it: an unusable value becomes
"absent" or, where freshness is at stake, "stale" (RFC 9111 §4.2.1, §5.3).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from email.utils import formatdate

Headers = list[tuple[bytes, bytes]]

# RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2^31.
DELTA_MAX = 2147483648
_DIGITS = re.compile(rb"[0-9]+")


def values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> Iterator[bytes]:
    """Every value of the lower-case field `name`, in order."""
    for key, value in headers:
        if key == name:
            yield value


def first(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of the lower-case field `name`, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def has(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(key == name for key, _ in headers)


def parse_delta(text: bytes) -> int | None:
    """delta-seconds = 1*DIGIT (RFC 9111 §1.2.2); anything else is None. Capped at 2^31."""
    if not _DIGITS.fullmatch(text):
        return None
    if len(text) > 10:  # more digits than 2^31 needs: cap without converting huge text
        return DELTA_MAX if text.lstrip(b"0") else 0
    return min(int(text), DELTA_MAX)


def split_list(value: bytes) -> Iterator[bytes]:
    """Members of a comma-separated list (RFC 9110 §5.6.1), commas inside quotes kept."""
    start = 0
    quoted = False
    escaped = False
    for i, byte in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and byte == 0x5C:  # backslash
            escaped = True
        elif byte == 0x22:  # DQUOTE
            quoted = not quoted
        elif byte == 0x2C and not quoted:  # comma
            member = value[start:i].strip()
            if member:
                yield member
            start = i + 1
    member = value[start:].strip()
    if member:
        yield member


def _unquote(text: bytes) -> bytes | None:
    """The content of a quoted-string, or None when it is not one."""
    if len(text) < 2 or text[:1] != b'"' or text[-1:] != b'"':
        return None
    return re.sub(rb"\\(.)", rb"\1", text[1:-1])


@dataclass(frozen=True, slots=True)
class CacheControl:
    """Directives of a request or response Cache-Control (RFC 9111 §5.2).

    Seconds fields are None when absent. A freshness directive with an unusable value is kept
    as 0, so the response is treated as stale rather than guessed fresh (RFC 9111 §4.2.1).
    """

    max_age: int | None = None
    s_maxage: int | None = None
    no_store: bool = False
    no_cache: bool = False
    no_cache_fields: frozenset[bytes] = frozenset()  # no-cache="a, b": only these fields
    private: bool = False
    private_fields: frozenset[bytes] = frozenset()  # private="a": only these fields
    public: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    no_transform: bool = False
    immutable: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    only_if_cached: bool = False
    must_understand: bool = False
    max_stale: int | None = None  # request: DELTA_MAX when given without a value ("any")
    min_fresh: int | None = None
    # Read from a field targeted at this cache: Cache-Control and Expires do not apply to it
    # (RFC 9213 §2.2).
    targeted: bool = False

    @property
    def forbids_stale(self) -> bool:
        """RFC 9111 §4.2.4 / §5.2.2.2, .8, .10: a shared cache must not serve this stale."""
        return (
            self.must_revalidate
            or self.proxy_revalidate
            or self.s_maxage is not None
            or self.no_cache
        )


EMPTY = CacheControl()

_SECONDS = {
    b"max-age": "max_age",
    b"s-maxage": "s_maxage",
    b"stale-while-revalidate": "stale_while_revalidate",
    b"stale-if-error": "stale_if_error",
    b"min-fresh": "min_fresh",
}
_FLAGS = {
    b"no-store": "no_store",
    b"public": "public",
    b"must-revalidate": "must_revalidate",
    b"proxy-revalidate": "proxy_revalidate",
    b"no-transform": "no_transform",
    b"immutable": "immutable",
    b"only-if-cached": "only_if_cached",
    b"must-understand": "must_understand",
}


def _field_names(argument: bytes) -> frozenset[bytes]:
    return frozenset(name.lower() for name in split_list(argument))


def parse_cache_control(header_values: Iterable[bytes]) -> CacheControl:
    """Parse every Cache-Control field line into one CacheControl.

    Directive names are case-insensitive; arguments may be tokens or quoted strings (RFC 9111
    §5.2: recipients accept both forms). For a repeated directive the first occurrence wins
    (RFC 9111 §4.2.1). Whitespace around "=" is not in the grammar: such a value is unusable.
    """
    found: dict[str, object] = {}
    for line in header_values:
        for member in split_list(line):
            name, eq, raw = member.partition(b"=")
            argument: bytes | None = None
            usable = True
            if eq:
                if name != name.rstrip() or raw != raw.lstrip():
                    usable = False
                argument = _unquote(raw) if raw[:1] == b'"' else raw
                if argument is None:
                    usable = False
            key = name.strip().lower()
            _apply(found, key, argument if usable else None, bool(eq), usable)
    return CacheControl(**found)  # type: ignore[arg-type]


def _apply(
    found: dict[str, object], key: bytes, argument: bytes | None, has_arg: bool, usable: bool
) -> None:
    if key in _SECONDS:
        attr = _SECONDS[key]
        if attr in found:
            return
        seconds = parse_delta(argument) if argument is not None else None
        if seconds is None:
            # An unusable freshness value means stale (§4.2.1); an unusable SWR/SIE/min-fresh
            # value grants nothing, which 0 also expresses.
            seconds = 0
        found[attr] = seconds
    elif key in _FLAGS:
        found[_FLAGS[key]] = True
    elif key == b"no-cache":
        if has_arg and argument is not None and usable:
            if not found.get("no_cache"):
                names = found.get("no_cache_fields", frozenset())
                assert isinstance(names, frozenset)
                found["no_cache_fields"] = names | _field_names(argument)
        else:
            # RFC 9111 §5.2.2.4: unqualified no-cache covers the whole response; it wins.
            found["no_cache"] = True
            found["no_cache_fields"] = frozenset()
    elif key == b"private":
        if has_arg and argument is not None and usable:
            if not found.get("private"):
                names = found.get("private_fields", frozenset())
                assert isinstance(names, frozenset)
                found["private_fields"] = names | _field_names(argument)
        else:
            found["private"] = True
            found["private_fields"] = frozenset()
    elif key == b"max-stale":
        if "max_stale" in found:
            return
        if not has_arg:
            found["max_stale"] = DELTA_MAX
        else:
            seconds = parse_delta(argument) if argument is not None else None
            found["max_stale"] = 0 if seconds is None else seconds


def cache_control(headers: Iterable[tuple[bytes, bytes]]) -> CacheControl:
    """The Cache-Control of a header list (an empty one when absent)."""
    lines = [value for name, value in headers if name == b"cache-control"]
    return parse_cache_control(lines) if lines else EMPTY


# --- fields targeted at this cache (RFC 9213) -------------------------------------------------

# The device token this edge announces in Surrogate-Capability and answers to in
# Surrogate-Control (W3C Edge Architecture Specification 1.0).
SURROGATE_TOKEN = b"originguard"
SURROGATE_CAPABILITY = (b"surrogate-capability", SURROGATE_TOKEN + b'="Surrogate/1.0"')


def edge_cache_control(resp_headers: Iterable[tuple[bytes, bytes]]) -> CacheControl:
    """The directives this edge follows for a response: those of the first field on its target
    list (CDN-Cache-Control, then Surrogate-Control) that applies, else Cache-Control.

    RFC 9213 §2.2: a cache uses the first targeted field with a valid, non-empty value and
    then ignores Cache-Control and Expires; a targeted field is still forwarded (§3)."""
    headers = list(resp_headers)
    for parse in (_cdn_cache_control, _surrogate_control):
        targeted = parse(headers)
        if targeted is not None:
            return targeted
    return cache_control(headers)


def _cdn_cache_control(headers: Headers) -> CacheControl | None:
    """CDN-Cache-Control, a Structured Fields Dictionary (RFC 9213 §2.1); None when absent,
    empty or unparsable (then it is ignored)."""
    lines = list(values(headers, b"cdn-cache-control"))
    if not lines:
        return None
    members = parse_dictionary(b",".join(lines))
    if not members:
        return None
    found: dict[str, object] = {}
    for key, value in members:
        if value is False:
            continue  # `directive=?0`: not given
        if value is True:
            _apply(found, key, None, False, True)
        elif isinstance(value, int):
            _apply(found, key, b"%d" % value, True, value >= 0)
        elif isinstance(value, bytes):
            _apply(found, key, value, True, True)
        else:  # a Decimal or an Inner List: a value no directive takes (§2.1: not consumed)
            _apply(found, key, None, True, False)
    return CacheControl(targeted=True, **found)  # type: ignore[arg-type]


_SURROGATE_MAX_AGE = re.compile(rb"(max-age=[0-9]+)\+[0-9]+", re.IGNORECASE)
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Directives whose presence makes Surrogate-Control this edge's policy; a field with only
# others (`content="ESI/1.0"`) leaves Cache-Control in charge.
_SURROGATE_POLICY = frozenset(
    {b"max-age", b"no-store", b"no-cache", b"private", b"must-revalidate"}
)


def _surrogate_control(headers: Headers) -> CacheControl | None:
    """Surrogate-Control (W3C Edge Architecture 1.0) as this edge reads it: Cache-Control
    syntax, where `directive;token` applies only to the surrogate named `token`. Directives
    targeted at this edge come first, so they win over untargeted ones. None when no
    directive of a caching policy applies here."""
    ours: list[bytes] = []
    everyone: list[bytes] = []
    for line in values(headers, b"surrogate-control"):
        for member in split_list(line):
            directive, semicolon, target = member.rpartition(b";")
            target = target.strip()
            if semicolon and _TOKEN.fullmatch(target):
                if target.lower() == SURROGATE_TOKEN:
                    ours.append(directive.strip())
            else:
                everyone.append(member)
    # `max-age=N+M`: M is a grace period this edge does not use; N is the freshness.
    applying = [_SURROGATE_MAX_AGE.sub(rb"\1", d) for d in ours + everyone]
    names = {d.partition(b"=")[0].strip().lower() for d in applying}
    if not names & _SURROGATE_POLICY:
        return None
    return replace(parse_cache_control([b", ".join(applying)]), targeted=True)


# --- Structured Fields Dictionary (RFC 8941 §4.2.2), as far as RFC 9213 needs it ------------

# A Decimal is a float; an Inner List or a Byte Sequence a tuple (no cache directive takes one).
SFValue = bool | int | float | bytes | tuple[object, ...]
_KEY = re.compile(rb"[a-z*][a-z0-9_.*-]*")
_NUMBER = re.compile(rb"-?[0-9]{1,15}(\.[0-9]{1,3})?")
_SF_TOKEN = re.compile(rb"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*")
_BYTES = re.compile(rb":[A-Za-z0-9+/=]*:")


class _SFError(ValueError):
    pass


def parse_dictionary(text: bytes) -> list[tuple[bytes, SFValue]] | None:
    """The members of a Dictionary in order (a repeated key keeps its first place and its
    last value), parameters dropped (RFC 9213 §2.1 ignores them); None when it does not
    parse. Strings and Tokens are both bytes: a cache directive reads either the same."""
    members: dict[bytes, SFValue] = {}
    pos = _skip(text, 0, b" ")
    try:
        while pos < len(text):
            match = _KEY.match(text, pos)
            if match is None:
                raise _SFError
            key, pos = match.group(), match.end()
            value: SFValue = True
            if text[pos : pos + 1] == b"=":
                value, pos = _item_or_list(text, pos + 1)
            else:
                pos = _parameters(text, pos)
            members[key] = value
            pos = _skip(text, pos, b" \t")
            if pos == len(text):
                break
            if text[pos : pos + 1] != b",":
                raise _SFError
            pos = _skip(text, pos + 1, b" \t")
            if pos == len(text):
                raise _SFError  # a trailing comma
    except _SFError:
        return None
    return list(members.items())


def _skip(text: bytes, pos: int, chars: bytes) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _item_or_list(text: bytes, pos: int) -> tuple[SFValue, int]:
    if text[pos : pos + 1] != b"(":
        value, pos = _bare_item(text, pos)
        return value, _parameters(text, pos)
    items: list[object] = []
    pos += 1
    while True:
        pos = _skip(text, pos, b" ")
        if text[pos : pos + 1] == b")":
            return tuple(items), _parameters(text, pos + 1)
        item, pos = _bare_item(text, pos)
        items.append(item)
        pos = _parameters(text, pos)
        if text[pos : pos + 1] not in (b" ", b")"):
            raise _SFError


def _parameters(text: bytes, pos: int) -> int:
    while text[pos : pos + 1] == b";":
        pos = _skip(text, pos + 1, b" ")
        match = _KEY.match(text, pos)
        if match is None:
            raise _SFError
        pos = match.end()
        if text[pos : pos + 1] == b"=":
            _, pos = _bare_item(text, pos + 1)
    return pos


def _bare_item(text: bytes, pos: int) -> tuple[SFValue, int]:
    first_byte = text[pos : pos + 1]
    if first_byte == b'"':
        return _string(text, pos + 1)
    if first_byte == b"?":
        if text[pos + 1 : pos + 2] in (b"0", b"1"):
            return text[pos + 1 : pos + 2] == b"1", pos + 2
        raise _SFError
    match = _NUMBER.match(text, pos)
    if match is not None:
        number = match.group()
        return (float(number) if b"." in number else int(number)), match.end()
    match = _SF_TOKEN.match(text, pos)
    if match is not None:
        return match.group(), match.end()
    match = _BYTES.match(text, pos)
    if match is not None:
        return (match.group(),), match.end()
    raise _SFError


def _string(text: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while pos < len(text):
        byte = text[pos]
        if byte == 0x5C:  # backslash: only \" and \\ are escapes
            if text[pos + 1 : pos + 2] not in (b'"', b"\\"):
                raise _SFError
            out += text[pos + 1 : pos + 2]
            pos += 2
        elif byte == 0x22:
            return bytes(out), pos + 1
        elif 0x20 <= byte <= 0x7E:
            out.append(byte)
            pos += 1
        else:
            raise _SFError
    raise _SFError


# --- HTTP-date (RFC 9110 §5.6.7) -------------------------------------------------------------

_MONTHS = {
    b"jan": 1, b"feb": 2, b"mar": 3, b"apr": 4, b"may": 5, b"jun": 6,
    b"jul": 7, b"aug": 8, b"sep": 9, b"oct": 10, b"nov": 11, b"dec": 12,
}  # fmt: skip
_DAY = rb"(?:mon|tue|wed|thu|fri|sat|sun)"
_LONG_DAY = rb"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MON = rb"([a-z]{3})"
_TIME = rb"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_IMF = re.compile(_DAY + rb", ([0-9]{2}) " + _MON + rb" ([0-9]{4}) " + _TIME + rb" gmt")
_RFC850 = re.compile(_LONG_DAY + rb", ([0-9]{2})-" + _MON + rb"-([0-9]{2}) " + _TIME + rb" gmt")
_ASCTIME = re.compile(_DAY + rb" " + _MON + rb" ([0-9 ][0-9]) " + _TIME + rb" ([0-9]{4})")


def parse_http_date(value: bytes, now: float | None = None) -> float | None:
    """Seconds since the epoch for an HTTP-date in any of its three formats, else None.

    Day and month names are matched case-insensitively (as deployed caches do). For the
    two-digit rfc850 year, RFC 9110 §5.6.7: a date "more than 50 years in the future" is read as
    the most recent past year with those digits; without `now` the year 2000 is the reference.
    """
    text = value.strip().lower()
    if len(text) > 40:
        return None
    match = _IMF.fullmatch(text)
    if match:
        day, mon, year, hh, mm, ss = match.groups()
        return _epoch(int(year), mon, int(day), int(hh), int(mm), int(ss))
    match = _RFC850.fullmatch(text)
    if match:
        day, mon, yy, hh, mm, ss = match.groups()
        this_year = 2000 if now is None else _year_of(now)
        year = this_year - this_year % 100 + int(yy)
        if year > this_year + 50:
            year -= 100
        return _epoch(year, mon, int(day), int(hh), int(mm), int(ss))
    match = _ASCTIME.fullmatch(text)
    if match:
        mon, day, hh, mm, ss, year = match.groups()
        return _epoch(int(year), mon, int(day.strip()), int(hh), int(mm), int(ss))
    return None


def _year_of(now: float) -> int:
    return time.gmtime(now).tm_year


def _epoch(year: int, mon: bytes, day: int, hh: int, mm: int, ss: int) -> float | None:
    month = _MONTHS.get(mon)
    if month is None or not 1 <= year <= 9999:  # beyond the calendar: an invalid date
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    if hh > 23 or mm > 59 or ss > 60:
        return None
    return float(calendar.timegm((year, month, day, hh, mm, min(ss, 59), 0, 0, 0)))


def format_http_date(when: float) -> bytes:
    """IMF-fixdate, the form senders must generate (RFC 9110 §5.6.7)."""
    return formatdate(when, usegmt=True).encode("ascii")


def date_field(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> float | None:
    """The first `name` field parsed as an HTTP-date, or None when absent or invalid."""
    raw = first(headers, name)
    return None if raw is None else parse_http_date(raw)


def age_field(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The Age value in seconds: 0 when absent, 2^31 when unusable, so the response is stale.

    Unusable: a non-numeric, negative or list value, or several Age field lines (RFC 9110
    §5.5 lets a recipient treat a repeated singleton field as invalid). This is stricter than
    RFC 9111 §5.1, which says to use the first member of a list and to ignore an invalid
    value; it is what http-cache-tests 0.4.5 requires of all but one of its Age cases
    (`age-parse-prefix` wants `0,7200` reused while `0, 0` and `0`+`7200` must not be, which
    no reading of the field reconciles)."""
    lines = list(values(headers, b"age"))
    if not lines:
        return 0
    if len(lines) > 1:
        return DELTA_MAX
    seconds = parse_delta(lines[0].strip())
    return DELTA_MAX if seconds is None else seconds
