"""What the Python benchmarks share: a counting origin and `originguard serve` in front of it,
both on free loopback ports, started and stopped as one context."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class CountingOrigin:
    """Answers every request with a fresh-for-an-hour CSS body after `delay`; counts them."""

    def __init__(self, delay: float = 0.0, body_size: int = 1024) -> None:
        self.delay = delay
        self.body = b"x" * body_size
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/css\r\n"
                    b"cache-control: max-age=3600\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(self.body), self.body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the bench is over
        finally:
            writer.close()


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


@dataclass
class Bench:
    origin: CountingOrigin
    edge_port: int


@asynccontextmanager
async def edge_in_front_of(origin: CountingOrigin, extra_config: str = "") -> AsyncIterator[Bench]:
    """The origin on a free port and an edge (zone bench.local) in front of it."""
    origin_port, edge_port, admin_port = free_port(), free_port(), free_port()
    server = await asyncio.start_server(origin.handle, "127.0.0.1", origin_port, backlog=1024)
    config = Path(tempfile.mkdtemp(prefix="og-bench.")) / "originguard.yaml"
    config.write_text(
        f'listen: "127.0.0.1:{edge_port}"\n'
        f'admin:\n  listen: "127.0.0.1:{admin_port}"\n'
        "access_log:\n  enabled: false\n"
        + extra_config
        + "zones:\n  - name: bench\n    hostnames: [bench.local]\n    pools:\n"
        f'      - name: main\n        origins:\n          - address: "127.0.0.1:{origin_port}"\n'
    )
    edge = subprocess.Popen(
        [str(ROOT / ".venv/bin/originguard"), "serve", "-c", str(config), "--log-level", "warning"],
        env=os.environ.copy(),
    )
    try:
        await wait_listening(edge_port)
        yield Bench(origin, edge_port)
    finally:
        edge.terminate()
        edge.wait(10)
        server.close()
