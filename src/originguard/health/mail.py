"""Alerts by email: one plain-text message per alert, sent through an SMTP relay.

``message_for`` is pure (alert in, ``EmailMessage`` out). Sending uses the standard library's
``smtplib`` in a dedicated one-thread executor: a slow relay can delay only other emails, never
the event loop, and never the loop's default executor, which name resolution shares.
``Mailer.send_once`` makes one attempt and returns an ``Attempt`` value; the caller
(``notify.Notifier``) owns retries and backoff.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import smtplib
import ssl
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid

from originguard.health.alerts import Alert
from originguard.health.settings import EmailSettings


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery try: delivered, or an error and whether trying again may help."""

    ok: bool
    error: str | None = None
    final: bool = False


# RFC 5322 §2.1.1: 998 is the hard line limit; folding a one-line subject at 78 only makes
# some readers show it with a leading space.
_POLICY = default_policy.clone(max_line_length=998)

# (settings, message, password, TLS context) -> None; raises on failure. Runs in a thread.
SendMail = Callable[[EmailSettings, EmailMessage, str | None, ssl.SSLContext | None], None]


def message_for(alert: Alert, settings: EmailSettings) -> EmailMessage:
    """The email for one alert: subject = prefix + summary; body = the alert's fields."""
    message = EmailMessage(policy=_POLICY)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Subject"] = _one_line(f"{settings.subject_prefix} {alert.summary}".strip())
    at = datetime.datetime.fromtimestamp(alert.at, datetime.UTC)
    message["Date"] = format_datetime(at)
    message["Message-ID"] = make_msgid(domain=settings.sender.rsplit("@", 1)[1])
    message["X-Originguard-Alert"] = alert.kind.value
    lines = [
        alert.summary,
        "",
        f"kind:   {alert.kind.value}",
        f"zone:   {alert.zone}",
        f"origin: {alert.origin or '-'}",
        f"at:     {at.isoformat(timespec='seconds')}",
    ]
    lines += [f"{name}: {value}" for name, value in sorted(alert.details.items())]
    message.set_content("\n".join(lines) + "\n")
    return message


def smtp_send(
    settings: EmailSettings,
    message: EmailMessage,
    password: str | None,
    context: ssl.SSLContext | None,
) -> None:
    """The default ``SendMail``: EHLO, optional STARTTLS (then EHLO again), optional login."""
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
        smtp.ehlo()
        if settings.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username is not None:
            smtp.login(settings.username, password or "")
        smtp.send_message(message)


def classify(error: BaseException) -> Attempt:
    """A permanent SMTP refusal (5xx, bad login, refused recipients) is not retried."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPAuthenticationError):
        return Attempt(False, text, final=True)
    if isinstance(error, smtplib.SMTPResponseException) and 500 <= error.smtp_code < 600:
        return Attempt(False, text, final=True)
    if isinstance(error, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return Attempt(False, text, final=True)  # no STARTTLS offered, or an untrusted relay
    return Attempt(False, text)


class Mailer:
    def __init__(
        self,
        settings: EmailSettings,
        *,
        send: SendMail = smtp_send,
        env: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self._send = send
        self._env = env
        self._context: ssl.SSLContext | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def target(self) -> str:
        """How deliveries name this channel (history, logs)."""
        return f"smtp://{self.settings.server}"

    async def send_once(self, alert: Alert) -> Attempt:
        settings = self.settings
        password: str | None = None
        if settings.password_env is not None:
            password = self._env.get(settings.password_env)
            if not password:
                return Attempt(False, f"env {settings.password_env} is not set", final=True)
        try:
            context = self._tls() if settings.starttls else None
        except (OSError, ssl.SSLError) as error:
            return Attempt(False, f"CA bundle: {error}", final=True)
        message = message_for(alert, settings)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="og-smtp")
        job = functools.partial(self._send, settings, message, password, context)
        future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        # smtplib's timeout bounds each socket operation; this bounds the whole conversation.
        try:
            await asyncio.wait_for(future, settings.timeout * 3)
        except TimeoutError:
            return Attempt(False, f"no answer within {settings.timeout * 3:g}s")
        except Exception as error:  # a channel failure must never reach the proxy
            return classify(error)
        return Attempt(True)

    def close(self) -> None:
        if self._executor is not None:
            # a conversation in progress ends by its socket timeout; nobody waits for it
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context(cafile=self.settings.ca_bundle)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._context = context
        return self._context


def _one_line(text: str) -> str:
    return " ".join(text.split())
