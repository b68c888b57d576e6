"""Failover drill: steady load through the edge over 3 origins; kill one, then a second, then
bring them back. Prints client-visible errors per phase, time to detect each death and the load
share per origin after slow start. Two detectors, one run each (``--detect both``, the default):

- ``active``: a monitor (interval 1 s, timeout 0.5 s, retries 0); detected = the admin API shows
  the origin unhealthy. Bound: interval x (retries + 1), plus jitter.
- ``passive``: no monitor at all, only outlier detection on real traffic (3 failures in a row,
  2 s ejections); detected = the admin API shows the origin ejected. Target: the first failed
  requests, so the figure is how long 3 requests take to reach the dead origin under load.

    .venv/bin/python bench/failover_drill.py [--clients 8] [--phase 4] [--detect both]

Everything runs on 127.0.0.1: the origins are the integration tests' scriptable origin, the
edge is the real `originguard serve` subprocess.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.edge import Edge  # noqa: E402
from support.origin import Origin  # noqa: E402

INTERVAL = 1.0


class Load:
    """`clients` threads, each a keep-alive client looping GET / through the edge."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.events: list[tuple[float, str]] = []  # (time, origin name or "error:<what>")
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while self.running:
            try:
                conn.request("GET", "/drill", headers={"Host": "site.test"})
                reply = conn.getresponse()
                reply.read()
                what = reply.getheader("x-origin") if reply.status == 200 else None
                outcome = what or f"error:{reply.status}"
            except (OSError, http.client.HTTPException) as error:
                outcome = f"error:{type(error).__name__}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            with self.lock:
                self.events.append((time.monotonic(), outcome))

    def between(self, start: float, end: float) -> Counter[str]:
        with self.lock:
            return Counter(o for t, o in self.events if start <= t < end)

    def stop(self) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(10)


def state_of(edge: Edge, address: str) -> str:
    document = json.loads(edge.admin("/health").body)
    for pool in document["zones"][0]["pools"]:
        for origin in pool["origins"]:
            if origin["address"] == address:
                return str(origin["health"])
    return "missing"


def wait_state(edge: Edge, address: str, state: str, timeout: float = 30.0) -> float:
    start = time.monotonic()
    while state_of(edge, address) != state:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"{address} not {state} within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


def entry_of(edge: Edge, address: str) -> dict[str, object]:
    document = json.loads(edge.admin("/health").body)
    for pool in document["zones"][0]["pools"]:
        for origin in pool["origins"]:
            if origin["address"] == address:
                return dict(origin)
    return {}


def wait_ejected(edge: Edge, address: str, ejected: bool, timeout: float = 30.0) -> float:
    start = time.monotonic()
    while bool(entry_of(edge, address).get("ejected")) != ejected:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"{address} not ejected={ejected} within {timeout}s")
        time.sleep(0.002)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--phase", type=float, default=4.0, help="seconds per phase")
    parser.add_argument("--detect", choices=("active", "passive", "both"), default="both")
    args = parser.parse_args()
    for mode in ("active", "passive") if args.detect == "both" else (args.detect,):
        drill(args.clients, args.phase, mode)


def drill(clients: int, phase: float, mode: str) -> None:
    origins = [Origin(name).start() for name in ("a", "b", "c")]
    passive = mode == "passive"
    balancer: dict[str, object] = {
        "pools": [{"name": "main", "monitor": "web"}],
        "outlier": {"consecutive_failures": 3},
        "slow_start": {"window": f"{phase}s"},
    }
    if passive:
        balancer["pools"] = [{"name": "main"}]  # no monitor: real traffic is the only judge
        balancer["outlier"] = {
            "consecutive_failures": 3,
            "base_ejection": "2s",
            "max_ejection": "2s",
            "max_ejection_percent": 67,  # two of three may be out at once
        }
    config = {
        "listen": "127.0.0.1:0",
        "admin": {"listen": "127.0.0.1:0"},
        "access_log": {"enabled": False},
        "health": {
            "monitors": {
                "web": {"interval": INTERVAL, "timeout": 0.5, "retries": 0, "path": "/health"}
            }
        },
        "zones": [
            {
                "name": "site",
                "hostnames": ["site.test"],
                "pools": [
                    {
                        "name": "main",
                        "steering": "round_robin",
                        "origins": [{"address": o.address} for o in origins],
                    }
                ],
                "load_balancer": balancer,
            }
        ],
    }
    with tempfile.TemporaryDirectory() as workdir:
        edge = Edge(config, Path(workdir)).start()
        try:
            for origin in origins:
                wait_state(edge, origin.address, "unmonitored" if passive else "healthy")
            load = Load(edge.port, clients)
            marks = [("all up", time.monotonic())]
            time.sleep(phase)
            detect = []
            for victim in origins[:2]:
                marks.append((f"{victim.name} killed", time.monotonic()))
                victim.stop(abort=True)
                if passive:
                    seconds = wait_ejected(edge, victim.address, True)
                else:
                    seconds = wait_state(edge, victim.address, "unhealthy")
                detect.append((victim.name, seconds))
                time.sleep(phase)
            for victim in origins[:2]:
                marks.append((f"{victim.name} back", time.monotonic()))
                victim._stopping = False  # the test origin is reused on the same port
                victim.start()
                if passive:
                    wait_ejected(edge, victim.address, False)  # the last ejection runs out
                else:
                    wait_state(edge, victim.address, "healthy")
                time.sleep(phase)
            marks.append(("end", time.monotonic()))
            load.stop()
        finally:
            edge.stop()
            for origin in origins:
                origin.stop()
    if passive:
        print(f"\n[passive] clients={clients} phase={phase}s, no monitor, outlier 3 failures")
    else:
        print(f"\n[active] clients={clients} phase={phase}s monitor interval={INTERVAL}s retries=0")
    for (name, start), (_, end) in zip(marks, marks[1:], strict=False):
        counts = load.between(start, end)
        errors = sum(v for k, v in counts.items() if k.startswith("error"))
        total = sum(counts.values())
        served = {k: v for k, v in sorted(counts.items()) if not k.startswith("error")}
        share = ", ".join(f"{k} {100 * v / max(1, total - errors):.0f}%" for k, v in served.items())
        failed = sorted((k[6:], v) for k, v in counts.items() if k.startswith("error"))
        kinds = ", ".join(f"{k} x{v}" for k, v in failed)
        print(f"{name:10s} {total:7d} requests  {errors:4d} errors  share: {share}")
        if kinds:
            print(f"{'':10s} errors: {kinds}")
    for name, seconds in detect:
        if passive:
            rate = sum(load.between(marks[0][1], marks[1][1]).values()) / phase
            print(
                f"time to detect {name} down (passive, ejected): {seconds * 1000:.1f} ms "
                f"(3 failed attempts at ~{rate:.0f} req/s; admin API polled every 2 ms)"
            )
        else:
            print(
                f"time to detect {name} down (active check): {seconds:.2f}s "
                f"(bound: interval x (retries+1) + jitter = {INTERVAL * 1.1:.1f}s + probe)"
            )
    tail = load.between(marks[-2][1] + phase * 0.75, marks[-1][1])
    total = sum(tail.values())
    print(
        "share in the last quarter after slow start: "
        + ", ".join(f"{k} {100 * v / max(1, total):.0f}%" for k, v in sorted(tail.items()))
    )


if __name__ == "__main__":
    main()
