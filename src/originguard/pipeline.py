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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
from originguard.outcome import Outcome
from originguard.routing import PoolRuntime, Router, ZoneRuntime
from originguard.upstream.connection import OriginConnection, OriginFailure
from originguard.upstream.pool import Origin
from originguard.upstream.request import IpNetwork, build_head, client_ip, is_trusted

log = logging.getLogger("originguard.pipeline")

# Bodies up to this size are read before the first attempt so a failed attempt can be
# replayed on another origin (nginx's proxy_request_buffering does the same by default).
REPLAY_LIMIT = 64 * 1024
_RAY_MASK = (1 << 64) - 1

# Response fields the origin may not pass to visitors (spec §2.3).
_ORIGIN_ONLY = frozenset(
    {
        b"content-length",
        b"x-accel-buffering",
        b"x-accel-charset",
        b"x-accel-limit-rate",
        b"x-accel-redirect",
        b"x-accel-expires",
    }
)


class RequestFilter(Protocol):
    async def on_request(self, ex: Exchange) -> Response | None: ...


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


class Pipeline:
    def __init__(self, runtime: Runtime, metrics: Metrics, access_log: AccessLog) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.access_log = access_log
        self.draining = False
        self._loop = asyncio.get_event_loop()
        self._ray_counter = int.from_bytes(os.urandom(8), "big")

    # -- entry points from the client connection ----------------------------------------------

    async def handle(self, conn: ClientConnection, head: RequestHead, body: Body | None) -> None:
        runtime = self.runtime
        ex = Exchange(conn, head, body, self._ray(runtime), self._loop.time())
        self.metrics.in_flight += 1
        try:
            await self._serve(ex, runtime)
        except Exception:
            log.exception("internal error in exchange %s", ex.ray)
            if not ex.status:
                await self._answer(ex, 500, Outcome.BAD_REQUEST, "internal error")
            else:
                conn.abort()
        finally:
            self.metrics.in_flight -= 1
            self._complete(ex, runtime)

    def reject(self, conn: ClientConnection, status: int, reason: str) -> None:
        """A request that failed parsing: an error page and `Connection: close` (rule G1)."""
        ray = self._ray(self.runtime)
        page = error_page(status, ray, conn.peer_ip, wants_json=False)
        conn.write(self._local_head(page, ray, keep_alive=False) + page.body)
        self.metrics.rejected.labels(str(status)).inc()
        self.access_log.record_rejection(ray, conn.peer_ip, status, reason)

    # -- the phases ---------------------------------------------------------------------------

    async def _serve(self, ex: Exchange, runtime: Runtime) -> None:
        # admit
        ex.client_ip = client_ip(ex.conn.peer_ip, ex.head, runtime.trusted_proxies)
        zone = runtime.router.route(ex.head.host)
        if zone is None:
            await self._answer(ex, 421, Outcome.NO_ZONE, "no zone for host")
            return
        ex.zone = zone
        # guard
        for request_filter in runtime.request_filters:
            response = await request_filter.on_request(ex)
            if response is not None:
                await self._respond(ex, response, Outcome.LOCAL)
                return
        # fetch and deliver
        await self._proxy(ex, zone, runtime)

    async def _proxy(self, ex: Exchange, zone: ZoneRuntime, runtime: Runtime) -> None:
        pool = zone.active_pool()
        if pool is None:
            await self._answer(ex, 530, Outcome.NO_ORIGIN, "no usable pool")
            return
        head, body = ex.head, ex.body
        payload = b""
        replayable = True
        body_length: int | None = 0
        if body is not None:
            if head.content_length is not None and head.content_length <= REPLAY_LIMIT:
                try:
                    payload = await _read_all(body)
                except BodyError as error:
                    await self._answer(ex, error.status, Outcome.BAD_REQUEST, error.reason)
                    return
                body_length = len(payload)
            else:
                replayable = False
                body_length = head.content_length  # None: re-chunked by the edge
        peer_trusted = ex.client_ip != ex.conn.peer_ip or is_trusted(
            ex.conn.peer_ip, runtime.trusted_proxies
        )
        request = build_head(
            head,
            host=zone.host_header or _host_field(head),
            peer_ip=ex.conn.peer_ip,
            visitor_ip=ex.client_ip,
            peer_trusted=peer_trusted,
            scheme=ex.conn.scheme,
            ray=ex.ray.encode(),
            body_length=body_length,
        )
        exclude: list[Origin] = []
        failure: OriginFailure | None = None
        while True:
            picked = zone.select(ex, pool, exclude)
            if picked is None:
                break
            pool, origin = picked
            result = await self._attempt(ex, zone, pool, origin, request + payload, replayable)
            if result is None:
                return
            failure = result
            # Zero-downtime failover (spec §3): exactly one retry on another origin, only for
            # failures where nothing reached the origin application.
            if exclude or failure.sent or failure.code not in zone.failover_codes:
                break
            self.metrics.failovers.labels(zone.name, str(failure.code.value)).inc()
            exclude.append(origin)
        if failure is None:
            await self._answer(ex, 530, Outcome.NO_ORIGIN, "no usable origin")
            return
        await self._answer(ex, failure.code.value, Outcome.EDGE_ERROR, failure.detail)

    async def _attempt(
        self,
        ex: Exchange,
        zone: ZoneRuntime,
        pool: PoolRuntime,
        origin: Origin,
        request: bytes,
        replayable: bool,
    ) -> OriginFailure | None:
        """One try at `origin`. None when a response was delivered (or the client left)."""
        timeouts = zone.timeouts
        attempt = Attempt(origin.address)
        ex.attempts.append(attempt)
        started = self._loop.time()
        origin.in_flight += 1
        try:
            response: ResponseHead | OriginFailure
            for fresh in (False, True):
                # The retry after a dead pooled connection must not take another pooled one:
                # the origin may have closed them all at once.
                conn, reused = await origin.acquire(timeouts.connect, reuse=not fresh)
                if isinstance(conn, OriginFailure):
                    return self._failed(ex, zone, pool, attempt, conn, started)
                await conn.send(
                    request, ex.head.method == b"HEAD", timeouts.response_head, timeouts.read
                )
                pump = None
                if not replayable:
                    assert ex.body is not None
                    pump = asyncio.create_task(_pump(ex.body, conn, ex.head.content_length))
                    pump.add_done_callback(_retrieve)
                response = await conn.read_head()
                if isinstance(response, OriginFailure):
                    conn.abort()
                    if pump is not None:
                        pump.cancel()
                        client_error = _body_error(pump)
                        if client_error is not None:
                            await self._answer(
                                ex, client_error.status, Outcome.BAD_REQUEST, client_error.reason
                            )
                            return None
                    # A pooled connection the origin closed while idle: one fresh try.
                    if reused and not fresh and replayable and conn.received_nothing:
                        continue
                    return self._failed(ex, zone, pool, attempt, response, started)
                break
            assert isinstance(response, ResponseHead)
            attempt.status = response.status
            attempt.seconds = ex.upstream_seconds = self._loop.time() - started
            self.metrics.count_attempt(zone.name, pool.name, origin.address, "ok", attempt.seconds)
            if len(ex.attempts) > 1:
                ex.outcome = Outcome.RETRIED
            await self._deliver(ex, origin, conn, response, pump)
            return None
        finally:
            origin.in_flight -= 1

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
        origin: Origin,
        upstream: OriginConnection,
        response: ResponseHead,
        pump: asyncio.Task[None] | None,
    ) -> None:
        client, head = ex.conn, ex.head
        status = response.status
        keep_alive = head.keep_alive and not self.draining
        no_body = head.method == b"HEAD" or status in (204, 304)
        headers = _client_headers(response.headers)
        if no_body:
            if status != 204 and response.content_length is not None:
                headers.append((b"content-length", b"%d" % response.content_length))
            framing = b""
        elif response.content_length is not None and not response.chunked:
            headers.append((b"content-length", b"%d" % response.content_length))
            framing = b"length"
        elif head.version == b"1.1":
            headers.append((b"transfer-encoding", b"chunked"))
            framing = b"chunked"
        else:
            framing = b"close"
            keep_alive = False
        ex.status = status
        for response_filter in self.runtime.response_filters:
            response_filter.on_response(ex, headers)
        chunked = framing == b"chunked"
        # The head and whatever body already arrived leave in one write (one syscall).
        response_head = status_line(status) + serialize_headers(headers)
        pending: list[bytes] | None = [response_head + _tail(ex.ray, keep_alive, head.version)]

        def sink(data: bytes) -> None:
            ex.bytes_out += len(data)
            piece = chunk(data) if chunked else data
            if pending is not None:
                pending.append(piece)
                return
            client.write(piece)
            if client.write_paused:
                upstream.pause_reading()

        done = upstream.stream_body(sink)
        finished_early = done.done() and done.result()
        if finished_early and chunked:
            pending.append(LAST_CHUNK)
        client.write(b"".join(pending))
        pending = None
        if client.write_paused:
            upstream.pause_reading()
        client.on_writable = upstream.resume_reading
        client.on_lost = upstream.abort
        complete = await done
        client.on_writable = client.on_lost = None
        if pump is not None and not pump.done():
            # The origin answered before taking the whole body: that connection is spent.
            pump.cancel()
            upstream.close()
        if client.closed:
            upstream.abort()
            ex.outcome = Outcome.CLIENT_ABORT
            return
        if not complete:
            # Truncated by the origin after the head went out: the only honest signal left is
            # to break the client connection too.
            client.abort()
            ex.outcome = Outcome.ORIGIN_ABORT
            return
        if chunked and not finished_early:
            client.write(LAST_CHUNK)
        origin.release(upstream)
        client.finish(keep_alive, ex.body)

    # -- local answers --------------------------------------------------------------------------

    async def _answer(self, ex: Exchange, status: int, outcome: Outcome, reason: str) -> None:
        accept = header_value(ex.head.headers, b"accept")
        page = error_page(status, ex.ray, ex.client_ip or ex.conn.peer_ip, wants_json(accept))
        ex.reason = reason
        await self._respond(ex, page, outcome)

    async def _respond(self, ex: Exchange, response: Response, outcome: Outcome) -> None:
        """Send a response made at the edge. Rule G3: an unread request body closes."""
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
        ex.conn.write(data)
        await ex.conn.drain()
        ex.conn.finish(keep_alive, body)

    def _local_head(
        self, response: Response, ray: str, keep_alive: bool, version: bytes = b"1.1"
    ) -> bytes:
        headers = response.headers + [(b"content-length", b"%d" % len(response.body))]
        return status_line(response.status) + serialize_headers(headers) + _tail(
            ray, keep_alive, version
        )

    # -- completion -------------------------------------------------------------------------------

    def _complete(self, ex: Exchange, runtime: Runtime) -> None:
        now = self._loop.time()
        zone = ex.zone.name if ex.zone else "-"
        self.metrics.count_request(zone, ex.status, ex.outcome.value, now - ex.started)
        self.access_log.record(ex, now)
        for observer in runtime.observers:
            observer.on_complete(ex)

    def _ray(self, runtime: Runtime) -> str:
        # A random per-process start plus a counter: unique per request, no syscall per id.
        self._ray_counter = (self._ray_counter + 1) & _RAY_MASK
        return f"{self._ray_counter:016x}-{runtime.node_id}"


def _tail(ray: str, keep_alive: bool, version: bytes) -> bytes:
    if not keep_alive:
        return b"og-ray: %s\r\nconnection: close\r\n\r\n" % ray.encode()
    if version == b"1.0":
        return b"og-ray: %s\r\nconnection: keep-alive\r\n\r\n" % ray.encode()
    return b"og-ray: %s\r\n\r\n" % ray.encode()


def _client_headers(headers: Headers) -> Headers:
    named = connection_tokens(headers)
    return [
        (name, value)
        for name, value in headers
        if name not in HOP_BY_HOP and name not in _ORIGIN_ONLY and name not in named
    ]


def _host_field(head: RequestHead) -> bytes:
    value = header_value(head.headers, b"host")
    return value if value is not None else head.host


async def _read_all(body: Body) -> bytes:
    parts = []
    while True:
        data = await body.read()
        if not data:
            return b"".join(parts)
        parts.append(data)


async def _pump(body: Body, upstream: OriginConnection, content_length: int | None) -> None:
    """Stream the client's body to the origin, re-chunking when its length is unknown (G2)."""
    chunked = content_length is None
    try:
        while True:
            data = await body.read()
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

