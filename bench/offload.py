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
import random
import sys
import time

from benchkit import CountingOrigin, edge_in_front_of

CONNECTIONS = 64


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


async def main(objects: int, requests: int, s: float) -> None:
    mix = zipf_mix(objects, requests, s)
    statuses: collections.Counter[str] = collections.Counter()
    origin = CountingOrigin(body_size=2048)
    async with edge_in_front_of(origin, "cache:\n  memory: 256MB\n") as bench:
        work = collections.deque(mix)
        began = time.monotonic()
        await asyncio.gather(*(client(bench.edge_port, work, statuses) for _ in range(CONNECTIONS)))
        elapsed = time.monotonic() - began
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
