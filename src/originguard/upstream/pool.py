"""Origins at run time and their keep-alive connection pools."""

from __future__ import annotations

from typing import TYPE_CHECKING

from originguard.upstream.connection import OriginConnection, OriginFailure, connect

if TYPE_CHECKING:
    from originguard.tls import OriginTlsRuntime


class Origin:
    """One origin (host:port) of a pool, with its idle connections and live counters."""

    def __init__(
        self,
        address: str,
        host: str,
        port: int,
        weight: float,
        enabled: bool,
        max_idle: int,
        tls: OriginTlsRuntime | None = None,
    ) -> None:
        self.address = address
        self.host = host
        self.port = port
        self.weight = weight
        self.enabled = enabled
        self.is_usable = enabled and weight > 0  # both fixed for the life of a config
        self.max_idle = max_idle
        self.tls = tls  # None: plain TCP
        self.in_flight = 0
        self.idle: list[OriginConnection] = []
        self.open: set[OriginConnection] = set()
        self.successor: Origin | None = None  # the same origin in a newer config

    async def acquire(
        self, connect_timeout: float, reuse: bool = True
    ) -> tuple[OriginConnection | OriginFailure, bool]:
        """A connection and whether it was reused from the pool; `reuse=False` connects anew."""
        if reuse:
            pooled = self.take_idle()
            if pooled is not None:
                return pooled, True
        tls = self.tls
        if tls is None:
            conn_or_failure = await connect(self.host, self.port, connect_timeout, self._forget)
        else:
            conn_or_failure = await connect(
                self.host,
                self.port,
                connect_timeout,
                self._forget,
                tls.context,
                tls.server_hostname,
            )
        if isinstance(conn_or_failure, OriginConnection) and not conn_or_failure.closed:
            self.open.add(conn_or_failure)
        return conn_or_failure, False

    def take_idle(self) -> OriginConnection | None:
        """The most recently used idle connection, if any (it may still turn out closed)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def release(self, conn: OriginConnection) -> None:
        if self.successor is not None:
            self.successor.release(conn)
            return
        if conn.reusable and len(self.idle) < self.max_idle:
            conn.release()
            self.idle.append(conn)
        else:
            conn.close()

    def _forget(self, conn: OriginConnection) -> None:
        self.open.discard(conn)
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def sweep(self, now: float, idle_timeout: float) -> None:
        """Fire per-exchange deadlines and close connections idle for too long."""
        for conn in list(self.open):
            if conn.deadline and now >= conn.deadline:
                conn.on_deadline()
        if self.idle and now - self.idle[0].idle_since > idle_timeout:
            keep = [c for c in self.idle if now - c.idle_since <= idle_timeout]
            for conn in self.idle:
                if conn not in keep:
                    conn.close()
            self.idle[:] = keep

    def close_all(self) -> None:
        for conn in list(self.open):
            conn.close()
        self.idle.clear()

    def adopt(self, previous: Origin) -> None:
        """Take over the idle connections of the same origin from the config being replaced."""
        self.idle = previous.idle
        self.open = previous.open
        previous.idle = []
        previous.successor = self
        for conn in self.open:
            conn.on_close = self._forget

    def __repr__(self) -> str:
        return f"Origin({self.address})"

