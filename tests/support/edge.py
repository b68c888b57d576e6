"""Start the real `originguard serve` as a subprocess on loopback ephemeral ports.

The edge listens on 127.0.0.1:0 for both the proxy and the admin API; the ports it got are
read from its "listening on" log line, so no port is guessed. Its stdout (the JSON access log)
and stderr (its own log) go to files next to the config.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from support.client import Reply, request

START_TIMEOUT = 15.0
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+), admin on 127\.0\.0\.1:(\d+)")
_COMMAND = [sys.executable, "-c", "from originguard.cli import main; main()"]


class EdgeError(Exception):
    pass


def zone_config(
    name: str, *origins: str, pool: dict[str, Any] | None = None, **settings: Any
) -> dict[str, Any]:
    """Zone `name` serving `name`.test from one round-robin pool `main` of `origins`."""
    main_pool: dict[str, Any] = {
        "name": "main",
        "steering": "round_robin",
        "origins": [{"address": address} for address in origins],
    }
    main_pool.update(pool or {})
    zone: dict[str, Any] = {"name": name, "hostnames": [f"{name}.test"], "pools": [main_pool]}
    zone.update(settings)
    return zone


def edge_config(*zones: dict[str, Any], **top: Any) -> dict[str, Any]:
    """An edge on 127.0.0.1:0 (admin too) serving `zones`; extra top-level keys as given."""
    config: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "admin": {"listen": "127.0.0.1:0"},
        "zones": list(zones),
    }
    config.update(top)
    return config


def site_config(
    *origins: str,
    hostnames: Sequence[str] = ("site.test",),
    zone: dict[str, Any] | None = None,
    pool: dict[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """One zone `site` (site.test) with one pool `main` of `origins`."""
    site = zone_config("site", *origins, pool=pool, hostnames=list(hostnames), **(zone or {}))
    return edge_config(site, **top)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`originguard ARGS...` to completion (for `check`)."""
    return subprocess.run(
        [*_COMMAND, *args], capture_output=True, text=True, timeout=30, env=env
    )


class Edge:
    """One `originguard serve -c FILE` process."""

    def __init__(
        self,
        config: dict[str, Any] | str,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.config_path = workdir / "edge.yaml"
        self.stdout_path = workdir / "edge.stdout"
        self.stderr_path = workdir / "edge.stderr"
        self.env = env
        self.wrapper = list(wrapper)
        self.write_config(config)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.admin_port = 0
        self.returncode: int | None = None

    def write_config(self, config: dict[str, Any] | str) -> None:
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        self.config_path.write_text(text, encoding="utf-8")

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Edge:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [*self.wrapper, *_COMMAND, "serve", "-c", str(self.config_path)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.stderr())
            if found:
                self.port, self.admin_port = int(found.group(1)), int(found.group(2))
                return self
            if self.process.poll() is not None:
                raise EdgeError(f"edge exited with {self.process.returncode}:\n{self.stderr()}")
            time.sleep(0.02)
        self.kill()
        raise EdgeError(f"edge did not start within {START_TIMEOUT}s:\n{self.stderr()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def terminate(self) -> None:
        """Send SIGTERM (graceful drain) without waiting."""
        self.signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        self.returncode = self.process.wait(timeout)
        return self.returncode

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.terminate()
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def reload(self, config: dict[str, Any] | str, timeout: float = 10.0) -> str:
        """Write a new config, SIGHUP, and return the log lines the reload produced."""
        before = self.stderr()
        self.write_config(config)
        self.signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.stderr()[len(before) :]
            if "configuration reloaded" in new or "reload rejected" in new:
                return new
            time.sleep(0.02)
        raise EdgeError(f"no reload result within {timeout}s:\n{self.stderr()}")

    def wait_for_stderr(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """The first match of the regular expression `pattern` in the edge's own log."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.stderr(), re.M)
            if found:
                return found
            if time.monotonic() > deadline:
                raise EdgeError(f"{pattern!r} not logged within {timeout}s:\n{self.stderr()}")
            time.sleep(0.02)

    # -- what it wrote ------------------------------------------------------------------------

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")

    def access_log(self) -> list[dict[str, Any]]:
        lines = self.stdout_path.read_text("utf-8", "replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for_log(
        self, matches: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """The first access-log entry `matches` accepts (the log is flushed every 0.2 s)."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.access_log():
                if matches(entry):
                    return entry
            if time.monotonic() > deadline:
                raise EdgeError(f"no matching access-log entry in {self.access_log()!r}")
            time.sleep(0.02)

    def log_for_ray(self, ray: str | None, timeout: float = 5.0) -> dict[str, Any]:
        assert ray
        return self.wait_for_log(lambda entry: entry.get("ray") == ray, timeout)

    def memory_kib(self, field: str = "VmRSS") -> int:
        """VmRSS (now) or VmHWM (peak) of the edge process, in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
        assert found, status
        return int(found.group(1))

    # -- talking to it ------------------------------------------------------------------------

    def get(self, target: str = "/", **kwargs: Any) -> Reply:
        return request(self.port, "GET", target, **kwargs)

    def request(self, method: str, target: str = "/", **kwargs: Any) -> Reply:
        return request(self.port, method, target, **kwargs)

    def admin(self, target: str, token: str | None = None) -> Reply:
        headers = [("Connection", "close")]
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        return request(self.admin_port, "GET", target, host="127.0.0.1", headers=headers)


def private_resolver(workdir: Path) -> list[str] | None:
    """A command prefix that runs the edge with its own /etc/resolv.conf pointing at
    127.0.0.1 (where nothing answers DNS), so a name lookup fails without leaving the machine.
    None when mount namespaces are not available (not root)."""
    try:
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(resolv)]
