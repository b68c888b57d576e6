"""THE request lifecycle, top to bottom; the only place that knows the order of phases.

    admit   route Host to a zone, find the visitor's IP, give the exchange a ray id
    guard   request filters (IP rules, firewall, rate limits, waiting room) may answer
    fetch   pick an origin; connect (521/522/523 -> ONE retry on another origin);
            send; read the head (520/524: no retry)
    deliver stream the response back with back-pressure
    complete metrics, access log, observers (never awaits)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

from originguard.cache.collapse import Follower, Wait
from originguard.cache.disk import FileResponse
from originguard.cache.layer import DYNAMIC, Lookup, SharedCache, ZoneCache
from originguard.cache.policy import CacheStatus, NotStorable, Storable
from originguard.cache.ranges import content_range
from originguard.cache.store import Entry
from originguard.cache.tiers import Writer
from originguard.exchange import Attempt, Exchange
from originguard.http.body import Body, BodyError
from originguard.http.messages import Headers, RequestHead, Response, ResponseHead, header_value
from originguard.http.pages import error_page, wants_json
from originguard.http.server import ClientConnection
from originguard.http.wire import (
    HOP_BY_HOP,
    LAST_CHUNK,
    chunk,
    connection_tokens,
    serialize_headers,
    status_line,
)
from originguard.observe.access_log import AccessLog
from originguard.observe.metrics import Metrics
from originguard.outcome import OriginError, Outcome
from originguard.relay import Relay
from originguard.routing import PoolRuntime, Router, ZoneRuntime
from originguard.upstream.connection import OriginConnection, OriginFailure
from originguard.upstream.pool import Origin
from originguard.upstream.request import IpNetwork, build_head, client_ip, is_trusted

log = logging.getLogger("originguard.pipeline")

# Bodies up to this size are read before the first attempt so a failed attempt can be
# replayed on another origin (nginx's proxy_request_buffering does the same by default).
REPLAY_LIMIT = 64 * 1024
# A stored body larger than this is written a slice at a time, each once the client took the
# one before: one write of the whole body would hold a copy per slow client.
STORED_SLICE = 256 * 1024
_RAY_MASK = (1 << 64) - 1

# Response fields the origin may not pass to visitors (spec §2.3). Server names the origin's
# software: hidden, as nginx and Cloudflare do; the edge sends its own.
_ORIGIN_ONLY = frozenset(
    {
        b"server",
        b"content-length",
        b"x-accel-buffering",
        b"x-accel-charset",
        b"x-accel-limit-rate",
        b"x-accel-redirect",
        b"x-accel-expires",
        b"cache-tag",
    }
)
_NOT_FOR_CLIENT = _ORIGIN_ONLY | HOP_BY_HOP
_STATUS_VALUE = {status: status.value for status in CacheStatus}  # .value is slow on the hot path
_DYNAMIC = _STATUS_VALUE[CacheStatus.DYNAMIC]
_SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})


class RequestFilter(Protocol):
    """May answer a request before the cache and the origin. A filter that must wait (shared
    state, a request body) returns an awaitable; one that can decide at once answers at once,
    which keeps the exchange on the synchronous fast path."""

    def on_request(self, ex: Exchange) -> Response | None | Awaitable[Response | None]: ...


async def filter_answer(
    result: Response | None | Awaitable[Response | None],
) -> Response | None:
    """A request filter's answer, awaited if it had to wait."""
    if result is None or isinstance(result, Response):
        return result
    return await result


class ResponseFilter(Protocol):
    def on_response(self, ex: Exchange, headers: Headers) -> None: ...


class Observer(Protocol):
    def on_complete(self, ex: Exchange) -> None: ...


class Service(Protocol):
    """Background work a feature runs while its config is live (health checks, alerting)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class Runtime:
    """Everything that one configuration decides; swapped whole on reload."""

    router: Router
    trusted_proxies: Sequence[IpNetwork]
    node_id: str
    request_filters: list[RequestFilter] = field(default_factory=list)
    response_filters: list[ResponseFilter] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    cache: SharedCache | None = None


class Fetched(NamedTuple):
    """An origin response whose head has arrived; its body is still on the connection."""

    origin: Origin
    upstream: OriginConnection
    response: ResponseHead
    pump: asyncio.Task[None] | None

    def finish(self) -> None:
        """The exchange with this origin is over (idempotent): it leaves the in-flight count."""
        if self.upstream.counted:
            self.upstream.counted = False
            self.origin.in_flight -= 1

    def discard(self) -> None:
        """Drop the response: pool the connection if the message is already complete."""
        if self.upstream.reusable:
            self.origin.release(self.upstream)
        else:
            self.upstream.abort()
        self.finish()

    async def read_body(self, writer: Writer) -> bool:
        """Feed the whole body to `writer`; False if it did not complete or the writer gave
        up (over its limit), and the connection is then closed."""
        kept = True

        def sink(data: bytes) -> None:
            nonlocal kept
            if kept and not writer.write(data):
                kept = False
                self.upstream.abort()

        complete = await self.upstream.stream_body(sink)
        if complete and kept:
            self.origin.release(self.upstream)
            self.finish()
            return True
        self.upstream.abort()
        self.finish()
        return False


class Pipeline:
    def __init__(self, runtime: Runtime, metrics: Metrics, access_log: AccessLog) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.access_log = access_log
        self.draining = False
        self._loop = asyncio.get_event_loop()
        self._ray_counter = int.from_bytes(os.urandom(8), "big")
        self._background: set[asyncio.Task[None]] = set()

    # -- entry points from the client connection ----------------------------------------------

    def handle(self, conn: ClientConnection, head: RequestHead, body: Body | None) -> None:
        """Answer one request. The phases run synchronously as far as they can: a cache hit
        or a pass-through on a pooled origin connection needs no task (the relay's callbacks
        finish it); the first phase that must wait continues in a task."""
        runtime = self.runtime
        ex = Exchange(conn, head, body, self._ray(runtime), self._loop.time())
        self.metrics.in_flight += 1
        try:
            rest = self._dispatch(ex, runtime)
        except Exception:
            log.exception("internal error in exchange %s", ex.ray)
            rest = self._internal_error(ex)
        if rest is None:
            if not ex.relayed:
                self.finish(ex, runtime)
            return
        self.continue_with(ex, runtime, rest)

    def continue_with(self, ex: Exchange, runtime: Runtime, rest: Awaitable[object]) -> None:
        """Run the rest of the exchange in a task; it finishes the exchange at the end."""
        task = self._loop.create_task(self._continue(ex, runtime, rest))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _continue(self, ex: Exchange, runtime: Runtime, rest: Awaitable[object]) -> None:
        try:
            await rest
        except ConnectionResetError:  # the client left while its response was being written
            ex.outcome = Outcome.CLIENT_ABORT
            ex.conn.abort()
        except Exception:
            log.exception("internal error in exchange %s", ex.ray)
            await self._internal_error(ex)
        finally:
            if not ex.relayed:
                self.finish(ex, runtime)

    async def _internal_error(self, ex: Exchange) -> None:
        if not ex.status:
            await self._answer(ex, 500, Outcome.BAD_REQUEST, "internal error")
        else:
            ex.conn.abort()

    def now(self) -> float:
        return self._loop.time()

    def proxy_anew(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        runtime: Runtime,
        lookup: Lookup,
        picked: tuple[PoolRuntime, Origin],
    ) -> Awaitable[object]:
        """The general path for an exchange whose pooled connection to `picked` was dead."""
        return self._proxy(ex, zone, runtime, lookup, first=picked, fresh=True)

    def answer_failure(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        pool: PoolRuntime,
        attempt: Attempt,
        failure: OriginFailure,
        started: float,
    ) -> Awaitable[None]:
        """Record a failed attempt that may not be retried and answer with its 52x page."""
        self._failed(ex, zone, pool, attempt, failure, started)
        return self._answer(ex, failure.code.value, Outcome.EDGE_ERROR, failure.detail)

    def finish(self, ex: Exchange, runtime: Runtime) -> None:
        """The exchange is over: count and log it, and let the connection go on."""
        self.metrics.in_flight -= 1
        self._complete(ex, runtime)
        ex.conn.exchange_done()

    def reject(self, conn: ClientConnection, status: int, reason: str) -> None:
        """A request that failed parsing: an error page and `Connection: close` (rule G1)."""
        ray = self._ray(self.runtime)
        page = error_page(status, ray, conn.peer_ip, wants_json=False)
        conn.write(self._local_head(page, ray, keep_alive=False) + page.body)
        self.metrics.rejected.labels(str(status)).inc()
        self.access_log.record_rejection(ray, conn.peer_ip, status, reason)

    # -- the phases ---------------------------------------------------------------------------

    def _dispatch(self, ex: Exchange, runtime: Runtime) -> Awaitable[object] | None:
        """admit, then guard and on; returns what is left to await, if anything."""
        ex.client_ip = client_ip(ex.conn.peer_ip, ex.head, runtime.trusted_proxies)
        zone = runtime.router.route(ex.head.host)
        if zone is None:
            return self._answer(ex, 421, Outcome.NO_ZONE, "no zone for host")
        ex.zone = zone
        return self._guard(ex, zone, runtime, 0)

    def _guard(
        self, ex: Exchange, zone: ZoneRuntime, runtime: Runtime, start: int
    ) -> Awaitable[object] | None:
        """guard: the request filters from `start` on, then lookup. A filter that must wait
        continues the exchange in `_guard_after`."""
        filters = runtime.request_filters
        for index in range(start, len(filters)):
            result = filters[index].on_request(ex)
            if result is None:
                continue
            if isinstance(result, Response):
                return self._respond_filtered(ex, result)
            return self._guard_after(ex, zone, runtime, result, index + 1)
        return self._lookup(ex, zone, runtime)

    async def _guard_after(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        runtime: Runtime,
        waiting: Awaitable[Response | None],
        start: int,
    ) -> None:
        response = await waiting
        if response is not None:
            rest = self._respond_filtered(ex, response)
        else:
            rest = self._guard(ex, zone, runtime, start)
        if rest is not None:
            await rest

    def _respond_filtered(self, ex: Exchange, response: Response) -> Awaitable[object] | None:
        # A filter may name its own outcome (a waiting room's `queued`); else `local`.
        outcome = ex.outcome if ex.outcome is not Outcome.PROXIED else Outcome.LOCAL
        return self._respond_now(ex, response, outcome)

    def _lookup(
        self, ex: Exchange, zone: ZoneRuntime, runtime: Runtime
    ) -> Awaitable[object] | None:
        """lookup, then the answer from the cache or the way to the origin (a pass-through on
        a pooled connection goes to a Relay)."""
        cache = zone.cache
        lookup = cache.lookup(ex) if cache is not None else DYNAMIC
        if cache is None or lookup.status is CacheStatus.DYNAMIC:
            return self._pass_through(ex, zone, runtime, lookup)
        if lookup.status is CacheStatus.HIT:
            assert lookup.entry is not None
            return self._respond_cached_now(ex, cache, lookup, lookup.entry, CacheStatus.HIT)
        if lookup.status is CacheStatus.UPDATING:
            assert lookup.entry is not None
            self._refresh_in_background(ex, zone, runtime, cache, lookup)
            return self._respond_cached_now(ex, cache, lookup, lookup.entry, CacheStatus.UPDATING)
        return self._collapse(ex, zone, runtime, cache, lookup)

    def _pass_through(
        self, ex: Exchange, zone: ZoneRuntime, runtime: Runtime, lookup: Lookup
    ) -> Awaitable[object] | None:
        """A bodiless GET or HEAD with a pooled connection to the chosen origin goes out now
        and comes back through a Relay; anything else takes the general path."""
        head = ex.head
        if ex.body is not None or (head.method != b"GET" and head.method != b"HEAD"):
            return self._proxy(ex, zone, runtime, lookup)
        pool = zone.active_pool()
        picked = zone.select(ex, pool, ()) if pool is not None else None
        if picked is None:
            return self._proxy(ex, zone, runtime, lookup)
        upstream = picked[1].take_idle()
        if upstream is None:
            return self._proxy(ex, zone, runtime, lookup, first=picked)
        cache = zone.cache
        if cache is not None:
            ex.cache_status = _DYNAMIC
        request = self._origin_request(ex, zone, runtime, head.headers, 0)
        relay = Relay(self, ex, runtime, zone, lookup, picked, upstream, cache)
        ex.relayed = True
        relay.send(request)
        return None

    async def _collapse(
        self, ex: Exchange, zone: ZoneRuntime, runtime: Runtime, cache: ZoneCache, lookup: Lookup
    ) -> None:
        """MISS/EXPIRED: concurrent requests for one object make one origin request (the
        leader's); the others wait for its stored entry, or fetch themselves if it could not
        be shared or took longer than the lock timeout."""
        claim = cache.collapser.acquire(lookup.key, cache.settings.lock_timeout)
        if isinstance(claim, Follower):
            outcome = await claim.wait()
            shared = outcome.entry if outcome.kind is Wait.SHARED else None
            if shared is not None and cache.is_variant_for(shared, ex):
                await self._respond_cached(ex, cache, lookup, shared, CacheStatus.HIT)
            else:
                await self._proxy(ex, zone, runtime, lookup)
            return
        with claim:
            # This request looked before its task ran; a leader may have stored the object in
            # between (and let go of the key). Then it is a HIT, not a second origin request.
            now = cache.lookup(ex)
            if now.status is CacheStatus.HIT and now.entry is not None:
                claim.publish(now.entry)
                await self._respond_cached(ex, cache, now, now.entry, CacheStatus.HIT)
                return
            claim.publish(await self._proxy(ex, zone, runtime, lookup))

    async def _proxy(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        runtime: Runtime,
        lookup: Lookup,
        first: tuple[PoolRuntime, Origin] | None = None,
        fresh: bool = False,
    ) -> Entry | None:
        """fetch → (store) → deliver. Returns the entry stored on the way, if any. `first`:
        the origin already picked for the first attempt; `fresh`: its pooled connections are
        suspect (one just turned out closed), so that attempt connects anew."""
        head = ex.head
        filling = lookup.status in (CacheStatus.MISS, CacheStatus.EXPIRED)
        payload = b""
        replayable = True
        body_length: int | None = 0
        prefix = b""
        if ex.body is not None:
            small = head.content_length is not None and head.content_length <= REPLAY_LIMIT
            if small or head.chunked:
                # Read small bodies whole before the first attempt: a failed attempt can be
                # replayed, and a chunked body that turns out malformed never reaches the
                # origin (G1). Larger ones stream after the part read here.
                try:
                    prefix, complete = await _read_prefix(ex.body, REPLAY_LIMIT)
                except BodyError as error:
                    await self._answer(ex, error.status, Outcome.BAD_REQUEST, error.reason)
                    return None
                if complete:
                    payload, prefix = prefix, b""
                    body_length = len(payload)
                else:
                    replayable = False
                    body_length = head.content_length
            else:
                replayable = False
                body_length = head.content_length  # None: re-chunked by the edge
        headers = head.headers
        if filling and zone.cache is not None:
            headers = zone.cache.fill_request_headers(lookup, headers)
        request = self._origin_request(ex, zone, runtime, headers, body_length)
        request_time = time.time()
        fetched = await self._fetch(
            ex, zone, request + payload, replayable, prefix, first=first, fresh=fresh
        )
        cache = zone.cache
        if fetched is None:
            return None
        if isinstance(fetched, OriginFailure):
            if cache is not None and cache.may_serve_stale_on_error(lookup):
                assert lookup.entry is not None
                await self._respond_cached(ex, cache, lookup, lookup.entry, CacheStatus.STALE)
                return None
            outcome = (
                Outcome.NO_ORIGIN if fetched.code is OriginError.NO_ORIGIN else Outcome.EDGE_ERROR
            )
            await self._answer(ex, fetched.code.value, outcome, fetched.detail)
            return None
        response = fetched.response
        response_time = time.time()
        if cache is None:
            await self._deliver(ex, fetched)
            return None
        if lookup.status is CacheStatus.DYNAMIC:
            ex.cache_status = _DYNAMIC
            await self._deliver(ex, fetched, cache.dynamic_headers)
            if head.method not in _SAFE_METHODS:
                cache.invalidate(ex, response.status, response.headers)
            return None
        # The cache's part: revalidation, stale-if-error, or store while delivering.
        if lookup.entry is not None and response.status == 304:
            entry = cache.revalidated(lookup, response.headers, request_time, response_time)
            fetched.discard()
            await self._respond_cached(ex, cache, lookup, entry, CacheStatus.REVALIDATED)
            return entry
        if response.status >= 500 and cache.may_serve_stale_on_error(lookup):
            assert lookup.entry is not None
            fetched.discard()
            await self._respond_cached(ex, cache, lookup, lookup.entry, CacheStatus.STALE)
            return None
        decision = cache.storability(lookup, ex, response, response_time)
        status = CacheStatus.EXPIRED if lookup.entry is not None else CacheStatus.MISS
        if isinstance(decision, NotStorable):
            status = decision.status
        store = filling and isinstance(decision, Storable) and head.method == b"GET"

        ex.cache_status = status.value

        def finish_headers(out: Headers) -> None:
            cache.client_headers(lookup, out, status, stored=store)

        part = cache.fill_range(ex, response) if filling else None
        writer = None
        if store and isinstance(decision, Storable):
            writer = cache.begin_store(lookup, ex, response, decision, request_time, response_time)
        try:
            if not await self._deliver(ex, fetched, finish_headers, writer, part) or writer is None:
                return None
            return writer.commit()
        finally:
            if writer is not None:
                writer.abort()  # a no-op once committed

    def _origin_request(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        runtime: Runtime,
        headers: Headers,
        body_length: int | None,
    ) -> bytes:
        """The request head the origin gets (security rules G2, G5, G6)."""
        peer_ip = ex.conn.peer_ip
        peer_trusted = ex.client_ip != peer_ip or (
            bool(runtime.trusted_proxies) and is_trusted(peer_ip, runtime.trusted_proxies)
        )
        request = build_head(
            ex.head,
            headers=headers,
            host=zone.host_header or ex.head.host,
            peer_ip=peer_ip,
            visitor_ip=ex.client_ip,
            peer_trusted=peer_trusted,
            scheme=ex.conn.scheme,
            ray=ex.ray.encode(),
            body_length=body_length,
        )
        return zone.with_origin_headers(request)

    async def _fetch(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        request: bytes,
        replayable: bool,
        prefix: bytes = b"",
        first: tuple[PoolRuntime, Origin] | None = None,
        fresh: bool = False,
    ) -> Fetched | OriginFailure | None:
        """A response head from an origin, with zero-downtime failover (spec §3): exactly one
        retry on another origin, only for failures where nothing reached the origin
        application. None when the edge already answered (the client's body failed)."""
        pool = first[0] if first is not None else zone.active_pool()
        if pool is None:
            return OriginFailure(OriginError.NO_ORIGIN, "no usable pool", sent=False)
        exclude: list[Origin] = []
        failure: OriginFailure | None = None
        picked = first
        while True:
            if picked is None:
                picked = zone.select(ex, pool, exclude)
                if picked is None:
                    break
            pool, origin = picked
            picked = None
            result = await self._attempt(
                ex, zone, pool, origin, request, replayable, prefix, fresh_first=fresh
            )
            fresh = False
            if not isinstance(result, OriginFailure):
                return result
            failure = result
            if exclude or failure.sent or failure.code not in zone.failover_codes:
                break
            exclude.append(origin)
            picked = zone.select(ex, pool, exclude)
            if picked is None:  # no other origin: the failure stands, nothing was retried
                break
            self.metrics.failovers.labels(zone.name, str(failure.code.value)).inc()
        if failure is None:
            return OriginFailure(OriginError.NO_ORIGIN, "no usable origin", sent=False)
        return failure

    async def _attempt(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        pool: PoolRuntime,
        origin: Origin,
        request: bytes,
        replayable: bool,
        prefix: bytes = b"",
        fresh_first: bool = False,
    ) -> Fetched | OriginFailure | None:
        """One try at `origin`: a response head, a failure, or None if the edge answered.
        A body that is not `replayable` streams after the head, `prefix` (already read) first.
        With `fresh_first`, it does not take a pooled connection."""
        timeouts = zone.timeouts
        attempt = Attempt(origin.address)
        ex.attempts.append(attempt)
        started = self._loop.time()
        origin.in_flight += 1
        response: ResponseHead | OriginFailure
        for fresh in (True,) if fresh_first else (False, True):
            # The retry after a dead pooled connection must not take another pooled one:
            # the origin may have closed them all at once.
            conn, reused = await origin.acquire(timeouts.connect, reuse=not fresh)
            if isinstance(conn, OriginFailure):
                origin.in_flight -= 1
                return self._failed(ex, zone, pool, attempt, conn, started)
            await conn.send(
                request, ex.head.method == b"HEAD", timeouts.response_head, timeouts.read
            )
            pump = None
            if not replayable:
                assert ex.body is not None
                pump = asyncio.create_task(
                    _pump(ex.body, conn, ex.head.content_length, prefix)
                )
                pump.add_done_callback(_retrieve)
            response = await conn.read_head()
            if isinstance(response, OriginFailure):
                conn.abort()
                if pump is not None:
                    pump.cancel()
                    client_error = _body_error(pump)
                    if client_error is not None:
                        origin.in_flight -= 1
                        await self._answer(
                            ex, client_error.status, Outcome.BAD_REQUEST, client_error.reason
                        )
                        return None
                # A pooled connection the origin closed while idle: one fresh try.
                if reused and not fresh and replayable and conn.closed_unanswered(response):
                    continue
                origin.in_flight -= 1
                return self._failed(ex, zone, pool, attempt, response, started)
            break
        assert isinstance(response, ResponseHead) and isinstance(conn, OriginConnection)
        conn.counted = True
        attempt.status = response.status
        attempt.seconds = ex.upstream_seconds = self._loop.time() - started
        self.metrics.count_attempt(zone.name, pool.name, origin.address, "ok", attempt.seconds)
        if len(ex.attempts) > 1:
            ex.outcome = Outcome.RETRIED
        return Fetched(origin, conn, response, pump)

    def _failed(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        pool: PoolRuntime,
        attempt: Attempt,
        failure: OriginFailure,
        started: float,
    ) -> OriginFailure:
        attempt.status = failure.code.value
        attempt.error = failure.code.kind
        attempt.detail = failure.detail
        attempt.seconds = self._loop.time() - started
        self.metrics.count_attempt(
            zone.name, pool.name, attempt.origin, failure.code.kind, attempt.seconds
        )
        return failure

    async def _deliver(
        self,
        ex: Exchange,
        fetched: Fetched,
        finish_headers: Callable[[Headers], None] | None = None,
        writer: Writer | None = None,
        part: tuple[int, int] | None = None,
    ) -> bool:
        """Stream the origin's response to the client with back-pressure. With `writer`, the
        cache's, also feed it the body; True when the response completed cleanly and the
        writer took all of it. With `part`, the client gets only those bytes, as a 206."""
        try:
            return await self._stream(ex, fetched, finish_headers, writer, part)
        finally:
            fetched.finish()

    def client_head(
        self,
        ex: Exchange,
        response: ResponseHead,
        finish_headers: Callable[[Headers], None] | None,
        part: tuple[int, int] | None = None,
    ) -> tuple[bytes, bool, bool]:
        """The response head for the client, whether the body is re-chunked, and whether
        the connection stays open after it. With `part`, the head of a 206 of those bytes."""
        head = ex.head
        status = response.status
        keep_alive = head.keep_alive and not self.draining
        headers = _client_headers(response)
        chunked = False
        if part is not None and response.content_length is not None:
            start, end = part
            status = 206
            headers.append((b"content-length", b"%d" % (end + 1 - start)))
            headers.append((b"content-range", content_range(start, end, response.content_length)))
        elif head.method == b"HEAD" or status == 204 or status == 304:
            if status != 204 and response.content_length is not None:
                headers.append((b"content-length", b"%d" % response.content_length))
        elif response.content_length is not None and not response.chunked:
            headers.append((b"content-length", b"%d" % response.content_length))
        elif head.version == b"1.1":
            headers.append((b"transfer-encoding", b"chunked"))
            chunked = True
        else:
            keep_alive = False  # delimited by closing the connection
        ex.status = status
        if finish_headers is not None:
            finish_headers(headers)
        for response_filter in self.runtime.response_filters:
            response_filter.on_response(ex, headers)
        # The head and whatever body already arrived leave in one write (one syscall).
        data = status_line(status) + serialize_headers(headers)
        return data + _tail(ex.ray, keep_alive, head.version), chunked, keep_alive

    async def _stream(
        self,
        ex: Exchange,
        fetched: Fetched,
        finish_headers: Callable[[Headers], None] | None,
        writer: Writer | None,
        part: tuple[int, int] | None,
    ) -> bool:
        client = ex.conn
        origin, upstream, response, pump = fetched
        response_head, chunked, keep_alive = self.client_head(ex, response, finish_headers, part)
        first_write = [response_head]
        pending: list[bytes] | None = first_write
        offset = 0  # body bytes seen so far, for cutting out `part`

        def sink(data: bytes) -> None:
            nonlocal writer, offset
            if writer is not None and not writer.write(data):
                writer = None  # too large to cache, or the disk failed: stream only
                if client.closed:
                    upstream.abort()  # nobody left to read it
                    return
            if part is not None:
                seen, offset = offset, offset + len(data)
                data = data[max(0, part[0] - seen) : max(0, part[1] + 1 - seen)]
                if not data:
                    return
            ex.bytes_out += len(data)
            piece = chunk(data) if chunked else data
            if pending is not None:
                pending.append(piece)
                return
            client.write(piece)
            if client.write_paused and not client.closed:
                upstream.pause_reading()

        def client_lost() -> None:
            if writer is None:
                upstream.abort()
            else:  # spec §8.1: a fill finishes and is cached even if its client disconnects
                upstream.resume_reading()

        done = upstream.stream_body(sink)
        finished_early = done.done() and done.result()
        pending = None
        if finished_early and chunked:
            first_write.append(LAST_CHUNK)
        client.write(b"".join(first_write))
        if client.write_paused:
            upstream.pause_reading()
        client.on_writable = upstream.resume_reading
        client.on_lost = client_lost
        if client.closed:
            client_lost()
        complete = await done
        client.on_writable = client.on_lost = None
        if pump is not None and not pump.done():
            # The origin answered before taking the whole body: that connection is spent.
            pump.cancel()
            upstream.close()
        if client.closed:
            ex.outcome = Outcome.CLIENT_ABORT
            if complete and writer is not None:
                origin.release(upstream)
                return True
            upstream.abort()
            return False
        if not complete:
            # Truncated by the origin after the head went out: the only honest signal left is
            # to break the client connection too.
            client.abort()
            ex.outcome = Outcome.ORIGIN_ABORT
            return False
        if chunked and not finished_early:
            client.write(LAST_CHUNK)
        origin.release(upstream)
        client.finish(keep_alive, ex.body)
        return writer is not None

    # -- answers from the cache ---------------------------------------------------------------

    async def _respond_cached(
        self, ex: Exchange, cache: ZoneCache, lookup: Lookup, entry: Entry, status: CacheStatus
    ) -> None:
        rest = self._respond_cached_now(ex, cache, lookup, entry, status)
        if rest is not None:
            await rest

    def _respond_cached_now(
        self, ex: Exchange, cache: ZoneCache, lookup: Lookup, entry: Entry, status: CacheStatus
    ) -> Awaitable[object] | None:
        """Answer from a stored entry: at once from memory, by a task from the disk tier."""
        if status is not CacheStatus.STALE and not self.runtime.response_filters:
            fields = cache.plain_hit_fields(lookup, entry, ex, status)
            if fields is not None:
                ex.cache_status = _STATUS_VALUE[status]
                return self._respond_stored(ex, entry.status, fields, entry.body)
        response = cache.respond(lookup, entry, ex, status)
        if status is CacheStatus.STALE:
            response.headers.append((b"warning", b'110 originguard "Response is Stale"'))
        ex.cache_status = status.value
        if isinstance(response, FileResponse):
            return self._respond_file(ex, response, Outcome.CACHED)
        return self._respond_now(ex, response, Outcome.CACHED)

    def _refresh_in_background(
        self, ex: Exchange, zone: ZoneRuntime, runtime: Runtime, cache: ZoneCache, lookup: Lookup
    ) -> None:
        """stale-while-revalidate: one background revalidation per object (RFC 5861 §3)."""
        refreshing = cache.shared.refreshing
        if lookup.key in refreshing:
            return
        refreshing.add(lookup.key)
        background = Exchange(ex.conn, _as_get(ex.head), None, ex.ray, self._loop.time())
        background.client_ip, background.zone = ex.client_ip, zone

        async def refresh() -> None:
            try:
                await self._refetch(background, zone, runtime, cache, lookup)
            except Exception:
                log.exception("background refresh failed for ray %s", ex.ray)
            finally:
                refreshing.discard(lookup.key)

        task = asyncio.create_task(refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refetch(
        self, ex: Exchange, zone: ZoneRuntime, runtime: Runtime, cache: ZoneCache, lookup: Lookup
    ) -> None:
        request = build_head(
            ex.head,
            headers=cache.fill_request_headers(lookup, ex.head.headers),
            host=zone.host_header or ex.head.host,
            peer_ip=ex.conn.peer_ip,
            visitor_ip=ex.client_ip,
            peer_trusted=False,
            scheme=ex.conn.scheme,
            ray=ex.ray.encode(),
            body_length=0,
        )
        request = zone.with_origin_headers(request)
        request_time = time.time()
        fetched = await self._fetch(ex, zone, request, True)
        if not isinstance(fetched, Fetched):
            return
        response_time = time.time()
        try:
            if fetched.response.status == 304:
                cache.revalidated(lookup, fetched.response.headers, request_time, response_time)
                fetched.discard()
                return
            decision = cache.storability(lookup, ex, fetched.response, response_time)
            writer = None
            if isinstance(decision, Storable):
                writer = cache.begin_store(
                    lookup, ex, fetched.response, decision, request_time, response_time
                )
            if writer is None:
                fetched.discard()
            elif await fetched.read_body(writer):
                writer.commit()
            if writer is not None:
                writer.abort()  # a no-op once committed
        finally:
            fetched.finish()

    # -- local answers --------------------------------------------------------------------------

    async def _answer(self, ex: Exchange, status: int, outcome: Outcome, reason: str) -> None:
        accept = header_value(ex.head.headers, b"accept")
        page = error_page(status, ex.ray, ex.client_ip or ex.conn.peer_ip, wants_json(accept))
        ex.reason = reason
        await self._respond(ex, page, outcome)

    async def _respond(self, ex: Exchange, response: Response, outcome: Outcome) -> None:
        """Send a response made at the edge, and wait until the client has taken it."""
        drained = self._respond_now(ex, response, outcome)
        if drained is not None:
            await drained

    def _respond_now(
        self, ex: Exchange, response: Response, outcome: Outcome
    ) -> Awaitable[object] | None:
        """Send a response made at the edge; what to await if the client is behind.
        Rule G3: an unread request body closes the connection."""
        body = ex.body
        keep_alive = (
            ex.head.keep_alive and not self.draining and (body is None or body.complete)
        )
        ex.status = response.status
        ex.outcome = outcome
        for response_filter in self.runtime.response_filters:
            response_filter.on_response(ex, response.headers)
        data = self._local_head(response, ex.ray, keep_alive, ex.head.version)
        if ex.head.method != b"HEAD":
            data += response.body
        ex.bytes_out = len(response.body)
        conn = ex.conn
        conn.write(data)
        conn.finish(keep_alive, body)
        return conn.drain() if conn.write_paused else None

    def _respond_stored(
        self, ex: Exchange, status: int, fields: bytes, body: bytes
    ) -> Awaitable[object] | None:
        """`_respond_now` for a hit whose header fields are already serialised."""
        keep_alive = (
            ex.head.keep_alive and not self.draining and (ex.body is None or ex.body.complete)
        )
        ex.status = status
        ex.outcome = Outcome.CACHED
        data = [status_line(status), fields]
        if status != 204 and status != 304:
            data.append(b"content-length: %d\r\n" % len(body))
        data.append(_tail(ex.ray, keep_alive, ex.head.version))
        conn = ex.conn
        if ex.head.method != b"HEAD":
            if len(body) > STORED_SLICE:
                conn.write(b"".join(data))
                return self._write_slices(ex, body, keep_alive)
            data.append(body)
        ex.bytes_out = len(body)
        conn.write(b"".join(data))
        conn.finish(keep_alive, ex.body)
        return conn.drain() if conn.write_paused else None

    async def _write_slices(self, ex: Exchange, body: bytes, keep_alive: bool) -> None:
        conn = ex.conn
        try:
            for start in range(0, len(body), STORED_SLICE):
                piece = body[start : start + STORED_SLICE]  # a bounded copy per client
                conn.write(piece)
                ex.bytes_out += len(piece)
                await conn.drain()
                if conn.closed:
                    ex.outcome = Outcome.CLIENT_ABORT
                    return
        except ConnectionResetError:
            ex.outcome = Outcome.CLIENT_ABORT
            return
        conn.finish(keep_alive, ex.body)

    async def _respond_file(self, ex: Exchange, response: FileResponse, outcome: Outcome) -> None:
        """Send a cached body from the disk tier: the head, then the file in chunks, each
        written only when the client took the previous one (never the whole body in memory)."""
        source, conn, body = response.body, ex.conn, ex.body
        keep_alive = (
            ex.head.keep_alive and not self.draining and (body is None or body.complete)
        )
        ex.status = response.status
        ex.outcome = outcome
        try:
            for response_filter in self.runtime.response_filters:
                response_filter.on_response(ex, response.headers)
            headers = response.headers + [(b"content-length", b"%d" % source.length)]
            tail = _tail(ex.ray, keep_alive, ex.head.version)
            conn.write(status_line(response.status) + serialize_headers(headers) + tail)
            if ex.head.method != b"HEAD":
                async for data in source.chunks():
                    conn.write(data)
                    ex.bytes_out += len(data)
                    await conn.drain()
                    if conn.closed:
                        break
                if ex.bytes_out < source.length:  # the client left, or the file was cut short
                    ex.outcome = Outcome.CLIENT_ABORT if conn.closed else outcome
                    conn.abort()
                    return
            conn.finish(keep_alive, body)
        except ConnectionResetError:
            ex.outcome = Outcome.CLIENT_ABORT
        finally:
            source.close()

    def _local_head(
        self, response: Response, ray: str, keep_alive: bool, version: bytes = b"1.1"
    ) -> bytes:
        headers = response.headers
        if response.status not in (204, 304):
            headers = headers + [(b"content-length", b"%d" % len(response.body))]
        return status_line(response.status) + serialize_headers(headers) + _tail(
            ray, keep_alive, version
        )

    # -- completion -------------------------------------------------------------------------------

    def _complete(self, ex: Exchange, runtime: Runtime) -> None:
        now = self._loop.time()
        zone = ex.zone.name if ex.zone else "-"
        # Outcome is a StrEnum: the member is its own label (reading .value costs more).
        self.metrics.count_request(zone, ex.status, ex.outcome, now - ex.started)
        self.access_log.record(ex, now)
        for observer in runtime.observers:
            observer.on_complete(ex)

    def _ray(self, runtime: Runtime) -> str:
        # A random per-process start plus a counter: unique per request, no syscall per id.
        self._ray_counter = (self._ray_counter + 1) & _RAY_MASK
        return f"{self._ray_counter:016x}-{runtime.node_id}"


def _tail(ray: str, keep_alive: bool, version: bytes) -> bytes:
    if not keep_alive:
        return b"server: originguard\r\nog-ray: %s\r\nconnection: close\r\n\r\n" % ray.encode()
    if version == b"1.0":
        return (
            b"server: originguard\r\nog-ray: %s\r\nconnection: keep-alive\r\n\r\n"
            % ray.encode()
        )
    return b"server: originguard\r\nog-ray: %s\r\n\r\n" % ray.encode()


def _client_headers(response: ResponseHead) -> Headers:
    headers = response.headers
    if not response.has_connection:
        return [(name, value) for name, value in headers if name not in _NOT_FOR_CLIENT]
    named = connection_tokens(headers)
    return [
        (name, value)
        for name, value in headers
        if name not in _NOT_FOR_CLIENT and name not in named
    ]


def _as_get(head: RequestHead) -> RequestHead:
    return replace(head, method=b"GET") if head.method != b"GET" else head


async def _read_prefix(body: Body, limit: int) -> tuple[bytes, bool]:
    """The body's first bytes, up to about `limit`, and whether that was all of it."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        data = await body.read_many()
        if not data:
            return b"".join(parts), True
        parts.append(data)
        size += len(data)
    return b"".join(parts), False


async def _pump(
    body: Body, upstream: OriginConnection, content_length: int | None, prefix: bytes = b""
) -> None:
    """Stream the client's body to the origin, re-chunking when its length is unknown (G2)."""
    chunked = content_length is None
    try:
        if prefix:
            upstream.write(chunk(prefix) if chunked else prefix)
        while True:
            data = await body.read_many()
            if not data:
                break
            upstream.write(chunk(data) if chunked else data)
            await upstream.drain()
        if chunked:
            upstream.write(LAST_CHUNK)
    except BodyError:
        upstream.abort()
        raise


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _body_error(pump: asyncio.Task[None]) -> BodyError | None:
    if pump.done() and not pump.cancelled():
        error = pump.exception()
        if isinstance(error, BodyError):
            return error
    return None

