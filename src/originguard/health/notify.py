"""Alert delivery: every alert is logged, then POSTed as JSON to each webhook.

A failing webhook never raises into the caller: each delivery ends as a ``Delivery`` value
after at most ``max_attempts`` tries with doubling backoff (the sleep is injected). Generic
webhooks get an HMAC-SHA256 signature over ``<timestamp>.<body>`` when a secret is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from originguard.health.alerts import Alert
from originguard.health.settings import WebhookSettings

log = logging.getLogger("originguard.health.alerts")

SIGNATURE_HEADER = "X-Originguard-Signature"
TIMESTAMP_HEADER = "X-Originguard-Timestamp"

Post = Callable[[str, bytes, Mapping[str, str]], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Delivery:
    url: str
    ok: bool
    attempts: int
    error: str | None = None


def body_for(alert: Alert, style: str) -> bytes:
    if style == "slack":
        return json.dumps({"text": f"[originguard] {alert.summary}"}).encode()
    return json.dumps(alert.to_json(), sort_keys=True).encode()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Notifier:
    def __init__(
        self,
        webhooks: Sequence[WebhookSettings],
        *,
        post: Post | None = None,
        max_attempts: int = 3,
        backoff: float = 1.0,
        timeout: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._webhooks = list(webhooks)
        self._post = post or self._aiohttp_post
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._env = os.environ if env is None else env
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, alerts: Sequence[Alert]) -> list[Delivery]:
        """Log every alert, then send each to every webhook; never raises."""
        for alert in alerts:
            log.warning(
                "alert %s zone=%s origin=%s: %s",
                alert.kind,
                alert.zone,
                alert.origin,
                alert.summary,
            )
        jobs = [self._send(hook, alert) for alert in alerts for hook in self._webhooks]
        return list(await asyncio.gather(*jobs))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send(self, hook: WebhookSettings, alert: Alert) -> Delivery:
        body = body_for(alert, hook.format)
        headers = {"Content-Type": "application/json"}
        secret = self._env.get(hook.secret_env) if hook.secret_env else None
        if secret and hook.format == "json":
            stamp = int(self._clock())
            headers[TIMESTAMP_HEADER] = str(stamp)
            headers[SIGNATURE_HEADER] = sign(secret.encode(), stamp, body)
        error = "not sent"
        for attempt in range(1, self._max_attempts + 1):
            try:
                status = await asyncio.wait_for(self._post(hook.url, body, headers), self._timeout)
            except Exception as exc:  # a channel failure must never reach the proxy
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    return Delivery(hook.url, True, attempt)
                error = f"HTTP {status}"
                if 400 <= status < 500 and status not in (408, 429):
                    break  # the receiver rejects this body: retrying will not help
            if attempt < self._max_attempts:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
        log.error("alert delivery to %s failed after %d attempt(s): %s", hook.url, attempt, error)
        return Delivery(hook.url, False, attempt, error)

    async def _aiohttp_post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        async with self._session.post(url, data=body, headers=dict(headers)) as response:
            return response.status
