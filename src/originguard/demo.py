"""`originguard demo`: two demo origins on loopback and the edge in front of them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys

from originguard.app import Edge
from originguard.config import loads
from originguard.health.service import find_health
from originguard.health.state import Health

log = logging.getLogger("originguard")

DEMO_CONFIG = """
listen: "127.0.0.1:{edge_port}"
admin:
  listen: "127.0.0.1:{admin_port}"
node_id: demo
access_log:
  path: "-"
health:
  monitors:
    demo:
      type: http
      interval: 2s
      timeout: 1s
zones:
  - name: demo
    hostnames: [localhost, demo.localhost, "*.demo.localhost"]
    timeouts:
      connect: 2s
      response_head: 10s
    pools:
      - name: main
        steering: round_robin
        origins:
          - address: "127.0.0.1:{port_a}"
          - address: "127.0.0.1:{port_b}"
    load_balancer:
      pools: [{{name: main, monitor: demo}}]
"""


def free_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else a port the OS picks."""
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            if candidate == 0:
                log.warning("demo: port %d is taken (another demo?); using %d", preferred, port)
            return port
    raise RuntimeError("no free port")


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"demo origin on port {port} did not start")


async def run_demo(edge_port: int = 8080, admin_port: int = 9090) -> int:
    ports = {"a": free_port(8081), "b": free_port(8082)}
    origins = {
        name: subprocess.Popen(
            [sys.executable, "-m", "originguard.demo_origin", "--name", name, "--port", str(port)]
        )
        for name, port in ports.items()
    }
    try:
        for port in ports.values():
            await wait_listening(port)
        config = loads(
            DEMO_CONFIG.format(
                edge_port=free_port(edge_port),
                admin_port=free_port(admin_port),
                port_a=ports["a"],
                port_b=ports["b"],
            ),
            "<demo>",
        )
        edge = Edge(config)
        await edge.start(signals=True)
        await _first_health_results(edge)
        host, port = edge.bound[0]
        admin = edge._admin.address if edge._admin else "?"
        print(_instructions(f"http://localhost:{port}", admin, origins, ports), flush=True)
        await edge.wait_stopped()
    finally:
        for process in origins.values():
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in origins.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
    return 0


async def _first_health_results(edge: Edge, timeout: float = 5.0) -> None:
    """Wait (bounded) until every origin has a health result: until then an origin counts as
    down (spec §6.3), so the first requests would all go to whichever was probed first."""
    health = find_health(edge.pipeline.runtime.services) if edge.pipeline else None
    if health is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(state.state is not Health.UNKNOWN for state in health.states.values()):
            return
        await asyncio.sleep(0.02)


def _instructions(
    edge: str, admin: str, origins: dict[str, subprocess.Popen[bytes]], ports: dict[str, int]
) -> str:
    return f"""
originguard demo is running.

  edge     {edge}
  origin a 127.0.0.1:{ports["a"]}  (pid {origins["a"].pid})
  origin b 127.0.0.1:{ports["b"]}  (pid {origins["b"].pid})
  admin    http://{admin}

Try, in another terminal:
  curl -i {edge}/                         # answered by origin a or b (round robin); see OG-Ray
  for i in 1 2 3 4; do curl -s {edge}/ | head -1; done
  kill {origins["a"].pid}                         # stop origin a ...
  for i in 1 2 3 4; do curl -s {edge}/ | head -1; done    # ... every request still answered, by b
  sleep 3; curl -s 'http://{admin}/health?results=0' | python3 -m json.tool \
    | grep -E '"(address|health|failure_reason)"'   # the 2 s health check has marked a down
  kill {origins["b"].pid}                         # stop b too: the edge answers a clean 521 page
  curl -i {edge}/
  curl -s http://{admin}/metrics | grep og_          # requests, origin attempts, failovers
  curl -s http://{admin}/status                      # zones, pools, origins, in-flight

Every request is logged below as one JSON line. Ctrl-C stops the demo.
"""
