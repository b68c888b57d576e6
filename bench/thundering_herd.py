"""Thundering herd: N concurrent requests for one cold URL whose origin takes 200 ms.

    .venv/bin/python bench/thundering_herd.py [--requests 500] [--delay 0.2]

Starts a counting origin and `originguard serve` in front of it, opens N connections, sends
the same GET on each at once and prints how many requests the origin saw (request
collapsing: it must be 1) and the cache status of the answers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = b"bench.local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingOrigin:
    """An origin that answers every request after `delay` seconds and counts them."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                await asyncio.sleep(self.delay)
                body = b"x" * 1024
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/css\r\n"
                    b"cache-control: max-age=3600\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the bench is over
        finally:
            writer.close()


async def fetch(port: int, target: bytes, start: asyncio.Event) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await start.wait()
    writer.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, HOST))
    data = await reader.read(-1)
    writer.close()
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    cache = "-"
    for line in head:
        name, _, value = line.partition(":")
        if name.lower() == "og-cache-status":
            cache = value.strip()
    return status, cache


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


async def main(requests: int, delay: float) -> int:
    origin = CountingOrigin(delay)
    origin_port, edge_port, admin_port = free_port(), free_port(), free_port()
    server = await asyncio.start_server(origin.handle, "127.0.0.1", origin_port, backlog=1024)
    work = Path(tempfile.mkdtemp(prefix="og-herd."))
    config = work / "originguard.yaml"
    config.write_text(
        f'listen: "127.0.0.1:{edge_port}"\n'
        f'admin:\n  listen: "127.0.0.1:{admin_port}"\n'
        "access_log:\n  enabled: false\n"
        "zones:\n  - name: bench\n    hostnames: [bench.local]\n    pools:\n"
        f'      - name: main\n        origins:\n          - address: "127.0.0.1:{origin_port}"\n'
    )
    edge = subprocess.Popen(
        [str(ROOT / ".venv/bin/originguard"), "serve", "-c", str(config), "--log-level", "warning"],
        env=os.environ.copy(),
    )
    try:
        await wait_listening(edge_port)
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(fetch(edge_port, b"/cold/herd.css", start)) for _ in range(requests)
        ]
        await asyncio.sleep(0.5)  # every connection open before the first request leaves
        began = time.monotonic()
        start.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.monotonic() - began
    finally:
        edge.terminate()
        edge.wait(10)
        server.close()
    answers = collections.Counter(
        ("error", type(r).__name__) if isinstance(r, BaseException) else r for r in results
    )
    print(f"{requests} concurrent requests for one cold URL, origin delay {delay * 1000:.0f} ms")
    print(f"answers (status, og-cache-status): {dict(answers)}")
    print(f"all answered in {elapsed * 1000:.0f} ms")
    print(f"origin requests: {origin.requests}")
    return 0 if origin.requests == 1 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.requests, args.delay)))
