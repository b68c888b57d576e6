"""Active probes: one HTTP(S) request or one TCP connect against an origin (spec §5, §6.2).

A probe never raises: every outcome is a ``ProbeResult`` whose ``reason`` uses the spec §5
failure-reason vocabulary. The network is injected (``connect``), so tests can script it; the
default opens a real asyncio stream to the given host and port only.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import httptools

from originguard.health.settings import MonitorSettings

BODY_LIMIT = 10 * 1024  # spec §5: only the first 10 KB of the body is read
HEAD_LIMIT = 64 * 1024
MAX_REDIRECTS = 5
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class FailureReason(StrEnum):
    """Spec §5 failure-reason vocabulary, reused as-is."""

    TCP_CONNECTION_FAILED = "TCP connection failed"
    HTTP_TIMEOUT = "HTTP timeout occurred"
    CODE_MISMATCH = "Response code mismatch error"
    BODY_MISMATCH = "Response body mismatch error"
    TLS_UNTRUSTED = "TLS untrusted certificate error"
    TLS_NAME_MISMATCH = "TLS name mismatch error"
    TLS_PROTOCOL = "TLS protocol error"
    TLS_UNRECOGNIZED_NAME = "TLS unrecognized name error"
    NO_ROUTE = "No route to host"
    TCP_TIMEOUT = "TCP Timeout"
    NETWORK_UNREACHABLE = "Network Unreachable"
    HTTP_INVALID_RESPONSE = "HTTP Invalid Response"
    DNS_UNKNOWN_HOST = "DNS Unknown Host"
    CONNECTION_RESET = "Connection Reset by Peer"
    CONFIG_ERROR = "Monitor Configuration Error"
    DNS_INTERNAL = "DNS Internal"
    OTHER = "Other Failure"


TIMEOUT_REASONS = frozenset({FailureReason.TCP_TIMEOUT, FailureReason.HTTP_TIMEOUT})


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Where a probe goes. Host header precedence (spec §6.2): endpoint > monitor > address.

    ``tls``/``server_name`` carry a pool's origin TLS (``tls.pool_tls``: verification mode, CA
    bundle, client certificate, SNI) so an https probe shakes hands exactly as the proxy does;
    None: the monitor's own context (``allow_insecure``) and the Host name as SNI.
    """

    address: str
    port: int = 0  # 0 = the monitor's port
    host_header: str | None = None
    probe_id: str = ""
    tls: ssl.SSLContext | None = None
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    latency: float
    status: int | None = None
    reason: FailureReason | None = None
    attempts: int = 1


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connect = Callable[[str, int, ssl.SSLContext | None, str | None], Awaitable[Streams]]
Clock = Callable[[], float]


async def open_stream(
    host: str, port: int, tls: ssl.SSLContext | None, server_hostname: str | None
) -> Streams:
    """The default ``Connect``: a real TCP (optionally TLS) stream to host:port."""
    if tls is None:
        return await asyncio.open_connection(host, port)
    return await asyncio.open_connection(host, port, ssl=tls, server_hostname=server_hostname)


@functools.cache
def tls_context(allow_insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # spec §5: below TLS 1.2 is a protocol error
    if allow_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def user_agent(probe_id: str) -> str:
    return f"Mozilla/5.0 (compatible; originguard-healthcheck/1.0; probe-id: {probe_id[:16]})"


async def probe_http(
    target: ProbeTarget,
    monitor: MonitorSettings,
    *,
    connect: Connect = open_stream,
    clock: Clock = time.monotonic,
    tls: ssl.SSLContext | None = None,
) -> ProbeResult:
    """Send one HTTP(S) request and judge the answer; re-try immediately only after a timeout."""
    return await _with_retries(
        lambda: _http_attempt(target, monitor, connect, clock, tls), monitor.retries
    )


async def probe_tcp(
    target: ProbeTarget,
    monitor: MonitorSettings,
    *,
    connect: Connect = open_stream,
    clock: Clock = time.monotonic,
) -> ProbeResult:
    """Open a TCP connection and close it (``connection_established``)."""
    return await _with_retries(
        lambda: _tcp_attempt(target, monitor, connect, clock), monitor.retries
    )


async def probe(
    target: ProbeTarget,
    monitor: MonitorSettings,
    *,
    connect: Connect = open_stream,
    clock: Clock = time.monotonic,
) -> ProbeResult:
    """Dispatch on ``monitor.type``."""
    if monitor.type == "tcp":
        return await probe_tcp(target, monitor, connect=connect, clock=clock)
    return await probe_http(target, monitor, connect=connect, clock=clock)


async def _with_retries(attempt: Callable[[], Awaitable[ProbeResult]], retries: int) -> ProbeResult:
    result = await attempt()
    tries = 1
    # spec §6.2: retries are immediate, and only after a timeout.
    while result.reason in TIMEOUT_REASONS and tries <= retries:
        result = await attempt()
        tries += 1
    return ProbeResult(result.ok, result.latency, result.status, result.reason, tries)


async def _tcp_attempt(
    target: ProbeTarget, monitor: MonitorSettings, connect: Connect, clock: Clock
) -> ProbeResult:
    start = clock()
    port = target.port or monitor.effective_port
    try:
        _, writer = await asyncio.wait_for(
            connect(target.address, port, None, None), monitor.timeout
        )
    except TimeoutError:
        return ProbeResult(False, clock() - start, reason=FailureReason.TCP_TIMEOUT)
    except Exception as exc:  # every failure becomes a reason
        return ProbeResult(False, clock() - start, reason=reason_for(exc))
    writer.close()
    return ProbeResult(True, clock() - start)


async def _http_attempt(
    target: ProbeTarget,
    monitor: MonitorSettings,
    connect: Connect,
    clock: Clock,
    tls: ssl.SSLContext | None,
) -> ProbeResult:
    start = clock()
    deadline = start + monitor.timeout
    port = target.port or monitor.effective_port
    host = _host_header(target, monitor, port)
    path = monitor.path
    context: ssl.SSLContext | None = None
    sni: str | None = None
    if monitor.type == "https":
        context = target.tls or tls or tls_context(monitor.allow_insecure)
        sni = target.server_name or _strip_port(host)
    for _hop in range(MAX_REDIRECTS + 1):
        remaining = max(0.0, deadline - clock())
        try:
            reader, writer = await asyncio.wait_for(
                connect(target.address, port, context, sni), remaining
            )
        except TimeoutError:
            return ProbeResult(False, clock() - start, reason=FailureReason.TCP_TIMEOUT)
        except Exception as exc:
            return ProbeResult(False, clock() - start, reason=reason_for(exc))
        try:
            request = _request(monitor, target, host, path)
            want_body = monitor.expected_body is not None
            response = await asyncio.wait_for(
                _exchange(reader, writer, request, want_body), max(0.0, deadline - clock())
            )
        except TimeoutError:
            return ProbeResult(False, clock() - start, reason=FailureReason.HTTP_TIMEOUT)
        except Exception as exc:
            return ProbeResult(False, clock() - start, reason=reason_for(exc))
        finally:
            writer.close()
        latency = clock() - start
        status, location, body = response
        if monitor.follow_redirects and status in REDIRECT_CODES and location:
            next_path = _same_origin_path(location, host)
            if next_path is not None:
                path = next_path
                continue
        return _judge(monitor, status, body, latency)
    return ProbeResult(False, clock() - start, reason=FailureReason.CODE_MISMATCH)


def _judge(monitor: MonitorSettings, status: int, body: bytes, latency: float) -> ProbeResult:
    if not monitor.is_expected(status):
        return ProbeResult(False, latency, status, FailureReason.CODE_MISMATCH)
    if monitor.expected_body is not None:
        text = body[:BODY_LIMIT].decode("utf-8", errors="replace").lower()
        if monitor.expected_body.lower() not in text:
            return ProbeResult(False, latency, status, FailureReason.BODY_MISMATCH)
    return ProbeResult(True, latency, status)


def _host_header(target: ProbeTarget, monitor: MonitorSettings, port: int) -> str:
    if target.host_header:
        return target.host_header
    for name, values in monitor.headers.items():
        if name.lower() == "host" and values:
            return values[0]
    address = target.address
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    default = 443 if monitor.type == "https" else 80
    return address if port == default else f"{address}:{port}"


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin_path(location: str, host: str) -> str | None:
    """Redirects are followed only on the same target: we never connect anywhere else."""
    parts = urlsplit(location)
    if parts.netloc and parts.netloc.lower() != host.lower():
        return None
    path = parts.path or "/"
    if not path.startswith("/"):
        return None
    return f"{path}?{parts.query}" if parts.query else path


def _request(monitor: MonitorSettings, target: ProbeTarget, host: str, path: str) -> bytes:
    lines = [f"{monitor.method} {path} HTTP/1.1", f"Host: {host}"]
    lines.append(f"User-Agent: {user_agent(target.probe_id)}")
    for name, values in monitor.headers.items():
        if name.lower() in ("host", "connection", "content-length", "transfer-encoding"):
            continue
        lines.extend(f"{name}: {value}" for value in values)
    lines += ["Accept: */*", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1", errors="replace")


class _Response:
    """httptools callback target: keeps the status, Location and at most 10 KB of body."""

    def __init__(self) -> None:
        self.location = ""
        self.body = bytearray()
        self.headers_done = False
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"location":
            self.location = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        room = BODY_LIMIT - len(self.body)
        if room > 0:
            self.body += body[:room]

    def on_message_complete(self) -> None:
        self.complete = True


class InvalidResponse(Exception):
    """The origin's answer is empty, malformed or has oversized headers."""


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, want_body: bool
) -> tuple[int, str, bytes]:
    writer.write(request)
    await writer.drain()
    response = _Response()
    parser = httptools.HttpResponseParser(response)
    received = 0
    while True:
        data = await reader.read(4096)
        if not data:
            if response.headers_done:
                break  # body delimited by connection close
            raise InvalidResponse("connection closed before a complete response head")
        received += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise InvalidResponse(str(exc)) from exc
        if not response.headers_done and received > HEAD_LIMIT:
            raise InvalidResponse("response head too large")
        if response.headers_done and (
            not want_body or response.complete or len(response.body) >= BODY_LIMIT
        ):
            break
    return parser.get_status_code(), response.location, bytes(response.body)


def reason_for(exc: BaseException) -> FailureReason:
    """Map a connect/exchange exception onto the spec §5 vocabulary."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # 62 = X509_V_ERR_HOSTNAME_MISMATCH, 64 = X509_V_ERR_IP_ADDRESS_MISMATCH
        if exc.verify_code in (62, 64):
            return FailureReason.TLS_NAME_MISMATCH
        return FailureReason.TLS_UNTRUSTED
    if isinstance(exc, ssl.SSLError):
        if "UNRECOGNIZED_NAME" in (exc.reason or ""):
            return FailureReason.TLS_UNRECOGNIZED_NAME
        return FailureReason.TLS_PROTOCOL
    if isinstance(exc, (InvalidResponse, asyncio.IncompleteReadError, asyncio.LimitOverrunError)):
        return FailureReason.HTTP_INVALID_RESPONSE
    if isinstance(exc, ConnectionRefusedError):
        return FailureReason.TCP_CONNECTION_FAILED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return FailureReason.CONNECTION_RESET
    if isinstance(exc, socket.gaierror):
        return FailureReason.DNS_UNKNOWN_HOST
    if isinstance(exc, OSError):
        code = exc.errno
        if code == errno.EHOSTUNREACH:
            return FailureReason.NO_ROUTE
        if code == errno.ENETUNREACH:
            return FailureReason.NETWORK_UNREACHABLE
        if code == errno.ECONNREFUSED or f"[Errno {errno.ECONNREFUSED}]" in str(exc):
            # asyncio folds several refused addresses into one OSError without an errno
            return FailureReason.TCP_CONNECTION_FAILED
        return FailureReason.TCP_CONNECTION_FAILED if code is None else FailureReason.OTHER
    return FailureReason.OTHER
