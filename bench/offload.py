"""Origin offload: a Zipf-distributed mix of URLs over 10,000 distinct objects.

    .venv/bin/python bench/offload.py [--objects 10000] [--requests 100000] [--s 1.0]

Starts a counting origin (every object fresh for an hour) and `originguard serve` in front of
it, sends the mix over 64 keep-alive connections, and prints the edge's hit ratio (from
OG-Cache-Status) and how many requests reached the origin. The mix is seeded: reruns are
comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import itertools
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingOrigin:
    def __init__(self) -> None:
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                body = b"x" * 2048
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/css\r\n"
                    b"cache-control: max-age=3600\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the edge closed the connection, or the bench is over
        finally:
            writer.close()


def zipf_mix(objects: int, requests: int, s: float, seed: int = 1) -> list[int]:
    """`requests` object ranks drawn with P(rank k) proportional to 1 / k**s."""
    weights = [1.0 / (k**s) for k in range(1, objects + 1)]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    rng = random.Random(seed)
    return [bisect.bisect(cumulative, rng.random() * total) for _ in range(requests)]


async def client(port: int, work: collections.deque[int], statuses: collections.Counter[str]):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while work:
            rank = work.popleft()
            writer.write(b"GET /obj/%d.css HTTP/1.1\r\nHost: bench.local\r\n\r\n" % rank)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            cache = "-"
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                name = name.lower()
                if name == "content-length":
                    length = int(value)
                elif name == "og-cache-status":
                    cache = value.strip()
            await reader.readexactly(length)
            statuses[cache] += 1
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


async def main(objects: int, requests: int, s: float) -> None:
    origin = CountingOrigin()
    origin_port, edge_port, admin_port = free_port(), free_port(), free_port()
    server = await asyncio.start_server(origin.handle, "127.0.0.1", origin_port)
    work_dir = Path(tempfile.mkdtemp(prefix="og-offload."))
    config = work_dir / "originguard.yaml"
    config.write_text(
        f'listen: "127.0.0.1:{edge_port}"\n'
        f'admin:\n  listen: "127.0.0.1:{admin_port}"\n'
        "access_log:\n  enabled: false\n"
        "cache:\n  memory: 256MB\n"
        "zones:\n  - name: bench\n    hostnames: [bench.local]\n    pools:\n"
        f'      - name: main\n        origins:\n          - address: "127.0.0.1:{origin_port}"\n'
    )
    edge = subprocess.Popen(
        [str(ROOT / ".venv/bin/originguard"), "serve", "-c", str(config), "--log-level", "warning"],
        env=os.environ.copy(),
    )
    mix = zipf_mix(objects, requests, s)
    statuses: collections.Counter[str] = collections.Counter()
    try:
        await wait_listening(edge_port)
        work = collections.deque(mix)
        began = time.monotonic()
        await asyncio.gather(*(client(edge_port, work, statuses) for _ in range(CONNECTIONS)))
        elapsed = time.monotonic() - began
    finally:
        edge.terminate()
        edge.wait(10)
        server.close()
    hits = statuses["HIT"]
    print(f"{requests} requests, Zipf s={s} over {objects} objects ({len(set(mix))} requested)")
    print(f"cache statuses: {dict(statuses)}   ({requests / elapsed:.0f} req/s)")
    print(f"hit ratio: {hits / requests:.3f}")
    print(f"origin requests: {origin.requests} ({origin.requests / requests:.3f} of requests)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--s", type=float, default=1.0, help="Zipf exponent")
    args = parser.parse_args()
    asyncio.run(main(args.objects, args.requests, args.s))
    sys.exit(0)
