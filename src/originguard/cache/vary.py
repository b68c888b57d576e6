"""Secondary cache keys from Vary (RFC 9111 §4.1), with Accept-Encoding reduced to the few
encodings the edge stores and Accept-Language put in a canonical order and case, so clients
that differ trivially share one variant."""

from __future__ import annotations

import re
from collections.abc import Iterable

from originguard.cache.control import Headers, split_list, values

MAX_VARY = 16  # field names considered; a response varying on more is keyed on the first 16
_Q_ZERO = re.compile(rb"q=0(?:\.0{0,3})?", re.IGNORECASE)


def vary_names(resp_headers: Headers) -> tuple[bytes, ...] | None:
    """Sorted, de-duplicated lower-case field names a response varies on; None for "*"."""
    names: set[bytes] = set()
    for line in values(resp_headers, b"vary"):
        for member in split_list(line):
            name = member.lower()
            if name == b"*":
                return None
            names.add(name)
    return tuple(sorted(names)[:MAX_VARY])


def normalise_accept_encoding(lines: list[bytes]) -> bytes:
    """The variant bucket of an Accept-Encoding: b"br", b"gzip" or b"identity"."""
    accepted: set[bytes] = set()
    refused: set[bytes] = set()
    for line in lines:
        for member in split_list(line):
            coding, _, params = member.partition(b";")
            coding = coding.strip().lower()
            q_zero = any(_Q_ZERO.fullmatch(p.strip()) for p in params.split(b";"))
            (refused if q_zero else accepted).add(b"gzip" if coding == b"x-gzip" else coding)
    for coding in (b"br", b"gzip"):
        if coding in accepted or (b"*" in accepted and coding not in refused):
            return coding
    return b"identity"


def normalise_accept_language(lines: list[bytes]) -> bytes:
    """Accept-Language as a variant key: language ranges lower-cased (RFC 4647 §2: they are
    case-insensitive) and ordered by weight, then name, since ranges of equal weight are
    equally preferred (RFC 9110 §12.4.2); ranges refused with q=0 are left out."""
    weighted: list[tuple[float, bytes]] = []
    for line in lines:
        for member in split_list(line):
            language, _, params = member.partition(b";")
            weight = 1.0
            for param in params.split(b";"):
                name, eq, value = param.strip().partition(b"=")
                if eq and name.strip().lower() == b"q":
                    try:
                        weight = float(value.strip())
                    except ValueError:
                        weight = 1.0
            if weight > 0:
                weighted.append((-weight, language.strip().lower()))
    return b",".join(
        language if weight == -1.0 else b"%s;q=%g" % (language, -weight)
        for weight, language in sorted(set(weighted))
    )


def _normalise(lines: list[bytes]) -> bytes:
    """Field lines combined as one list, whitespace around members dropped (§4.1 allows it)."""
    return b",".join(member for line in lines for member in split_list(line))


def vary_key(vary_header_values: Iterable[bytes], req_headers: Headers) -> bytes:
    """The secondary key of a request for a response varying on `vary_header_values` (field
    names, or raw Vary values). An absent field differs from an empty one (§4.1)."""
    names = sorted({m.lower() for v in vary_header_values for m in split_list(v)})
    parts: list[bytes] = []
    for name in names[:MAX_VARY]:
        lines = list(values(req_headers, name))
        if name == b"accept-encoding":
            parts.append(name + b"=" + normalise_accept_encoding(lines))
        elif name == b"accept-language" and lines:
            parts.append(name + b"=" + normalise_accept_language(lines).replace(b"\x00", b"%00"))
        elif lines:
            parts.append(name + b"=" + _normalise(lines).replace(b"\x00", b"%00"))
        else:
            parts.append(name + b"!")
    return b"\x00".join(parts)
