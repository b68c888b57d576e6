"""What the edge may cache, for how long, and what it tells the client: RFC 9111 with the
edge defaults of spec §8 (eligibility by extension, default TTLs per status, DYNAMIC vs BYPASS).

Every function is a pure function of its inputs and `now`; each decision is a value that
carries its reason. Conditional requests, ranges, Vary, tags and invalidation live in their
own modules and are re-exported here, so `cache.policy` is the one import the pipeline needs.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from originguard.cache.conditional import (
    evaluate_conditional,
    if_range_matches,
    matches_304,
    merge_304,
    revalidation_headers,
    weaken_etags,
)
from originguard.cache.control import (
    DELTA_MAX,
    CacheControl,
    Headers,
    age_field,
    cache_control,
    date_field,
    edge_cache_control,
    first,
    has,
    split_list,
    values,
)
from originguard.cache.invalidate import Target, invalidation_targets
from originguard.cache.ranges import (
    Ignore,
    Unsatisfiable,
    content_range,
    multipart_byteranges,
    parse_range,
    unsatisfied_range,
)
from originguard.cache.tags import parse_cache_tags, strip_for_client
from originguard.cache.vary import normalise_accept_encoding, vary_key, vary_names

__all__ = [
    "CacheLevel", "CacheRule", "CacheStatus", "EdgeTTLMode", "Eligibility", "Ignore",
    "NotStorable", "Reason", "StaleUse", "StatusTTL", "Storable", "Target", "Unsatisfiable",
    "cache_status_header", "content_range", "current_age", "evaluate_conditional",
    "freshness_lifetime", "if_range_matches", "initial_age", "invalidation_targets",
    "is_eligible", "is_fresh", "matches_304", "may_serve_stale", "merge_304",
    "multipart_byteranges", "normalise_accept_encoding", "parse_cache_tags", "parse_range",
    "revalidation_headers", "storability", "storable_headers", "strip_for_client",
    "unsatisfied_range", "vary_key", "vary_names", "weaken_etags",
]  # fmt: skip


class CacheStatus(enum.Enum):
    """The cache's part in one exchange, as spec §8.4 defines each value."""

    HIT = "HIT"  # served from cache
    MISS = "MISS"  # not in cache; fetched from the origin
    EXPIRED = "EXPIRED"  # in cache but expired; fetched from the origin synchronously
    STALE = "STALE"  # expired, served from cache because the origin could not be reached
    UPDATING = "UPDATING"  # expired, served stale while a background revalidation runs
    REVALIDATED = "REVALIDATED"  # expired; origin answered 304 to our conditional
    BYPASS = "BYPASS"  # eligible at request time, the origin response forbade caching
    DYNAMIC = "DYNAMIC"  # not eligible at request time
    NONE = "NONE"  # answered before the cache (firewall, redirect, ...)

    @property
    def header_value(self) -> bytes:
        """The OG-Cache-Status value."""
        return _STATUS_BYTES[self]


_STATUS_BYTES = {status: status.value.encode("ascii") for status in CacheStatus}


class Reason(enum.Enum):
    """Why a request was (not) eligible or a response (not) storable."""

    DEFAULT_EXTENSION = "default-extension"
    RULE_ELIGIBLE = "rule-eligible"
    METHOD = "method"
    REQUEST_BODY = "request-body"  # a GET with a body is not keyed on it: never cached
    RULE_BYPASS = "rule-bypass"
    QUERY_STRING = "query-string"  # cache level "basic" and a query string
    EXTENSION = "extension"  # not in the default list (HTML, JSON, no extension, ...)
    STATUS = "status"  # status not cacheable (or not by default without freshness)
    PARTIAL = "partial"  # 206: the store keeps whole representations only
    NO_STORE = "no-store"
    RULE_NO_STORE = "rule-no-store"  # status-code TTL of -1
    PRIVATE = "private"
    AUTHORIZATION = "authorization"
    VARY_STAR = "vary-star"
    SET_COOKIE = "set-cookie"
    TOO_LARGE = "too-large"
    DECEPTION_ARMOR = "deception-armor"
    NO_FRESHNESS = "no-freshness"  # edge TTL "bypass by default" and no origin freshness
    ZERO_TTL = "zero-ttl"  # no-cache / max-age=0 / past Expires with no validator to revalidate
    STORED = "stored"


class EdgeTTLMode(enum.Enum):
    """Cache rule `edge_ttl.mode` (spec §8.6)."""

    RESPECT_ORIGIN = "respect_origin"  # origin freshness, else rule default, else §8.2 table
    BYPASS_BY_DEFAULT = "bypass_by_default"  # origin freshness, else do not cache
    OVERRIDE_ORIGIN = "override_origin"  # ignore origin freshness; use the rule's default


class CacheLevel(enum.Enum):
    """Zone cache level (spec §8.1)."""

    AGGRESSIVE = "aggressive"  # query string in the key
    BASIC = "basic"  # cache only requests without a query string
    SIMPLIFIED = "simplified"  # ignore the query string (the key rule drops it)


@dataclass(frozen=True, slots=True)
class StatusTTL:
    """`status_code_ttl` entry: `ttl` seconds for statuses lo..hi; 0 = always revalidate,
    -1 = do not store."""

    lo: int
    hi: int
    ttl: int


@dataclass(frozen=True, slots=True)
class CacheRule:
    """The effective cache settings of one request: zone defaults with every matching cache
    rule applied in order, the last one winning (spec §8.6). The default is the zone default."""

    eligible: bool | None = None  # None: by extension; True: cache everything; False: bypass
    level: CacheLevel = CacheLevel.AGGRESSIVE
    edge_ttl_mode: EdgeTTLMode = EdgeTTLMode.RESPECT_ORIGIN
    edge_ttl: int | None = None  # OVERRIDE_ORIGIN: the TTL; RESPECT_ORIGIN: TTL if origin silent
    status_ttls: tuple[StatusTTL, ...] = ()
    serve_stale_while_updating: bool = True
    always_online: bool = False
    respect_strong_etags: bool = False
    cache_deception_armor: bool = False
    max_object_size: int = 512 * 1024 * 1024
    heuristic_cap: int = 86400  # upper bound of the 10% Last-Modified heuristic
    default_ttls: bool = True  # spec §8.2 TTLs by status when the origin gives no freshness

    def status_ttl(self, status: int) -> int | None:
        """The status-code TTL for `status`; a 304 without its own inherits the 200's."""
        for entry in self.status_ttls:
            if entry.lo <= status <= entry.hi:
                return entry.ttl
        if status == 304:
            return self.status_ttl(200)
        return None

    def explicit_ttl(self, status: int) -> int | None:
        """A TTL this rule sets regardless of origin headers, if any."""
        ttl = self.status_ttl(status)
        if ttl is not None:
            return ttl
        if self.edge_ttl_mode is EdgeTTLMode.OVERRIDE_ORIGIN and self.edge_ttl is not None:
            return self.edge_ttl
        return None


DEFAULT_RULE = CacheRule()

# Spec §8.1: eligibility by file extension, not MIME type.
DEFAULT_EXTENSIONS = frozenset(
    b"7z avi avif apk bin bmp bz2 class css csv doc docx dmg ejs eot eps exe flac gif gz ico "
    b"iso jar jpg jpeg js mid midi mkv mp3 mp4 ogg otf pdf pict pls png ppt pptx ps rar svg "
    b"svgz swf tar tif tiff ttf webm webp woff woff2 xls xlsx zip zst".split()
)

# Spec §8.2: edge TTL when the origin sends no Cache-Control/Expires.
DEFAULT_TTLS = {200: 7200, 206: 7200, 301: 7200, 302: 1200, 303: 1200, 404: 180, 410: 180}

# RFC 9110 §15.1: statuses heuristically cacheable.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})

# Statuses whose semantics the cache understands well enough to store (RFC 9111 §3).
UNDERSTOOD_STATUSES = frozenset(
    [*range(200, 205), 206, *range(300, 304), 307, 308, *range(400, 418), 421, *range(422, 427),
     428, 429, 431, 451, *range(500, 506)]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Whether a request may be answered from or stored into the cache, and why."""

    eligible: bool
    reason: Reason

    @property
    def status(self) -> CacheStatus | None:
        """DYNAMIC when ineligible; None when the lookup decides."""
        return None if self.eligible else CacheStatus.DYNAMIC


def extension(path: bytes) -> bytes:
    """The lower-case extension of the last path segment, b"" when there is none."""
    segment = path.rpartition(b"/")[2]
    stem, dot, ext = segment.rpartition(b".")
    return ext.lower() if dot and stem else b""


def is_eligible(
    method: bytes,
    path: bytes,
    rule_overrides: CacheRule | None = None,
    *,
    query: bytes = b"",
    has_body: bool = False,
) -> Eligibility:
    """Request-time eligibility (spec §8.1, §8.6). A HEAD is eligible like a GET: the origin
    is asked with GET and the full object stored. Never raises."""
    rule = rule_overrides or DEFAULT_RULE
    if method not in (b"GET", b"HEAD"):
        return Eligibility(False, Reason.METHOD)
    if has_body:
        return Eligibility(False, Reason.REQUEST_BODY)
    if rule.eligible is False:
        return Eligibility(False, Reason.RULE_BYPASS)
    if rule.level is CacheLevel.BASIC and query:
        return Eligibility(False, Reason.QUERY_STRING)
    if rule.eligible is True:
        return Eligibility(True, Reason.RULE_ELIGIBLE)
    if extension(path) in DEFAULT_EXTENSIONS or path == b"/robots.txt":
        return Eligibility(True, Reason.DEFAULT_EXTENSION)
    return Eligibility(False, Reason.EXTENSION)


@dataclass(frozen=True, slots=True)
class Storable:
    """The response may be stored; `strip_fields` are not stored (Set-Cookie when a rule's
    explicit TTL says so, `private="field"` names); `always_revalidate` marks no-cache and
    zero-TTL objects that are stored only to be revalidated."""

    strip_fields: frozenset[bytes] = frozenset()
    always_revalidate: bool = False
    reason: Reason = Reason.STORED


@dataclass(frozen=True, slots=True)
class NotStorable:
    """The response must not be stored. `status` is what the exchange reports: BYPASS in
    general, MISS for Set-Cookie under an "eligible" rule without an explicit TTL (§8.3)."""

    reason: Reason
    status: CacheStatus = CacheStatus.BYPASS


# Spec §8.1 "cache deception armor": a static extension must match the Content-Type.
_ARMOR_TYPES: dict[bytes, tuple[bytes, ...]] = {
    b"css": (b"text/css",),
    b"js": (b"application/javascript", b"text/javascript", b"application/x-javascript"),
    b"pdf": (b"application/pdf",),
    b"csv": (b"text/csv", b"text/plain"),
    b"svg": (b"image/svg+xml",),
}
_ARMOR_FAMILIES: dict[bytes, bytes] = {
    **{ext: b"image/" for ext in (b"avif", b"bmp", b"gif", b"ico", b"jpg", b"jpeg", b"png",
                                  b"tif", b"tiff", b"webp")},
    **{ext: b"video/" for ext in (b"avi", b"mkv", b"mp4", b"webm")},
    **{ext: b"audio/" for ext in (b"flac", b"mid", b"midi", b"mp3", b"ogg")},
}  # fmt: skip
_NEVER_STATIC = (b"text/html", b"application/xhtml+xml", b"application/json")


def _armor_allows(path: bytes, content_type: bytes | None) -> bool:
    ext = extension(path)
    if ext not in DEFAULT_EXTENSIONS:
        return True
    mime = (content_type or b"").partition(b";")[0].strip().lower()
    if ext in _ARMOR_TYPES:
        return mime in _ARMOR_TYPES[ext]
    if ext in _ARMOR_FAMILIES:
        return mime.startswith(_ARMOR_FAMILIES[ext]) or mime == b"application/octet-stream"
    return mime not in _NEVER_STATIC


def _has_explicit_freshness(cc: CacheControl, resp_headers: Headers) -> bool:
    if cc.s_maxage is not None or cc.max_age is not None:
        return True
    return not cc.targeted and has(resp_headers, b"expires")  # RFC 9213 §2.2


def _has_validator(resp_headers: Headers) -> bool:
    return has(resp_headers, b"etag") or has(resp_headers, b"last-modified")


def storability(
    status: int,
    req_headers: Headers,
    resp_headers: Headers,
    rule: CacheRule | None = None,
    *,
    path: bytes = b"",
    response_time: float = 0.0,
) -> Storable | NotStorable:
    """May a shared cache store this response to an eligible request (RFC 9111 §3, spec §8.3)?"""
    rule = rule or DEFAULT_RULE
    if status == 206:
        return NotStorable(Reason.PARTIAL)
    if not 200 <= status <= 599 or status == 304:
        return NotStorable(Reason.STATUS)
    req_cc = cache_control(req_headers)
    cc = edge_cache_control(resp_headers)
    understood = status in UNDERSTOOD_STATUSES
    if cc.must_understand and not understood:  # RFC 9111 §3, §5.2.2.3
        return NotStorable(Reason.STATUS)
    if cc.no_store or req_cc.no_store:  # RFC 9111 §3 and §5.2.1.5
        return NotStorable(Reason.NO_STORE)
    explicit_ttl = rule.explicit_ttl(status)
    if explicit_ttl is not None and explicit_ttl < 0:
        return NotStorable(Reason.RULE_NO_STORE)
    if cc.private:  # RFC 9111 §5.2.2.7: a shared cache must not store it
        return NotStorable(Reason.PRIVATE)
    if has(req_headers, b"authorization") and not (
        cc.public or cc.must_revalidate or cc.s_maxage is not None
    ):  # RFC 9111 §3.5
        return NotStorable(Reason.AUTHORIZATION)
    if any(name == b"*" for name in _vary_members(resp_headers)):
        return NotStorable(Reason.VARY_STAR)  # RFC 9111 §4.1: always fails to match
    length = first(resp_headers, b"content-length")
    if length is not None and length.strip().isdigit() and (
        len(length.strip()) > 15 or int(length) > rule.max_object_size
    ):
        return NotStorable(Reason.TOO_LARGE)
    if rule.cache_deception_armor and not _armor_allows(path, first(resp_headers, b"content-type")):
        return NotStorable(Reason.DECEPTION_ARMOR)
    strip = set(cc.private_fields)
    if has(resp_headers, b"set-cookie"):
        if explicit_ttl is None:
            # Spec §8.3: Set-Cookie is kept and nothing stored; under an "eligible" rule
            # without a TTL that shows as MISS every time, otherwise as BYPASS.
            status_shown = CacheStatus.MISS if rule.eligible is True else CacheStatus.BYPASS
            return NotStorable(Reason.SET_COOKIE, status_shown)
        strip.add(b"set-cookie")
    if explicit_ttl is None:
        explicit = _has_explicit_freshness(cc, resp_headers)
        if rule.edge_ttl_mode is EdgeTTLMode.BYPASS_BY_DEFAULT and not explicit:
            return NotStorable(Reason.NO_FRESHNESS)
        if not understood and not (explicit or cc.public):
            # RFC 9111 §3: a status the cache does not know is stored only when the response
            # says how (explicit freshness, or `public` allowing the heuristic).
            return NotStorable(Reason.STATUS)
        if not explicit:
            if _fallback_lifetime(status, cc, resp_headers, rule, response_time) is None:
                return NotStorable(Reason.STATUS)  # spec §8.2: "anything else: not cached"
    lifetime = freshness_lifetime(status, resp_headers, rule, response_time=response_time)
    if lifetime <= 0 and not _has_validator(resp_headers):
        # Spec §8.3 stores no-cache/max-age=0 only to revalidate each time; without a
        # validator every use would be a full fetch, so storing gains nothing.
        return NotStorable(Reason.ZERO_TTL)
    return Storable(frozenset(strip), always_revalidate=lifetime <= 0)


def _vary_members(headers: Headers) -> Iterable[bytes]:
    for line in values(headers, b"vary"):
        yield from split_list(line)


# RFC 9110 §7.6.1 hop-by-hop fields and RFC 9111 §3.1: not stored.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
     b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization"}
)  # fmt: skip


def storable_headers(resp_headers: Headers, decision: Storable) -> Headers:
    """The header fields to store: without hop-by-hop fields, fields named in Connection,
    the origin's Server (never shown to visitors), and the decision's stripped fields."""
    drop = set(_HOP_BY_HOP) | decision.strip_fields | {b"server"}
    for line in values(resp_headers, b"connection"):
        drop.update(name.lower() for name in split_list(line))
    return [(name, value) for name, value in resp_headers if name not in drop]


# --- freshness (RFC 9111 §4.2) ---------------------------------------------------------------


def freshness_lifetime(
    status: int,
    resp_headers: Headers,
    rule: CacheRule | None = None,
    *,
    response_time: float,
) -> float:
    """Seconds the response stays fresh at the edge: a rule's explicit TTL; else s-maxage,
    max-age, Expires - Date (RFC 9111 §4.2.1), read from a field targeted at this cache when
    there is one (RFC 9213, which leaves Expires out); else the 10% Last-Modified heuristic
    (§4.2.2, capped); else the rule's default TTL or the spec §8.2 table; else 0."""
    rule = rule or DEFAULT_RULE
    explicit_ttl = rule.explicit_ttl(status)
    if explicit_ttl is not None:
        return float(max(explicit_ttl, 0))
    cc = edge_cache_control(resp_headers)
    if cc.no_cache:
        return 0.0
    if cc.no_cache_fields and any(has(resp_headers, name) for name in cc.no_cache_fields):
        return 0.0  # spec §8.3: no-cache=<field> with the field present: always revalidate
    if cc.s_maxage is not None:
        return float(cc.s_maxage)
    if cc.max_age is not None:
        return float(cc.max_age)
    if not cc.targeted and has(resp_headers, b"expires"):
        expires = date_field(resp_headers, b"expires")
        if expires is None:
            return 0.0  # RFC 9111 §5.3: an invalid Expires means already expired
        date = date_field(resp_headers, b"date")
        return max(0.0, expires - (response_time if date is None else date))
    if rule.edge_ttl_mode is EdgeTTLMode.BYPASS_BY_DEFAULT:
        return 0.0
    fallback = _fallback_lifetime(status, cc, resp_headers, rule, response_time)
    return 0.0 if fallback is None else fallback


def _fallback_lifetime(
    status: int, cc: CacheControl, resp_headers: Headers, rule: CacheRule, response_time: float
) -> float | None:
    """Lifetime when the origin gave none; None = not cacheable. A rule's default TTL first;
    then the edge's default TTL for the status (spec §8.1: "no freshness headers ⇒ default
    TTL by status"), unless `default_ttls` is off; then the RFC 9111 §4.2.2 heuristic (10% of
    the time since Last-Modified, capped) for heuristically cacheable statuses."""
    if rule.edge_ttl is not None:
        return float(rule.edge_ttl)
    if rule.default_ttls:
        ttl = DEFAULT_TTLS.get(status)
        if ttl is not None:
            return float(ttl)
    if not (status in HEURISTIC_STATUSES or cc.public):
        # RFC 9111 §3: without explicit freshness, only `public` or a heuristically cacheable
        # status lets a response be stored at all (a 503 with a validator is not kept).
        return None
    modified = date_field(resp_headers, b"last-modified")
    date = date_field(resp_headers, b"date")
    date = response_time if date is None else date
    if modified is not None and date > modified:
        return min(0.1 * (date - modified), float(rule.heuristic_cap))
    # RFC 9111 alone (default TTLs off): storable, but stale at once, so it is kept only to
    # be revalidated (and only when it has a validator, see storability()).
    return None if rule.default_ttls else 0.0


def initial_age(resp_headers: Headers, request_time: float, response_time: float) -> float:
    """corrected_initial_age of RFC 9111 §4.2.3, computed once when the response arrives."""
    date = date_field(resp_headers, b"date")
    apparent_age = max(0.0, response_time - date) if date is not None else 0.0
    response_delay = max(0.0, response_time - request_time)
    corrected_age_value = age_field(resp_headers) + response_delay
    return min(max(apparent_age, corrected_age_value), float(DELTA_MAX))


def current_age(
    resp_headers: Headers, request_time: float, response_time: float, now: float
) -> float:
    """current_age of RFC 9111 §4.2.3: the initial age plus the time resident here."""
    resident_time = max(0.0, now - response_time)
    return initial_age(resp_headers, request_time, response_time) + resident_time


def is_fresh(lifetime: float, age: float, request_cc: CacheControl | None = None) -> bool:
    """RFC 9111 §4.2: fresh when lifetime > age, narrowed by the request's max-age,
    min-fresh and no-cache (§5.2.1) when the caller honours request directives."""
    if request_cc is not None:
        if request_cc.no_cache:
            return False
        if request_cc.max_age is not None and age > request_cc.max_age:
            return False
        if request_cc.min_fresh is not None and lifetime - age < request_cc.min_fresh:
            return False
    return lifetime > age


class StaleUse(enum.Enum):
    WHILE_REVALIDATE = "while-revalidate"  # RFC 5861 §3, shown as UPDATING
    IF_ERROR = "if-error"  # RFC 5861 §4 and Always Online, shown as STALE


def may_serve_stale(
    resp_cc: CacheControl,
    lifetime: float,
    age: float,
    use: StaleUse,
    rule: CacheRule | None = None,
    request_cc: CacheControl | None = None,
) -> bool:
    """May an expired response be served? Never when must-revalidate, proxy-revalidate,
    s-maxage or no-cache forbid it (RFC 9111 §4.2.4, spec §8.3). Always Online serves any
    stale copy on origin errors and disables SWR/SIE (spec §8.8)."""
    rule = rule or DEFAULT_RULE
    if resp_cc.forbids_stale:
        return False
    staleness = max(0.0, age - lifetime)
    if use is StaleUse.WHILE_REVALIDATE:
        if rule.always_online or not rule.serve_stale_while_updating:
            return False
        window = resp_cc.stale_while_revalidate
        return window is not None and window > 0 and staleness <= window
    if rule.always_online:
        return True
    windows = [resp_cc.stale_if_error]
    if request_cc is not None:
        windows += [request_cc.stale_if_error, request_cc.max_stale]
    return any(window is not None and window > 0 and staleness <= window for window in windows)


# --- Cache-Status (RFC 9211) -----------------------------------------------------------------

CACHE_NAME = b"originguard"


def cache_status_header(
    status: CacheStatus,
    *,
    ttl: float | None = None,
    stored: bool = False,
    collapsed: bool = False,
    fwd_status: int | None = None,
    vary_miss: bool = False,
    detail: str | None = None,
) -> bytes:
    """One RFC 9211 Cache-Status member for this edge, e.g. b"originguard; hit; ttl=120" or
    b"originguard; fwd=uri-miss; stored". `ttl` is the remaining freshness (negative when
    stale); `detail` is a token such as a Reason value."""
    before, after = _status_parts(status, stored, collapsed, fwd_status, vary_miss, detail)
    if ttl is None:
        return before + after
    return b"%s; ttl=%d%s" % (before, int(ttl), after)


@functools.lru_cache(maxsize=256)
def _status_parts(
    status: CacheStatus,
    stored: bool,
    collapsed: bool,
    fwd_status: int | None,
    vary_miss: bool,
    detail: str | None,
) -> tuple[bytes, bytes]:
    """The member's parameters before and after `ttl`, which alone changes per hit."""
    parts = [CACHE_NAME]
    if status in (CacheStatus.HIT, CacheStatus.STALE, CacheStatus.UPDATING):
        parts.append(b"hit")
    elif status is CacheStatus.DYNAMIC:
        parts.append(b"fwd=bypass")
    elif status in (CacheStatus.EXPIRED, CacheStatus.REVALIDATED):
        parts.append(b"fwd=stale")
    elif status in (CacheStatus.MISS, CacheStatus.BYPASS):
        parts.append(b"fwd=vary-miss" if vary_miss else b"fwd=uri-miss")
    if fwd_status is not None:
        parts.append(b"fwd-status=%d" % fwd_status)
    elif status is CacheStatus.REVALIDATED:
        parts.append(b"fwd-status=304")
    tail = []
    if stored:
        tail.append(b"stored")
    if collapsed:
        tail.append(b"collapsed")
    if detail is None and status in (CacheStatus.STALE, CacheStatus.UPDATING, CacheStatus.NONE):
        detail = status.value.lower()
    if detail is not None:
        token = bytes(
            b if chr(b).isalnum() or b in b"-._" else 0x2D
            for b in detail.encode("ascii", "replace")
        )
        tail.append(b"detail=" + (token or b"-"))
    return b"; ".join(parts), b"".join(b"; " + t for t in tail)


def age_header(age: float) -> bytes:
    """The Age value for a response served from cache (RFC 9111 §5.1), capped at 2^31."""
    return b"%d" % min(max(int(age), 0), DELTA_MAX)
