"""Alerts by email: the message, the settings, retries with an injected sender, and one real
STARTTLS + AUTH conversation with an aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from originguard.health.alerts import Alert, AlertKind
from originguard.health.mail import message_for
from originguard.health.notify import Notifier
from originguard.health.settings import AlertSettings, EmailSettings, WebhookSettings
from originguard.origin.mtls import create_ca, issue

ALERT = Alert(
    AlertKind.HEALTH_CHANGE,
    "shop",
    "10.0.0.1:80",
    1_700_000_000.0,
    "10.0.0.1:80 is unhealthy (TCP connection failed)",
    {"from": "healthy", "to": "unhealthy", "reason": "TCP connection failed"},
)
MAIL = {"server": "127.0.0.1:2525", "sender": "edge@example.test", "to": ["ops@example.test"]}


def email(**fields: Any) -> EmailSettings:
    return EmailSettings.model_validate({**MAIL, **fields})


class Sends:
    """An injected SendMail: fails with the given errors first, then records each message."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.messages: list[EmailMessage] = []
        self.passwords: list[str | None] = []

    def __call__(
        self,
        settings: EmailSettings,
        message: EmailMessage,
        password: str | None,
        context: ssl.SSLContext | None,
    ) -> None:
        self.passwords.append(password)
        if self.errors:
            raise self.errors.pop(0)
        self.messages.append(message)


slept: list[float] = []


async def no_sleep(seconds: float) -> None:
    slept.append(seconds)


def notifier(settings: EmailSettings, sends: Sends, env: dict[str, str] | None = None) -> Notifier:
    return Notifier([], email=settings, send_mail=sends, sleep=no_sleep, env=env or {})


def test_the_message_names_the_alert_in_its_subject_and_lists_its_fields() -> None:
    message = message_for(ALERT, email(to=["a@example.test", "b@example.test"]))
    assert message["Subject"] == "[originguard] 10.0.0.1:80 is unhealthy (TCP connection failed)"
    assert message["To"] == "a@example.test, b@example.test"
    assert message["From"] == "edge@example.test"
    assert message["X-Originguard-Alert"] == "health_check_status"
    body = message.get_content()
    assert "zone:   shop" in body and "reason: TCP connection failed" in body
    assert "at:     2023-11-14T22:13:20+00:00" in body


def test_a_summary_with_line_breaks_stays_one_subject_line() -> None:
    alert = Alert(AlertKind.HEALTH_CHANGE, "shop", "o", 0.0, "evil\r\nBcc: x@example.test")
    message = message_for(alert, email())
    assert message["Subject"] == "[originguard] evil Bcc: x@example.test"
    assert message["Bcc"] is None


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"to": [f"u{i}@example.test" for i in range(21)]}, "at most 20"),
        ({"to": []}, "at least 1"),
        ({"to": ["not-an-address"]}, "not email addresses"),
        ({"server": "smtp.example.test"}, "host:port"),
        ({"username": "edge", "password_env": "OG_SMTP"}, "needs starttls"),
        ({"username": "edge", "starttls": True}, "go together"),
        ({"ca_bundle": "/nonexistent.pem", "starttls": True}, "not readable"),
    ],
)
def test_email_settings_are_checked_at_load(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        email(**fields)


def test_email_is_optional_in_alert_settings() -> None:
    assert AlertSettings().email is None
    assert AlertSettings.model_validate({"email": MAIL}).email == email()


def test_a_transient_failure_is_retried_with_backoff_and_then_delivered() -> None:
    slept.clear()
    sends = Sends(smtplib.SMTPServerDisconnected("gone"), ConnectionRefusedError("refused"))
    (delivery,) = asyncio.run(notifier(email(), sends).deliver([ALERT]))
    assert delivery.ok and delivery.attempts == 3 and delivery.url == "smtp://127.0.0.1:2525"
    assert slept == [1.0, 2.0]
    assert len(sends.messages) == 1


def test_a_permanent_refusal_is_not_retried() -> None:
    sends = Sends(smtplib.SMTPRecipientsRefused({"ops@example.test": (550, b"no such user")}))
    (delivery,) = asyncio.run(notifier(email(), sends).deliver([ALERT]))
    assert not delivery.ok and delivery.attempts == 1
    assert delivery.error is not None and "SMTPRecipientsRefused" in delivery.error


def test_the_password_comes_from_the_environment_and_its_absence_fails_without_sending() -> None:
    settings = email(starttls=True, username="edge", password_env="OG_SMTP_PASSWORD")
    sends = Sends()
    channel = notifier(settings, sends, {"OG_SMTP_PASSWORD": "pw"})
    (delivered,) = asyncio.run(channel.deliver([ALERT]))
    assert delivered.ok and sends.passwords == ["pw"]

    sends = Sends()
    (failed,) = asyncio.run(notifier(settings, sends).deliver([ALERT]))
    assert not failed.ok and failed.error == "env OG_SMTP_PASSWORD is not set"
    assert sends.passwords == []


def test_webhooks_and_email_each_get_one_delivery_per_alert() -> None:
    async def post(url: str, body: bytes, headers: Any) -> int:
        return 204

    sends = Sends()
    hook = WebhookSettings(url="http://127.0.0.1:9/hook")
    channel = Notifier([hook], email=email(), post=post, send_mail=sends, sleep=no_sleep, env={})
    deliveries = asyncio.run(channel.deliver([ALERT, ALERT]))
    assert channel.channels == 2
    assert [d.url for d in deliveries] == ["http://127.0.0.1:9/hook", "smtp://127.0.0.1:2525"] * 2
    assert len(sends.messages) == 2


def test_a_stuck_relay_never_blocks_the_event_loop() -> None:
    release = threading.Event()

    def stuck(*_: object) -> None:
        release.wait(5)

    async def run() -> int:
        channel = Notifier([], email=email(timeout=0.2), send_mail=stuck, sleep=no_sleep, env={})
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        (delivery,) = await channel.deliver([ALERT])
        ticker.cancel()
        release.set()
        await channel.close()
        assert not delivery.ok and delivery.error == "no answer within 0.6s"
        return ticks

    assert asyncio.run(run()) > 100


# -- a real SMTP conversation ------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.logins: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        self.logins.append(data.login)
        return AuthResult(success=data.login == b"edge" and data.password == b"s3cret")


def test_starttls_and_login_deliver_the_alert_to_a_real_smtp_server(tmp_path: Path) -> None:
    smtp = pytest.importorskip("aiosmtpd.smtp")
    now = datetime.datetime.now(datetime.UTC)
    ca = create_ca("mail CA", now)
    leaf = issue(ca, "relay", now, 5, client=False, ip_addresses=("127.0.0.1",))
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "relay.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "relay.key").write_bytes(leaf.key_pem)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "relay.pem", tmp_path / "relay.key")
    inbox = Inbox()

    async def run() -> list[Any]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: smtp.SMTP(
                inbox,
                hostname="relay.test",
                tls_context=server_tls,
                require_starttls=True,
                authenticator=inbox.authenticate,
                auth_require_tls=True,
            ),
            "127.0.0.1",
            0,
        )
        port = server.sockets[0].getsockname()[1]
        settings = email(
            server=f"127.0.0.1:{port}",
            starttls=True,
            ca_bundle=str(tmp_path / "ca.pem"),
            username="edge",
            password_env="OG_SMTP_PASSWORD",
        )
        channel = Notifier([], email=settings, env={"OG_SMTP_PASSWORD": "s3cret"})
        try:
            return list(await channel.deliver([ALERT]))
        finally:
            await channel.close()
            server.close()
            await server.wait_closed()

    (delivery,) = asyncio.run(run())
    assert delivery.ok and delivery.attempts == 1, delivery
    assert inbox.logins == [b"edge"]
    ((sender, recipients, content),) = inbox.envelopes
    assert sender == "edge@example.test" and recipients == ["ops@example.test"]
    received = BytesParser(policy=default_policy).parsebytes(content)
    assert received["Subject"] == "[originguard] 10.0.0.1:80 is unhealthy (TCP connection failed)"
