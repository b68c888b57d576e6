"""The real client protocol, pipeline and origin protocol with in-memory transports, driven
step by step: a request that looked up a MISS just before another request's fill was stored
must be answered from that entry, not with a second origin request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from originguard.app import build_runtime
from originguard.cache.control import format_http_date
from originguard.config import loads
from originguard.http.server import ClientConnection, ConnectionRegistry
from originguard.observe.access_log import AccessLog
from originguard.observe.metrics import Metrics
from originguard.pipeline import Pipeline
from originguard.upstream import pool
from originguard.upstream.connection import OriginConnection

CONFIG = """
access_log: {enabled: false}
zones:
  - name: site
    hostnames: [site.test]
    pools:
      - name: main
        origins: [{address: "127.0.0.1:9"}]
"""
REQUEST = b"GET /style.css HTTP/1.1\r\nHost: site.test\r\n\r\n"


def response() -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Type: text/css\r\nContent-Length: 4\r\n"
        b"Cache-Control: max-age=300\r\n\r\nbody" % format_http_date(time.time())
    )


class Collecting(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


async def until(condition: Any, steps: int = 200) -> None:
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the pipeline did not get there")


def test_a_miss_looked_up_before_the_fill_was_stored_is_answered_from_it(monkeypatch: Any) -> None:
    origin_side: list[tuple[OriginConnection, Collecting]] = []

    async def connect(host: str, port: int, timeout: float, on_close: Any, **_: Any) -> Any:
        conn = OriginConnection(on_close)
        transport = Collecting()
        conn.connection_made(transport)
        origin_side.append((conn, transport))
        return conn

    monkeypatch.setattr(pool, "connect", connect)

    async def scenario() -> None:
        config = loads(CONFIG, "<test>")
        metrics = Metrics()
        pipeline = Pipeline(build_runtime(config, metrics), metrics, AccessLog("-", enabled=False))
        registry = ConnectionRegistry()
        clients = []
        for _ in range(2):
            client = ClientConnection(pipeline.handle, pipeline.reject, config.limits, registry)
            transport = Collecting()
            client.connection_made(transport)
            clients.append((client, transport))

        clients[0][0].data_received(REQUEST)
        await until(lambda: origin_side and origin_side[0][1].written)
        # The origin's whole response arrives, and in the same moment the second request,
        # whose lookup still finds nothing stored.
        origin_side[0][0].data_received(response())
        clients[1][0].data_received(REQUEST)

        def origin_requests() -> int:
            return sum(len(t.written) for _, t in origin_side)

        def answered(index: int) -> bool:
            return b"".join(clients[index][1].written).endswith(b"body")

        await until(lambda: answered(0) and (answered(1) or origin_requests() > 1))
        assert origin_requests() == 1
        assert b"og-cache-status: hit" in b"".join(clients[1][1].written).lower()

    asyncio.run(scenario())
