"""One JSON line per exchange, buffered and flushed in the background."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import IO

from originguard.exchange import Exchange

FLUSH_SECONDS = 0.2
FLUSH_BYTES = 64 * 1024


class AccessLog:
    def __init__(self, path: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = path
        self._stream: IO[str] | None = None
        self._lines: list[str] = []
        self._size = 0
        self._flusher: asyncio.TimerHandle | None = None

    def open(self) -> None:
        if not self.enabled:
            return
        if self.path == "-":
            self._stream = sys.stdout
        else:
            self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def record(self, ex: Exchange, now: float) -> None:
        if not self.enabled:
            return
        head = ex.head
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "ray": ex.ray,
            "client_ip": ex.client_ip,
            "zone": ex.zone.name if ex.zone else None,
            "method": head.method.decode("latin-1"),
            "host": head.host.decode("latin-1"),
            "path": head.uri.decode("latin-1"),
            "status": ex.status,
            "outcome": ex.outcome.value,
            "attempts": [
                {
                    "origin": a.origin,
                    "status": a.status,
                    "error": a.error,
                    "seconds": round(a.seconds, 6),
                }
                for a in ex.attempts
            ],
            "bytes_in": ex.body.received if ex.body is not None else 0,
            "bytes_out": ex.bytes_out,
            "seconds": round(now - ex.started, 6),
            "upstream_seconds": round(ex.upstream_seconds, 6),
        }
        if ex.cache_status:
            entry["cache"] = ex.cache_status
        if ex.reason:
            entry["reason"] = ex.reason
        self._append(json.dumps(entry, separators=(",", ":")))

    def record_rejection(self, ray: str, client_ip: str, status: int, reason: str) -> None:
        """A request refused while parsing: there is no exchange, only who and why."""
        if not self.enabled:
            return
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "ray": ray,
            "client_ip": client_ip,
            "status": status,
            "outcome": "bad_request",
            "reason": reason,
        }
        self._append(json.dumps(entry, separators=(",", ":")))

    def _append(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if not self._lines or self._stream is None:
            return
        lines, self._lines, self._size = self._lines, [], 0
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except OSError:
            pass  # a full disk or closed stdout must not take the edge down

    def close(self) -> None:
        self.flush()
        if self._stream is not None and self._stream is not sys.stdout:
            self._stream.close()
        self._stream = None
