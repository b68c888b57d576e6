"""Alert delivery: every alert is logged, then POSTed as JSON to each webhook and, when
configured, emailed (``mail``).

A failing channel never raises into the caller: each delivery ends as a ``Delivery`` value
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
from originguard.health.mail import Attempt, Mailer, SendMail, smtp_send
from originguard.health.settings import EmailSettings, WebhookSettings

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
        email: EmailSettings | None = None,
        post: Post | None = None,
        send_mail: SendMail = smtp_send,
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
        for hook in self._webhooks:
            if hook.secret_env and not self._env.get(hook.secret_env):
                log.error(
                    "webhook %s: $%s is not set, so its alerts go out unsigned",
                    hook.url,
                    hook.secret_env,
                )
        self._session: aiohttp.ClientSession | None = None
        self._mailer = Mailer(email, send=send_mail, env=self._env) if email else None

    @property
    def channels(self) -> int:
        """Deliveries per alert: one per webhook, plus one for email."""
        return len(self._webhooks) + (self._mailer is not None)

    async def deliver(self, alerts: Sequence[Alert]) -> list[Delivery]:
        """Log every alert, then send each to every channel; never raises. The result holds
        ``channels`` deliveries per alert, in alert order: the webhooks', then the email's."""
        for alert in alerts:
            log.warning(
                "alert %s zone=%s origin=%s: %s",
                alert.kind,
                alert.zone,
                alert.origin,
                alert.summary,
            )
        jobs = []
        for alert in alerts:
            jobs += [self._webhook(hook, alert) for hook in self._webhooks]
            if self._mailer is not None:
                jobs.append(self._email(self._mailer, alert))
        return list(await asyncio.gather(*jobs))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._mailer is not None:
            self._mailer.close()

    async def _webhook(self, hook: WebhookSettings, alert: Alert) -> Delivery:
        body = body_for(alert, hook.format)
        headers = {"Content-Type": "application/json"}
        secret = self._env.get(hook.secret_env) if hook.secret_env else None
        if secret and hook.format == "json":
            stamp = int(self._clock())
            headers[TIMESTAMP_HEADER] = str(stamp)
            headers[SIGNATURE_HEADER] = sign(secret.encode(), stamp, body)

        async def once() -> Attempt:
            try:
                status = await asyncio.wait_for(self._post(hook.url, body, headers), self._timeout)
            except Exception as exc:  # a channel failure must never reach the proxy
                return Attempt(False, f"{type(exc).__name__}: {exc}")
            if 200 <= status < 300:
                return Attempt(True)
            # a 4xx other than 408/429: the receiver rejects this body, retrying will not help
            rejected = 400 <= status < 500 and status not in (408, 429)
            return Attempt(False, f"HTTP {status}", final=rejected)

        return await self._retry(hook.url, once)

    async def _email(self, mailer: Mailer, alert: Alert) -> Delivery:
        return await self._retry(mailer.target, lambda: mailer.send_once(alert))

    async def _retry(self, target: str, once: Callable[[], Awaitable[Attempt]]) -> Delivery:
        """Up to ``max_attempts`` tries with doubling backoff; a final failure stops early."""
        error = "not sent"
        attempt = 0
        for attempt in range(1, self._max_attempts + 1):
            result = await once()
            if result.ok:
                return Delivery(target, True, attempt)
            error = result.error or "failed"
            if result.final:
                break
            if attempt < self._max_attempts:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
        log.error("alert delivery to %s failed after %d attempt(s): %s", target, attempt, error)
        return Delivery(target, False, attempt, error)

    async def _aiohttp_post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        async with self._session.post(url, data=body, headers=dict(headers)) as response:
            return response.status
