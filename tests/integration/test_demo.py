"""`originguard demo`: two demo origins and the edge in front of them, no config written."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest


@pytest.fixture
def demo():
    process = subprocess.Popen(
        [sys.executable, "-c", "from originguard.cli import main; main()", "demo",
         "--port", "0", "--admin-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float = 20.0) -> str:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if re.search(pattern, seen):
            return seen
    raise AssertionError(f"demo never printed {pattern!r}:\n{seen}")


def test_demo_serves_traffic_through_the_edge_and_fails_over(demo) -> None:
    printed = read_until(demo, r"Ctrl-C stops the demo")
    edge = re.search(r"edge\s+(http://\S+)", printed).group(1)
    admin = re.search(r"admin\s+(http://\S+)", printed).group(1)
    pid_a = int(re.search(r"origin a \S+\s+\(pid (\d+)\)", printed).group(1))

    answers = [urllib.request.urlopen(edge + "/", timeout=5).read() for _ in range(4)]
    names = {answer.split(b" (pid")[0] for answer in answers}
    assert names == {b"Hello from origin a", b"Hello from origin b"}

    subprocess.run(["kill", str(pid_a)], check=True)
    after = [urllib.request.urlopen(edge + "/", timeout=5) for _ in range(6)]
    assert {reply.status for reply in after} == {200}
    assert all(b"origin b" in reply.read() for reply in after)

    metrics = urllib.request.urlopen(admin + "/metrics", timeout=5).read().decode()
    assert "og_failover_retries_total" in metrics
    demo.send_signal(signal.SIGTERM)
    assert demo.wait(15) == 0
