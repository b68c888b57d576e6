"""Request collapsing: concurrent misses for one key make one origin request.

    role = collapser.acquire(key)          # synchronous: no race between check and claim
    if isinstance(role, Leader):
        with role:                         # releases on return, exception or cancellation
            entry = await fetch_and_store()
            role.publish(entry)            # or role.publish(None): not shareable
    else:
        result = await role.wait()         # Shared(entry), or go to the origin yourself

A follower never waits forever: after its timeout it proceeds to the origin. If the leader
fails or is cancelled before publishing, followers are released with LEADER_GONE.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from types import TracebackType

from originguard.cache.store import Entry


class Wait(enum.Enum):
    SHARED = "shared"  # the leader's response was stored: serve `entry`
    NOT_SHAREABLE = "not-shareable"  # the origin's answer may not be shared: fetch yourself
    LEADER_GONE = "leader-gone"  # the leader failed or was cancelled: fetch yourself
    TIMED_OUT = "timed-out"  # waited `timeout` seconds: fetch yourself


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Wait
    entry: Entry | None = None


_GONE = Outcome(Wait.LEADER_GONE)
_NOT_SHAREABLE = Outcome(Wait.NOT_SHAREABLE)
_TIMED_OUT = Outcome(Wait.TIMED_OUT)


class _Flight:
    __slots__ = ("done", "followers")

    def __init__(self) -> None:
        self.done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.followers = 0


class Leader:
    """The one request that goes to the origin for the key."""

    def __init__(self, collapser: Collapser, key: bytes, flight: _Flight) -> None:
        self._collapser = collapser
        self.key = key
        self._flight = flight

    @property
    def followers(self) -> int:
        """How many requests are waiting on this one."""
        return self._flight.followers

    def publish(self, entry: Entry | None) -> None:
        """Hand the stored entry to the followers (None: not shareable) and release the key."""
        self._finish(_NOT_SHAREABLE if entry is None else Outcome(Wait.SHARED, entry))

    def release(self) -> None:
        """Release without a result (idempotent): followers get LEADER_GONE."""
        self._finish(_GONE)

    def _finish(self, outcome: Outcome) -> None:
        if not self._flight.done.done():
            self._flight.done.set_result(outcome)
        self._collapser._forget(self.key, self._flight)

    def __enter__(self) -> Leader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Follower:
    """A request that waits for the leader's outcome."""

    def __init__(self, key: bytes, flight: _Flight, timeout: float) -> None:
        self.key = key
        self._flight = flight
        self.timeout = timeout

    async def wait(self, timeout: float | None = None) -> Outcome:
        """The leader's outcome, or TIMED_OUT after `timeout` (default: the acquire timeout).
        Cancelling one follower never disturbs the leader or the other followers."""
        limit = self.timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(self._flight.done), max(limit, 0.0))
        except TimeoutError:
            return _TIMED_OUT


class Collapser:
    """Per-process registry of in-flight origin fetches, by cache key."""

    def __init__(self, lock_timeout: float = 5.0) -> None:
        self.lock_timeout = lock_timeout
        self._flights: dict[bytes, _Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def acquire(self, key: bytes, timeout: float | None = None) -> Leader | Follower:
        """Leader if nobody is fetching `key`, else a Follower of the fetch under way.
        Must be called from a running event loop."""
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight()
            self._flights[key] = flight
            return Leader(self, key, flight)
        flight.followers += 1
        return Follower(key, flight, self.lock_timeout if timeout is None else timeout)

    def _forget(self, key: bytes, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
