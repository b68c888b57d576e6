"""Alert delivery to a real local webhook receiver; backoff sleeps are injected."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

import pytest
from aiohttp import web

from originguard.health.alerts import Alert, AlertKind
from originguard.health.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    Notifier,
    sign,
)
from originguard.health.settings import WebhookSettings

ALERT = Alert(AlertKind.HEALTH_CHANGE, "shop", "o1", 5.0, "o1 is unhealthy", {"to": "unhealthy"})


class Receiver:
    def __init__(self, failures: int = 0, status: int = 500) -> None:
        self.failures = failures
        self.status = status
        self.bodies: list[bytes] = []
        self.headers: list[Mapping[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.headers.append(dict(request.headers))
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=self.status)
        return web.Response(status=204)


slept: list[float] = []


async def no_sleep(seconds: float) -> None:
    slept.append(seconds)


async def with_receiver(
    receiver: Receiver, send: Callable[[str], Awaitable[list[Delivery]]]
) -> list[Delivery]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await send(f"http://127.0.0.1:{port}/hook")
    finally:
        await runner.cleanup()


def deliver(receiver: Receiver, **hook: object) -> list[Delivery]:
    async def send(url: str) -> list[Delivery]:
        notifier = Notifier(
            [WebhookSettings.model_validate({"url": url, **hook})],
            sleep=no_sleep,
            clock=lambda: 1700000000.0,
            env={"HOOK_SECRET": "s3cret"},
        )
        try:
            return await notifier.deliver([ALERT])
        finally:
            await notifier.close()

    return asyncio.run(with_receiver(receiver, send))


def test_alert_is_posted_as_json() -> None:
    receiver = Receiver()
    [delivery] = deliver(receiver)
    assert delivery.ok and delivery.attempts == 1
    assert json.loads(receiver.bodies[0]) == ALERT.to_json()


def test_signed_webhook_carries_an_hmac_over_timestamp_and_body() -> None:
    receiver = Receiver()
    deliver(receiver, secret_env="HOOK_SECRET")
    headers = receiver.headers[0]
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[SIGNATURE_HEADER] == sign(b"s3cret", 1700000000, receiver.bodies[0])


def test_a_signing_secret_missing_from_the_environment_is_reported_at_start(caplog) -> None:
    hook = WebhookSettings.model_validate({"url": "http://127.0.0.1:9/h", "secret_env": "NOPE"})
    with caplog.at_level(logging.ERROR, logger="originguard.health"):
        Notifier([hook], env={})
    assert "$NOPE is not set, so its alerts go out unsigned" in caplog.text


def test_slack_format_sends_a_text_field() -> None:
    receiver = Receiver()
    deliver(receiver, format="slack")
    assert json.loads(receiver.bodies[0]) == {"text": "[originguard] o1 is unhealthy"}


def test_failing_webhook_is_retried_with_backoff_then_succeeds() -> None:
    slept.clear()
    receiver = Receiver(failures=2)
    [delivery] = deliver(receiver)
    assert delivery.ok and delivery.attempts == 3
    assert slept == [1.0, 2.0] and len(receiver.bodies) == 3


def test_webhook_that_keeps_failing_gives_up_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver(failures=10)
    with caplog.at_level(logging.WARNING, logger="originguard.health.alerts"):
        [delivery] = deliver(receiver)
    assert not delivery.ok and delivery.error == "HTTP 500"
    assert len(receiver.bodies) == 3
    assert "o1 is unhealthy" in caplog.text and "failed after 3" in caplog.text


def test_rejected_body_is_not_retried() -> None:
    receiver = Receiver(failures=10, status=400)
    [delivery] = deliver(receiver)
    assert delivery.attempts == 1 and len(receiver.bodies) == 1


def test_unreachable_webhook_never_raises_into_the_caller() -> None:
    async def refused(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        raise ConnectionRefusedError("nobody listening")

    hook = WebhookSettings(url="http://127.0.0.1:9/hook")
    notifier = Notifier([hook], post=refused, sleep=no_sleep)
    [delivery] = asyncio.run(notifier.deliver([ALERT]))
    assert not delivery.ok and delivery.attempts == 3
    assert delivery.error is not None and "ConnectionRefusedError" in delivery.error
