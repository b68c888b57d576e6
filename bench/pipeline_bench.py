"""Python work per proxied request, without sockets: the real client protocol, pipeline and
origin protocol on uvloop, with in-memory transports. Repeatable to a few percent (no kernel,
no wrk, no other process), so it is the tool for trimming the hot path.

    .venv/bin/python bench/pipeline_bench.py [requests] [path]

`/1k` is proxied (DYNAMIC); `/1k.css` is a cache HIT after the first request.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import uvloop

from originguard.app import build_runtime
from originguard.cache.control import format_http_date as http_date
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
  - name: bench
    hostnames: [bench.local]
    pools:
      - name: main
        origins: [{address: "127.0.0.1:9"}]
"""
BODY = b"x" * 1024
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: %s\r\n"
    b"Content-Type: text/css\r\nContent-Length: 1024\r\nLast-Modified: Thu, 03 Dec 2026 "
    b"17:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"abc-400\"\r\n"
    b"Cache-Control: max-age=3600\r\nAccept-Ranges: bytes\r\n\r\n" % http_date(time.time())
) + BODY


class ClientTransport(asyncio.Transport):
    """Collects what the edge writes; a response is complete when its body has arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.received = 0
        self.waiter: asyncio.Future[None] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.received += len(data)
        if data.endswith(BODY) and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None:
        raise AssertionError("the edge closed the client connection")

    def abort(self) -> None:
        self.close()


class OriginTransport(asyncio.Transport):
    """Answers every request written to it with RESPONSE, on the next loop iteration."""

    def __init__(self, protocol: OriginConnection) -> None:
        super().__init__()
        self.protocol = protocol
        self.loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.loop.call_soon(self.protocol.data_received, RESPONSE)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


async def fake_connect(host: str, port: int, timeout: float, on_close: Any, **_: Any) -> Any:
    conn = OriginConnection(on_close)
    conn.connection_made(OriginTransport(conn))
    return conn


async def main(count: int, path: bytes) -> None:
    pool.connect = fake_connect  # type: ignore[assignment]
    config = loads(CONFIG, "<bench>")
    metrics = Metrics()
    pipeline = Pipeline(build_runtime(config, metrics), metrics, AccessLog("-", enabled=False))
    conn = ClientConnection(pipeline.handle, pipeline.reject, config.limits, ConnectionRegistry())
    transport = ClientTransport()
    conn.connection_made(transport)
    request = b"GET %s HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: wrk\r\n\r\n" % path
    loop = asyncio.get_running_loop()

    async def one() -> None:
        transport.waiter = loop.create_future()
        conn.data_received(request)
        await transport.waiter

    for _ in range(2000):  # warm up: pools, caches, the store
        await one()
    started = time.perf_counter()
    for _ in range(count):
        await one()
    elapsed = time.perf_counter() - started
    print(f"{path.decode()}: {elapsed / count * 1e6:.1f} µs per request ({count} requests)")


if __name__ == "__main__":
    uvloop.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 50_000,
            (sys.argv[2] if len(sys.argv) > 2 else "/1k").encode(),
        )
    )
