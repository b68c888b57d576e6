"""The floor for a Python proxy on this machine: uvloop + httptools, one pooled keep-alive
origin connection per client connection, no features, no checks. bench/run.sh measures it
beside originguard so the gap between them is the cost of what originguard does per request.

    python bench/baseline_passthrough.py LISTEN_PORT ORIGIN_PORT
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    def __init__(self, client: Downstream) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.head: list[bytes] = []
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ready.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_status(self, status: bytes) -> None:
        self.head = [b"HTTP/1.1 %d %s\r\n" % (self.parser.get_status_code(), status)]

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head.append(name + b": " + value + b"\r\n")

    def on_headers_complete(self) -> None:
        self.head.append(b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.head.append(body)

    def on_message_complete(self) -> None:
        transport = self.client.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(self.head))


class Downstream(asyncio.Protocol):
    def __init__(self, origin_port: int) -> None:
        self.origin_port = origin_port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.upstream: Upstream | None = None
        self.url = b""
        self.headers: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        self.upstream = Upstream(self)
        loop.create_task(
            loop.create_connection(lambda: self.upstream, "127.0.0.1", self.origin_port)
        )

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append(name + b": " + value + b"\r\n")

    def on_message_complete(self) -> None:
        request = b"GET %s HTTP/1.1\r\n%s\r\n" % (self.url, b"".join(self.headers))
        self.headers = []
        upstream = self.upstream
        assert upstream is not None
        if upstream.transport is not None:
            upstream.transport.write(request)
        else:
            upstream.ready.add_done_callback(lambda _: upstream.transport.write(request))  # type: ignore[union-attr]


async def main(port: int, origin_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Downstream(origin_port), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
