"""The pass-through fast path: one proxied exchange driven by origin callbacks, no task.

The pipeline hands a bodiless GET or HEAD to a Relay when the chosen origin has a pooled
connection. The request goes out at once; the response reaches the client from the origin
connection's reads. A pooled connection that turns out closed goes back to the pipeline's
general path (a fresh connection to the same origin); any other failure is answered with its
52x page, as the general path would (nothing is retried once the origin may have seen it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from originguard.exchange import Attempt, Exchange
from originguard.http.messages import ResponseHead
from originguard.http.wire import LAST_CHUNK, chunk
from originguard.outcome import Outcome
from originguard.upstream.connection import OriginConnection, OriginFailure

if TYPE_CHECKING:
    from originguard.cache.layer import Lookup, ZoneCache
    from originguard.pipeline import Pipeline, Runtime
    from originguard.routing import PoolRuntime, ZoneRuntime
    from originguard.upstream.pool import Origin

log = logging.getLogger("originguard.relay")


class Relay:
    """Streams one origin response to the client; a ResponseListener of the connection."""

    __slots__ = (
        "pipeline",
        "ex",
        "runtime",
        "zone",
        "lookup",
        "pool",
        "origin",
        "upstream",
        "cache",
        "attempt",
        "started",
        "head",
        "chunked",
        "keep_alive",
        "over",
    )

    def __init__(
        self,
        pipeline: Pipeline,
        ex: Exchange,
        runtime: Runtime,
        zone: ZoneRuntime,
        lookup: Lookup,
        picked: tuple[PoolRuntime, Origin],
        upstream: OriginConnection,
        cache: ZoneCache | None,
    ) -> None:
        self.pipeline = pipeline
        self.ex = ex
        self.runtime = runtime
        self.zone = zone
        self.lookup = lookup
        self.pool, self.origin = picked
        self.upstream = upstream
        self.cache = cache
        self.attempt = Attempt(self.origin.address)
        self.started = 0.0
        self.head: bytes | None = None  # the client's response head, until it is written
        self.chunked = False
        self.keep_alive = False
        self.over = False

    def send(self, request: bytes) -> None:
        ex, timeouts = self.ex, self.zone.timeouts
        ex.attempts.append(self.attempt)
        self.origin.in_flight += 1
        self.started = self.pipeline.now()
        self.upstream.start(
            self, request, ex.head.method == b"HEAD", timeouts.response_head, timeouts.read
        )

    # -- ResponseListener ---------------------------------------------------------------------

    def on_failure(self, failure: OriginFailure) -> None:
        if self.over:
            return
        self.over = True
        self.origin.in_flight -= 1
        self.upstream.abort()
        ex, pipeline = self.ex, self.pipeline
        ex.relayed = False
        rest: Awaitable[object]
        if self.upstream.closed_unanswered(failure):
            # A pooled connection the origin had closed while idle: one fresh try, which is
            # what the general path does for it.
            ex.attempts.remove(self.attempt)
            rest = pipeline.proxy_anew(
                ex, self.zone, self.runtime, self.lookup, (self.pool, self.origin)
            )
        else:
            rest = pipeline.answer_failure(
                ex, self.zone, self.pool, self.attempt, failure, self.started
            )
        pipeline.continue_with(ex, self.runtime, rest)

    def on_head(self, response: ResponseHead) -> None:
        if self.over:
            return
        ex, attempt = self.ex, self.attempt
        attempt.status = response.status
        attempt.seconds = ex.upstream_seconds = self.pipeline.now() - self.started
        self.pipeline.metrics.count_attempt(
            self.zone.name, self.pool.name, self.origin.address, "ok", attempt.seconds
        )
        cache = self.cache
        try:
            self.head, self.chunked, self.keep_alive = self.pipeline.client_head(
                ex, response, cache.dynamic_headers if cache is not None else None
            )
        except Exception:
            log.exception("internal error in exchange %s", ex.ray)
            self._end(Outcome.ORIGIN_ABORT)

    def on_body(self, chunks: list[bytes], complete: bool) -> None:
        if self.over:
            return
        ex, upstream = self.ex, self.upstream
        client = ex.conn
        for data in chunks:
            ex.bytes_out += len(data)
        if self.chunked:
            chunks = [chunk(data) for data in chunks]
            if complete:
                chunks.append(LAST_CHUNK)
        head = self.head
        if head is not None:
            # The head and whatever body already arrived leave in one write.
            self.head = None
            chunks.insert(0, head)
            client.on_writable = upstream.resume_reading
            client.on_lost = upstream.abort
        if chunks:
            client.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if complete:
            self.over = True
            self.origin.in_flight -= 1
            if client.closed:
                upstream.abort()
                ex.outcome = Outcome.CLIENT_ABORT
            else:
                self.origin.release(upstream)
                client.finish(self.keep_alive, ex.body)
            self.pipeline.finish(ex, self.runtime)
        elif client.write_paused:
            upstream.pause_reading()

    def on_broken(self) -> None:
        # Truncated after the head went out: the only honest signal left is to break the
        # client connection too.
        if not self.over:
            self._end(Outcome.CLIENT_ABORT if self.ex.conn.closed else Outcome.ORIGIN_ABORT)

    def _end(self, outcome: Outcome) -> None:
        self.over = True
        self.origin.in_flight -= 1
        self.upstream.abort()
        ex = self.ex
        if not ex.conn.closed:
            ex.conn.abort()
        ex.outcome = outcome
        self.pipeline.finish(ex, self.runtime)
