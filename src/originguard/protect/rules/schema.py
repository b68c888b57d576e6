"""Value types of the rules language and the fields an expression may read.

Each field is a name, a type and a getter ``(RequestView) -> value``. Scalar fields read the
view directly; derived maps (headers, cookies, query arguments) are built once per view and
memoised. Map fields hold ``dict[str, list[str]]``; a missing key reads as an empty array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter
from urllib.parse import unquote_to_bytes

from originguard.protect.rules.view import RequestView, response_key


class Kind(Enum):
    STRING = "String"
    INT = "Int"
    BOOL = "Bool"
    IP = "IP address"
    ARRAY = "Array"
    MAP = "Map"


@dataclass(frozen=True, slots=True)
class Type:
    kind: Kind
    elem: Type | None = None  # element type of an Array or Map

    def __str__(self) -> str:
        if self.elem is None:
            return self.kind.value
        return f"{self.kind.value}<{self.elem}>"


STRING = Type(Kind.STRING)
INT = Type(Kind.INT)
BOOL = Type(Kind.BOOL)
IP = Type(Kind.IP)
ARRAY_STRING = Type(Kind.ARRAY, STRING)
MAP_ARRAY_STRING = Type(Kind.MAP, ARRAY_STRING)

Getter = Callable[[RequestView], object]
Multimap = dict[str, list[str]]
EMPTY: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: Type
    get: Getter
    is_response: bool = False  # only meaningful once the origin answered (counting expressions)
    attribute: str | None = None  # the RequestView attribute it reads as is, if that is all


def _attribute(name: str, type_: Type, attribute: str) -> FieldSpec:
    """A field that is one attribute of the view (the rule-set compiler reads it inline)."""
    return FieldSpec(name, type_, attrgetter(attribute), attribute=attribute)


def _memo(key: str, compute: Callable[[RequestView], object]) -> Getter:
    def get(view: RequestView) -> object:
        return view.memoised(key, compute)

    return get


def _multimap(pairs: list[tuple[bytes, bytes]] | None) -> Multimap:
    result: Multimap = {}
    for name, value in pairs or ():
        result.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return result


def request_headers(view: RequestView) -> Multimap:
    return view.memoised("headers", lambda v: _multimap(v.headers))


def response_headers(view: RequestView) -> Multimap:
    return view.memoised(response_key("headers"), lambda v: _multimap(v.response_headers))


def _joined(name: str, separator: str) -> Getter:
    """A header's values joined as one string ("" when absent)."""

    def compute(view: RequestView) -> str:
        return separator.join(request_headers(view).get(name, EMPTY))

    return _memo("joined:" + name, compute)


def _cookies(view: RequestView) -> Multimap:
    # Cloudflare: cookie names are URL-decoded (values are not); equal names merge.
    result: Multimap = {}
    for header in request_headers(view).get("cookie", EMPTY):
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if not name and not sep:
                continue
            decoded = unquote_to_bytes(name.strip()).decode("latin-1")
            result.setdefault(decoded, []).append(value.strip())
    return result


def _args(view: RequestView) -> Multimap:
    # Cloudflare: "Decoding: No decoding performed" for http.request.uri.args.
    result: Multimap = {}
    for pair in view.query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            result.setdefault(name, []).append(value)
    return result


def _args_map(view: RequestView) -> Multimap:
    return view.memoised("args", _args)


def _extension(view: RequestView) -> str:
    segment = view.path.rpartition("/")[2]
    stem, dot, ext = segment.rpartition(".")
    return ext.lower() if dot and (stem or ext) else ""


def _flat(name: str, getter: Callable[[RequestView], Multimap], keys: bool) -> FieldSpec:
    """An Array<String> field listing a map's names (once per value) or its values."""

    def compute(view: RequestView) -> list[str]:
        mapping = getter(view)
        if keys:
            return [key for key, values in mapping.items() for _ in values]
        return [value for values in mapping.values() for value in values]

    return FieldSpec(name, ARRAY_STRING, _memo(name, compute))


def _fields() -> dict[str, FieldSpec]:
    specs = [
        _attribute("http.host", STRING, "host"),
        _attribute("http.request.method", STRING, "method"),
        _attribute("http.request.uri", STRING, "uri"),
        _attribute("http.request.uri.path", STRING, "path"),
        FieldSpec("http.request.uri.path.extension", STRING, _memo("ext", _extension)),
        _attribute("http.request.uri.query", STRING, "query"),
        FieldSpec(
            "http.request.full_uri",
            STRING,
            _memo("full_uri", lambda v: f"{v.scheme}://{v.host}{v.uri}"),
        ),
        FieldSpec("http.request.uri.args", MAP_ARRAY_STRING, _args_map),
        _flat("http.request.uri.args.names", _args_map, keys=True),
        _flat("http.request.uri.args.values", _args_map, keys=False),
        FieldSpec("http.request.headers", MAP_ARRAY_STRING, request_headers),
        _flat("http.request.headers.names", request_headers, keys=True),
        _flat("http.request.headers.values", request_headers, keys=False),
        FieldSpec("http.request.cookies", MAP_ARRAY_STRING, _memo("cookies", _cookies)),
        FieldSpec("http.cookie", STRING, _joined("cookie", "; ")),
        FieldSpec("http.user_agent", STRING, _joined("user-agent", ", ")),
        FieldSpec("http.referer", STRING, _joined("referer", ", ")),
        FieldSpec("http.x_forwarded_for", STRING, _joined("x-forwarded-for", ", ")),
        _attribute("http.request.version", STRING, "version"),
        _attribute("ip.src", IP, "client_ip"),
        FieldSpec("ip.src.country", STRING, lambda v: v.country or ""),
        FieldSpec("ip.src.asnum", INT, lambda v: v.asnum or 0),
        FieldSpec("ssl", BOOL, lambda v: v.scheme == "https"),
        FieldSpec("http.response.code", INT, lambda v: v.response_status or 0, True),
        FieldSpec("http.response.headers", MAP_ARRAY_STRING, response_headers, True),
    ]  # fmt: skip
    return {spec.name: spec for spec in specs}


FIELDS: dict[str, FieldSpec] = _fields()
