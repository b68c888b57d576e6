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
import sys
import time

from benchkit import CountingOrigin, edge_in_front_of

HOST = b"bench.local"


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


async def main(requests: int, delay: float) -> int:
    origin = CountingOrigin(delay)
    async with edge_in_front_of(origin) as bench:
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(fetch(bench.edge_port, b"/cold/herd.css", start))
            for _ in range(requests)
        ]
        await asyncio.sleep(0.5)  # every connection open before the first request leaves
        began = time.monotonic()
        start.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.monotonic() - began
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
