"""The cache at run time: one shared store and collapser, and per zone its rules.

The pipeline drives the phases (lookup → collapse → fetch → store → respond); this module
answers each phase's question with a value: what the lookup found, what to send from a stored
entry, whether a response may be stored, which entries an unsafe request invalidates.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from originguard.cache import policy
from originguard.cache.collapse import Collapser
from originguard.cache.control import (
    SURROGATE_CAPABILITY,
    cache_control,
    edge_cache_control,
    first,
    values,
)
from originguard.cache.disk import FileResponse, open_disk_store
from originguard.cache.key import CacheKeyRule, QueryMode, make_key
from originguard.cache.policy import (
    CacheLevel,
    CacheRule,
    CacheStatus,
    EdgeTTLMode,
    NotStorable,
    StaleUse,
    StatusTTL,
    Storable,
)
from originguard.cache.ranges import Ignore, Unsatisfiable
from originguard.cache.settings import CacheRuleSettings, CacheSettings, CacheStoreSettings
from originguard.cache.store import Entry, MemoryStore
from originguard.cache.tiers import TieredStore, Writer
from originguard.http.messages import Headers, RequestHead, Response, ResponseHead
from originguard.protect.rules import Expression, RequestView, compile_expression

if TYPE_CHECKING:
    from originguard.exchange import Exchange

Clock = Callable[[], float]

# Fields of a stored response that are re-made for every delivery.
# Request fields that make a hit more than the stored response as it is.
_CONDITIONAL_OR_RANGE = frozenset(
    {b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"range"}
)
_NOT_REPLAYED = frozenset({b"content-length", b"transfer-encoding", b"age", b"cache-tag"})
# Client conditionals and ranges are answered from the full stored object, never forwarded.
_FILL_DROPPED = frozenset(
    {b"range", b"if-range", b"if-none-match", b"if-modified-since", b"if-match",
     b"if-unmodified-since", b"surrogate-capability"}
)  # fmt: skip


@dataclass(slots=True)
class Lookup:
    """What the cache found for a request, as a value the pipeline acts on.

    status: HIT (serve `entry`), UPDATING (serve stale `entry`, refresh in the background),
    EXPIRED (revalidate `entry` with the origin), MISS (fetch and maybe store), DYNAMIC
    (not eligible: plain proxying)."""

    status: CacheStatus
    key: bytes = b""
    rule: CacheRule = policy.DEFAULT_RULE
    browser_ttl: float | None = None
    entry: Entry | None = None
    age: float = 0.0


DYNAMIC = Lookup(CacheStatus.DYNAMIC)
_DYNAMIC_HEADERS = [
    (b"og-cache-status", CacheStatus.DYNAMIC.header_value),
    (b"cache-status", policy.cache_status_header(CacheStatus.DYNAMIC)),
]


class SharedCache:
    """State shared by every zone and kept across reloads: storage, in-flight fills."""

    def __init__(self, settings: CacheStoreSettings) -> None:
        self.settings = settings
        memory = MemoryStore(settings.memory)
        disk = settings.disk
        if disk is None:
            self.store = TieredStore(memory)
        else:
            store = open_disk_store(disk.path, disk.max_size, disk.max_object_size)
            self.store = TieredStore(memory, store, disk.min_object_size)
        self.collapser = Collapser()
        self.refreshing: set[bytes] = set()

    def max_object_size(self, zone: CacheSettings) -> int:
        """A zone's largest cacheable body: its own setting when given; by default 512MB
        (the disk tier's limit) with a disk tier, the zone default without one."""
        disk = self.settings.disk
        if disk is None:
            return zone.max_object_size
        if "max_object_size" in zone.model_fields_set:
            return min(zone.max_object_size, disk.max_object_size)
        return disk.max_object_size


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    settings: CacheRuleSettings
    expression: Expression | None
    key_rule: CacheKeyRule | None


class ZoneCache:
    def __init__(
        self,
        settings: CacheSettings,
        shared: SharedCache,
        clock: Clock = time.time,
        lists: Mapping[str, Sequence[str | int]] | None = None,
    ):
        self.settings = settings
        self.shared = shared
        self.store = shared.store
        self.collapser = shared.collapser
        self.clock = clock
        self._default = CacheRule(
            level=CacheLevel(settings.level),
            serve_stale_while_updating=settings.serve_stale_while_updating,
            always_online=settings.always_online,
            respect_strong_etags=settings.respect_strong_etags,
            cache_deception_armor=settings.cache_deception_armor,
            default_ttls=settings.default_ttls,
            max_object_size=shared.max_object_size(settings),
        )
        self._default_key = CacheKeyRule(
            query=QueryMode.NONE if settings.level == "simplified" else QueryMode.ALL
        )
        self._rules = [_compile(rule, lists or {}) for rule in settings.rules]

    @property
    def default_key_rule(self) -> CacheKeyRule:
        return self._default_key

    # -- lookup -----------------------------------------------------------------------------------

    @staticmethod
    def is_variant_for(entry: Entry, ex: Exchange) -> bool:
        """Whether `entry` is the Vary variant this request selects (a collapsed request waits
        on the key alone, and the leader may have fetched another variant)."""
        return not entry.vary or policy.vary_key(entry.vary, ex.head.headers) == entry.variant

    def url_key(self, scheme: bytes, host: bytes, path: bytes, query: bytes) -> bytes:
        """The key a plain GET of this URL is stored under, with the zone's cache rules applied
        (a purge by URL must find objects stored under a rule's custom key)."""
        head = RequestHead(b"GET", path, path, query, b"1.1", [(b"host", host)], host)
        _, key_rule, _ = self._effective(head, None, scheme)
        return make_key(scheme, host, path, query, [], key_rule)

    def lookup(self, ex: Exchange) -> Lookup:
        head = ex.head
        rule, key_rule, browser_ttl = self._effective(head, ex, ex.conn.scheme)
        eligibility = policy.is_eligible(
            head.method, head.path, rule, query=head.query, has_body=ex.body is not None
        )
        if not eligibility.eligible:
            return DYNAMIC
        key = make_key(ex.conn.scheme, head.host, head.path, head.query, head.headers, key_rule)
        entry = self.store.get(key, head.headers)
        if entry is None:
            return Lookup(CacheStatus.MISS, key, rule, browser_ttl)
        now = self.clock()
        age = _current_age(entry, now)
        request_cc = cache_control(head.headers)
        if policy.is_fresh(entry.lifetime, age, request_cc):
            return Lookup(CacheStatus.HIT, key, rule, browser_ttl, entry, age)
        entry_cc = edge_cache_control(entry.headers)
        if not request_cc.no_cache and policy.may_serve_stale(
            entry_cc, entry.lifetime, age, StaleUse.WHILE_REVALIDATE, rule
        ):
            return Lookup(CacheStatus.UPDATING, key, rule, browser_ttl, entry, age)
        return Lookup(CacheStatus.EXPIRED, key, rule, browser_ttl, entry, age)

    def _effective(
        self, head: RequestHead, ex: Exchange | None, scheme: bytes
    ) -> tuple[CacheRule, CacheKeyRule, float | None]:
        """The rule, key rule and browser TTL for a request (`ex` None: a URL being purged)."""
        rule, key_rule = self._default, self._default_key
        browser_ttl: float | None = None
        if not self._rules:
            return rule, key_rule, browser_ttl
        view: RequestView | None = None
        for compiled in self._rules:
            match = compiled.settings.when
            path = head.path.decode("latin-1")
            if match.path_prefix and not path.startswith(match.path_prefix):
                continue
            if match.extension and policy.extension(head.path).decode(
                "latin-1"
            ) not in match.extension:
                continue
            if compiled.expression is not None:
                view = view or _view(head, scheme, ex.client_ip if ex is not None else "")
                if not compiled.expression.evaluate(view):
                    continue
            rule = _apply(rule, compiled.settings)
            if compiled.key_rule is not None:
                key_rule = compiled.key_rule
            if compiled.settings.browser_ttl is not None:
                browser_ttl = compiled.settings.browser_ttl
        return rule, key_rule, browser_ttl

    # -- requests to the origin -------------------------------------------------------------------

    def fill_request_headers(self, lookup: Lookup, headers: Headers) -> Headers:
        """The request headers for a cache fill: client conditionals and ranges removed (the
        full object is fetched and they are answered from it), and the stored validators
        added when an expired entry is revalidated."""
        kept = [(name, value) for name, value in headers if name not in _FILL_DROPPED]
        # Lets the origin target Surrogate-Control directives at this edge (control.py).
        kept.append(SURROGATE_CAPABILITY)
        if lookup.entry is not None:
            kept.extend(policy.revalidation_headers(lookup.entry.headers))
        return kept

    def fill_range(self, ex: Exchange, response: ResponseHead) -> tuple[int, int] | None:
        """The one byte range (inclusive) a filled 200 is cut to for this client, as nginx and
        Cloudflare answer a Range miss: the fill fetched the whole object to store it, and the
        client gets the 206 it asked for. None (the full 200) for several ranges, an
        unsatisfiable or malformed Range, an If-Range that does not match, or an unknown length."""
        length = response.content_length
        if response.status != 200 or length is None or response.chunked:
            return None
        request = ex.head.headers
        range_value = first(request, b"range")
        if range_value is None or ex.head.method != b"GET":
            return None
        if_range = first(request, b"if-range")
        if if_range is not None and not policy.if_range_matches(if_range, response.headers):
            return None
        ranges = policy.parse_range(range_value, length)
        if not isinstance(ranges, list) or len(ranges) != 1:
            return None
        return ranges[0]

    # -- storing ----------------------------------------------------------------------------------

    def storability(
        self, lookup: Lookup, ex: Exchange, response: ResponseHead, response_time: float
    ) -> Storable | NotStorable:
        return policy.storability(
            response.status,
            ex.head.headers,
            response.headers,
            lookup.rule,
            path=ex.head.path,
            response_time=response_time,
        )

    def store_response(
        self,
        lookup: Lookup,
        ex: Exchange,
        status: int,
        headers: Headers,
        body: bytes,
        decision: Storable,
        request_time: float,
        response_time: float,
    ) -> Entry | None:
        """Store a complete origin response; the entry, or None when the store refused it."""
        entry = self._entry(lookup, ex, status, headers, decision, request_time, response_time)
        return self.store.keep(replace(entry, body=body))

    def begin_store(
        self,
        lookup: Lookup,
        ex: Exchange,
        response: ResponseHead,
        decision: Storable,
        request_time: float,
        response_time: float,
    ) -> Writer | None:
        """Store an origin response while its body streams to the client: feed the Writer
        each piece, then commit it once the body is complete (or abort). None when the
        declared length is already over the limit."""
        status, headers = response.status, response.headers
        entry = self._entry(lookup, ex, status, headers, decision, request_time, response_time)
        return self.store.begin(entry, lookup.rule.max_object_size, response.content_length)

    def _entry(
        self,
        lookup: Lookup,
        ex: Exchange,
        status: int,
        headers: Headers,
        decision: Storable,
        request_time: float,
        response_time: float,
    ) -> Entry:
        """The entry for an origin response, without its body."""
        stored = policy.storable_headers(headers, decision)
        tags = policy.parse_cache_tags(values(stored, b"cache-tag"))
        stored = [(name, value) for name, value in stored if name not in _NOT_REPLAYED]
        vary = policy.vary_names(headers) or ()
        entry = Entry(
            key=lookup.key,
            status=status,
            headers=stored,
            body=b"",
            stored_at=response_time,
            request_time=request_time,
            response_time=response_time,
            host=ex.head.host,
            path=ex.head.path,
            variant=policy.vary_key(vary, ex.head.headers) if vary else b"",
            vary=vary,
            tags=tags,
            lifetime=policy.freshness_lifetime(
                status, headers, lookup.rule, response_time=response_time
            ),
            # Age is not replayed but counts: RFC 9111 §4.2.3 (the origin's Age, or another
            # cache's, plus the response delay).
            initial_age=policy.initial_age(headers, request_time, response_time),
        )
        return entry

    def revalidated(
        self, lookup: Lookup, headers_304: Headers, request_time: float, response_time: float
    ) -> Entry:
        """The stored entry refreshed by a 304 (RFC 9111 §4.3.4), stored again."""
        assert lookup.entry is not None
        old = lookup.entry
        updated = policy.merge_304(old.headers, headers_304)
        merged = [(name, value) for name, value in updated if name not in _NOT_REPLAYED]
        entry = replace(
            old,
            headers=merged,
            stored_at=response_time,
            request_time=request_time,
            response_time=response_time,
            lifetime=policy.freshness_lifetime(
                old.status, merged, lookup.rule, response_time=response_time
            ),
            initial_age=policy.initial_age(updated, request_time, response_time),
        )
        self.store.put(entry)
        return entry

    def may_serve_stale_on_error(self, lookup: Lookup) -> bool:
        entry = lookup.entry
        if entry is None:
            return False
        return policy.may_serve_stale(
            edge_cache_control(entry.headers),
            entry.lifetime,
            _current_age(entry, self.clock()),
            StaleUse.IF_ERROR,
            lookup.rule,
        )

    # -- responses --------------------------------------------------------------------------------

    def plain_hit_fields(
        self, lookup: Lookup, entry: Entry, ex: Exchange, status: CacheStatus
    ) -> bytes | None:
        """The header fields of a hit served as stored, serialised; None when the request
        needs `respond` (a precondition or range, a browser TTL, a body on disk). What
        `respond` would send, without building a field list per request."""
        if entry.file is not None or lookup.browser_ttl is not None:
            return None
        if [1 for name, _ in ex.head.headers if name in _CONDITIONAL_OR_RANGE]:
            return None
        weaken = not lookup.rule.respect_strong_etags
        fields = entry.wire_fields.get(weaken)
        if fields is None:
            headers = policy.weaken_etags(entry.headers) if weaken else entry.headers
            fields = entry.wire_fields[weaken] = b"".join(
                [name + b": " + value + b"\r\n" for name, value in headers]
            )
        age = lookup.age if entry is lookup.entry else _current_age(entry, self.clock())
        return b"%sage: %s\r\nog-cache-status: %s\r\ncache-status: %s\r\n" % (
            fields,
            policy.age_header(age),
            status.header_value,
            policy.cache_status_header(status, ttl=entry.lifetime - age),
        )

    def respond(
        self, lookup: Lookup, entry: Entry, ex: Exchange, status: CacheStatus
    ) -> Response | FileResponse:
        """A response made from a stored entry: conditionals (304/412), ranges (206/416),
        Age and the cache status headers. HEAD is handled by the caller (no body sent)."""
        now = self.clock()
        age = _current_age(entry, now)
        headers = list(entry.headers)
        if not lookup.rule.respect_strong_etags:
            headers = policy.weaken_etags(headers)
        headers.append((b"age", policy.age_header(age)))
        self._browser_ttl(lookup, headers)
        headers += self.status_headers(status, ttl=entry.lifetime - age)
        request = ex.head.headers
        condition = policy.evaluate_conditional(
            request, entry.headers, now, stored_status=entry.status, stored_at=entry.stored_at
        )
        if condition is not None and entry.status == 200:
            kept = [(n, v) for n, v in headers if n not in (b"content-type", b"content-range")]
            return Response(condition, kept if condition == 304 else _plain(headers), b"")
        body, length = entry.body, entry.length
        range_value = first(request, b"range")
        if entry.status == 200 and range_value is not None and ex.head.method == b"GET":
            if_range = first(request, b"if-range")
            if if_range is None or policy.if_range_matches(if_range, entry.headers):
                ranges = policy.parse_range(range_value, length)
                if isinstance(ranges, Unsatisfiable):
                    headers.append((b"content-range", policy.unsatisfied_range(length)))
                    return Response(416, headers, b"")
                if entry.file is None and not isinstance(ranges, Ignore):
                    return _partial(headers, body, ranges)
                if isinstance(ranges, list) and len(ranges) == 1:
                    start, end = ranges[0]
                    headers.append((b"content-range", policy.content_range(start, end, length)))
                    return self._from_disk(entry, 206, headers, start, end + 1 - start)
                # Several ranges of a body on disk: the whole object (RFC 9110 §14.2 lets a
                # server ignore Range) rather than a multipart body built in memory.
        if entry.file is not None:
            return self._from_disk(entry, entry.status, headers)
        return Response(entry.status, headers, body)

    def _from_disk(
        self, entry: Entry, status: int, headers: Headers, offset: int = 0, length: int = -1
    ) -> Response | FileResponse:
        source = self.store.open(entry, offset, length)
        if source is None:  # the file vanished (removed by hand, or evicted just now)
            return Response(503, [(b"retry-after", b"1"), (b"cache-control", b"no-store")])
        return FileResponse(status, headers, source)

    def status_headers(
        self, status: CacheStatus, *, ttl: float | None = None, stored: bool = False
    ) -> Headers:
        return [
            (b"og-cache-status", status.header_value),
            (b"cache-status", policy.cache_status_header(status, ttl=ttl, stored=stored)),
        ]

    def dynamic_headers(self, headers: Headers) -> None:
        headers += _DYNAMIC_HEADERS

    def client_headers(
        self, lookup: Lookup, headers: Headers, status: CacheStatus, stored: bool
    ) -> None:
        """Finish the headers of a response passed through from the origin."""
        self._browser_ttl(lookup, headers)
        headers += self.status_headers(status, stored=stored)

    def _browser_ttl(self, lookup: Lookup, headers: Headers) -> None:
        if lookup.browser_ttl is None:
            return
        headers[:] = [(n, v) for n, v in headers if n not in (b"cache-control", b"expires")]
        headers.append((b"cache-control", b"max-age=%d" % int(lookup.browser_ttl)))

    # -- invalidation and purge -------------------------------------------------------------------

    def invalidate(self, ex: Exchange, status: int, headers: Headers) -> int:
        """RFC 9111 §4.4: a successful unsafe request invalidates its URI (and same-host
        Location / Content-Location)."""
        targets = policy.invalidation_targets(
            ex.head.method, status, ex.conn.scheme, ex.head.host, ex.head.uri, headers
        )
        removed = 0
        for target in targets:
            removed += self.store.purge_path(target.host, target.path)
        return removed


def _compile(
    settings: CacheRuleSettings, lists: Mapping[str, Sequence[str | int]]
) -> _CompiledRule:
    expression = None
    if settings.when.expression is not None:
        expression = compile_expression(settings.when.expression, lists)
    key_rule = None
    if settings.key is not None:
        key = settings.key
        key_rule = CacheKeyRule(
            query=QueryMode(key.query),
            query_params=frozenset(p.encode() for p in key.query_params),
            sort_query=key.sort_query,
            headers=tuple(h.lower().encode() for h in key.headers),
            cookies=tuple(c.encode() for c in key.cookies),
            include_host=key.host,
            device_type=key.device_type,
        )
    return _CompiledRule(settings, expression, key_rule)


def _apply(rule: CacheRule, settings: CacheRuleSettings) -> CacheRule:
    changes: dict[str, object] = {}
    if settings.cache is not None:
        changes["eligible"] = settings.cache
    if settings.edge_ttl_mode is not None:
        changes["edge_ttl_mode"] = EdgeTTLMode(settings.edge_ttl_mode)
    if settings.edge_ttl is not None:
        changes["edge_ttl"] = int(settings.edge_ttl)
    if settings.status_ttl:
        changes["status_ttls"] = tuple(
            StatusTTL(*entry.bounds, int(entry.ttl)) for entry in settings.status_ttl
        )
    for name in ("serve_stale_while_updating", "respect_strong_etags", "cache_deception_armor"):
        value = getattr(settings, name)
        if value is not None:
            changes[name] = value
    return replace(rule, **changes) if changes else rule  # type: ignore[arg-type]


def _current_age(entry: Entry, now: float) -> float:
    """current_age of RFC 9111 §4.2.3 from the initial age fixed when the entry was stored."""
    return entry.initial_age + max(0.0, now - entry.response_time)


def _plain(headers: Headers) -> Headers:
    return [(n, v) for n, v in headers if n not in (b"etag", b"last-modified")]


def _partial(headers: Headers, body: bytes, ranges: list[tuple[int, int]]) -> Response:
    if len(ranges) == 1:
        start, end = ranges[0]
        headers.append((b"content-range", policy.content_range(start, end, len(body))))
        return Response(206, headers, body[start : end + 1])
    content_type = first(headers, b"content-type")
    boundary = os.urandom(12).hex().encode()
    multipart_type, multipart = policy.multipart_byteranges(body, ranges, content_type, boundary)
    kept = [(n, v) for n, v in headers if n != b"content-type"]
    kept.append((b"content-type", multipart_type))
    return Response(206, kept, multipart)


def _view(head: RequestHead, scheme: bytes, client_ip: str) -> RequestView:
    return RequestView(
        scheme=scheme.decode(),
        host=head.host.decode("latin-1"),
        method=head.method.decode("latin-1"),
        path=head.path.decode("latin-1"),
        query=head.query.decode("latin-1"),
        uri=head.uri.decode("latin-1"),
        version="HTTP/" + head.version.decode(),
        headers=head.headers,
        client_ip=ipaddress.ip_address(client_ip or "0.0.0.0"),
    )
