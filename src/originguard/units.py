"""Durations, sizes and counts as written in the config file.

In code a duration is float seconds and a size is int bytes; in YAML they are readable strings
(``30s``, ``1h30m``, ``10MB``). Size units are binary, as in nginx: ``1KB`` is 1024 bytes, the
same as ``1KiB``.

Every parser checks its digits as ASCII ``0-9`` before converting them: Python's ``int()`` and
``float()`` also accept ``_``, a sign, surrounding spaces and non-ASCII digits such as ``٣``, none
of which belong in a config value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

__all__ = [
    "Count",
    "Decimal",
    "Duration",
    "Size",
    "TypeLabel",
    "format_duration",
    "format_size",
    "parse_count",
    "parse_decimal",
    "parse_duration",
    "parse_size",
]

# Longest run of digits accepted in one number: more than any sane value, and far below the
# point where converting text to an integer gets slow.
_MAX_DIGITS = 18

_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

# Duration units, largest first; components of a duration must appear in this order.
_DURATION_UNITS: dict[str, Fraction] = {
    "d": Fraction(86400),
    "h": Fraction(3600),
    "m": Fraction(60),
    "s": Fraction(1),
    "ms": Fraction(1, 1000),
}
_DURATION_RANK = {unit: rank for rank, unit in enumerate(_DURATION_UNITS)}

_KIB = 1024
_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": _KIB,
    "kb": _KIB,
    "kib": _KIB,
    "m": _KIB**2,
    "mb": _KIB**2,
    "mib": _KIB**2,
    "g": _KIB**3,
    "gb": _KIB**3,
    "gib": _KIB**3,
    "t": _KIB**4,
    "tb": _KIB**4,
    "tib": _KIB**4,
}

_DURATION_HINT = "expected seconds or a string like 250ms, 30s, 5m, 1h30m, 1d"
_SIZE_HINT = "expected bytes or a string like 512, 64KB, 10MB, 1GB (1KB = 1024 bytes)"


@dataclass(frozen=True)
class TypeLabel:
    """How the config reference names an annotated type (``duration``, ``size``)."""

    text: str


def _scan(text: str, start: int, allowed: frozenset[str]) -> int:
    """Return the index just past the run of `allowed` characters starting at `start`."""
    end = start
    while end < len(text) and text[end] in allowed:
        end += 1
    return end


def _digits_value(digits: str) -> int:
    # Callers pass only text already checked against _DIGITS, so int() sees plain ASCII digits.
    if len(digits) > _MAX_DIGITS:
        raise ValueError(f"number {digits!r} is too large")
    return int(digits)


def _scan_decimal(text: str, start: int) -> tuple[Fraction, int] | None:
    """Read ``DIGITS[.DIGITS]`` at `start`; return (value, end) or None if there is none."""
    end = _scan(text, start, _DIGITS)
    if end == start:
        return None
    value = Fraction(_digits_value(text[start:end]))
    if end < len(text) and text[end] == ".":
        frac_end = _scan(text, end + 1, _DIGITS)
        if frac_end == end + 1:
            return None
        frac = text[end + 1 : frac_end]
        value += Fraction(_digits_value(frac), 10 ** len(frac))
        end = frac_end
    return value, end


def _check_number(value: object, what: str) -> float | int | None:
    """Vet a YAML number: reject bools, negatives, NaN and infinities; None if not a number."""
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"expected {what}, not {value!r}")
        if value < 0:
            raise ValueError(f"{what} must not be negative, got {value!r}")
        return value
    return None


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string like ``250ms``, ``30s``, ``1h30m``, ``1d``.

    Units are ``d``, ``h``, ``m``, ``s`` and ``ms``, lower-case, each used at most once and
    largest first. A unitless string is seconds. Fractions are allowed (``1.5s``).
    """
    number = _check_number(value, "a duration")
    if number is not None:
        return float(number)
    if not isinstance(value, str):
        raise ValueError(f"{_DURATION_HINT}, got {type(value).__name__}")
    text = value
    bare = _scan_decimal(text, 0)
    if bare is not None and bare[1] == len(text):
        return float(bare[0])
    total = Fraction(0)
    position = 0
    last_rank = -1
    while position < len(text):
        scanned = _scan_decimal(text, position)
        if scanned is None:
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
        amount, position = scanned
        unit_end = _scan(text, position, _LETTERS)
        unit = text[position:unit_end]
        rank = _DURATION_RANK.get(unit)
        if rank is None:
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
        if rank <= last_rank:
            raise ValueError(f"invalid duration {value!r}: give each unit once, largest first")
        last_rank = rank
        total += amount * _DURATION_UNITS[unit]
        position = unit_end
    if position == 0:
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
    return float(total)


def format_duration(seconds: float) -> str:
    """The shortest exact unit form of `seconds`: ``30s``, ``5m``, ``250ms``, ``1.25s``."""
    if seconds == int(seconds):
        whole = int(seconds)
        for unit in ("d", "h", "m"):
            size = int(_DURATION_UNITS[unit])
            if whole and whole % size == 0:
                return f"{whole // size}{unit}"
        return f"{whole}s"
    millis = seconds * 1000
    if abs(millis - round(millis)) < 1e-9:
        return f"{round(millis)}ms"
    return f"{seconds:.9f}".rstrip("0") + "s"


def parse_size(value: object) -> int:
    """Bytes from an integer or a string like ``512``, ``64KB``, ``10MB``, ``1GB``, ``64KiB``.

    Units are binary whatever their spelling, as in nginx: K, KB and KiB all mean 1024 bytes.
    Unit letters are case-insensitive; the number must be whole.
    """
    if isinstance(value, float) and not isinstance(value, bool):
        raise ValueError(f"a size is a whole number of bytes, got {value!r}")
    number = _check_number(value, "a size")
    if number is not None:
        return int(number)
    if not isinstance(value, str):
        raise ValueError(f"{_SIZE_HINT}, got {type(value).__name__}")
    digits_end = _scan(value, 0, _DIGITS)
    unit_end = _scan(value, digits_end, _LETTERS)
    if digits_end == 0 or unit_end != len(value):
        raise ValueError(f"invalid size {value!r}: {_SIZE_HINT}")
    # The unit is checked to be ASCII letters before lower(), so no Unicode case folding applies.
    multiplier = _SIZE_UNITS.get(value[digits_end:].lower())
    if multiplier is None:
        raise ValueError(f"invalid size {value!r}: {_SIZE_HINT}")
    return _digits_value(value[:digits_end]) * multiplier


def format_size(size: int) -> str:
    """The largest exact binary unit form of `size`: ``32KB``, ``100MB``, ``1GB``, ``700B``."""
    for unit, multiplier in (("TB", _KIB**4), ("GB", _KIB**3), ("MB", _KIB**2), ("KB", _KIB)):
        if size and size % multiplier == 0:
            return f"{size // multiplier}{unit}"
    return f"{size}B"


def parse_count(value: object) -> int:
    """A non-negative whole number from an integer or a string of ASCII digits (no bools)."""
    if isinstance(value, float) and not isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    number = _check_number(value, "a whole number")
    if number is not None:
        return int(number)
    if not isinstance(value, str):
        raise ValueError(f"expected a whole number, got {type(value).__name__}")
    if not value or _scan(value, 0, _DIGITS) != len(value):
        raise ValueError(f"expected a whole number, got {value!r}")
    return _digits_value(value)


def parse_decimal(value: object) -> float:
    """A non-negative number from a YAML number or a string like ``0.25`` (no bools)."""
    number = _check_number(value, "a number")
    if number is not None:
        return float(number)
    if not isinstance(value, str):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    scanned = _scan_decimal(value, 0)
    if scanned is None or scanned[1] != len(value):
        raise ValueError(f"expected a number like 0.5, got {value!r}")
    return float(scanned[0])


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    TypeLabel("duration"),
]
"""Float seconds in code; ``30s``-style strings (or plain seconds) in YAML and in dumps."""

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    PlainSerializer(format_size, return_type=str, when_used="json"),
    TypeLabel("size"),
]
"""Int bytes in code; ``10MB``-style strings (or plain bytes) in YAML and in dumps."""

Count = Annotated[int, BeforeValidator(parse_count), TypeLabel("integer")]
"""A non-negative int that refuses booleans and loosely written strings."""

Decimal = Annotated[float, BeforeValidator(parse_decimal), TypeLabel("number")]
"""A non-negative float that refuses booleans, ``nan`` and ``inf``."""
