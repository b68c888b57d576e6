"""A request body as a stream, with back-pressure onto the client socket."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class BodyError(Exception):
    """The client's body could not be read: aborted, too slow or too large."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Body:
    """Chunks fed by the protocol, read by the exchange. Reading past the end gives b""."""

    __slots__ = (
        "_chunks",
        "_buffered",
        "_done",
        "_error",
        "_waiter",
        "_pause",
        "_resume",
        "_paused",
        "_on_first_read",
        "received",
        "limit",
    )

    def __init__(
        self,
        limit: int,
        pause: Callable[[], None],
        resume: Callable[[], None],
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: BodyError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._pause = pause
        self._resume = resume
        self._paused = False
        self._on_first_read = on_first_read
        self.received = 0
        self.limit = limit

    @property
    def done(self) -> bool:
        return self._done

    @property
    def complete(self) -> bool:
        """Everything the client declared has arrived."""
        return self._done and self._error is None

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.limit:
            self.fail(BodyError(413, "body larger than limit"))
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._pause()
        self._wake()

    def finish(self) -> None:
        self._done = True
        self._wake()

    def fail(self, error: BodyError) -> None:
        if self._error is None:
            self._error = error
        self._done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        if self._on_first_read is not None:
            callback, self._on_first_read = self._on_first_read, None
            callback()
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered < LOW_WATER:
            self._paused = False
            self._resume()
        return data

    async def read_many(self) -> bytes:
        """Everything buffered so far (waiting for at least one chunk), joined: a client that
        sends one-byte chunks costs the origin side one write per batch, not per chunk."""
        data = await self.read()
        if not data or not self._chunks:
            return data
        parts = [data]
        while self._chunks:
            parts.append(self._chunks.popleft())
        self._buffered = 0
        if self._paused:
            self._paused = False
            self._resume()
        return b"".join(parts)
