"""Probes against tiny real asyncio servers on 127.0.0.1 (ephemeral ports)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from originguard.health.probe import (
    FailureReason,
    ProbeResult,
    ProbeTarget,
    probe_http,
    probe_tcp,
)
from originguard.health.settings import MonitorSettings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(raw: bytes, seen: list[bytes] | None = None) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(head)
        writer.write(raw)
        await writer.drain()
        writer.close()

    return handle


def response(status: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def run_against(handler: Handler, check: Callable[[int], Awaitable[ProbeResult]]) -> ProbeResult:
    async def main() -> ProbeResult:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await check(port)

    return asyncio.run(main())


def http(port: int, **fields: object) -> Callable[[], Coroutine[Any, Any, ProbeResult]]:
    monitor = MonitorSettings.model_validate(fields)
    return lambda: probe_http(ProbeTarget("127.0.0.1", port), monitor)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_http_probe_passes_on_expected_code_and_records_status() -> None:
    result = run_against(answer(response("200 OK", b"hi")), lambda port: http(port)())
    assert result.ok and result.status == 200 and result.reason is None
    assert result.latency >= 0


def test_http_probe_sends_host_user_agent_and_monitor_headers() -> None:
    seen: list[bytes] = []
    monitor = MonitorSettings(
        path="/healthz", headers={"Host": ["app.example"], "X-Probe": ["a", "b"]}
    )

    def check(port: int) -> Awaitable[ProbeResult]:
        return probe_http(ProbeTarget("127.0.0.1", port, probe_id="0123456789abcdefXYZ"), monitor)

    run_against(answer(response("200 OK"), seen), check)
    head = seen[0].decode()
    assert head.startswith("GET /healthz HTTP/1.1\r\n")
    assert "Host: app.example\r\n" in head
    assert "probe-id: 0123456789abcdef)" in head
    assert "X-Probe: a\r\nX-Probe: b\r\n" in head


def test_wrong_status_code_is_a_code_mismatch() -> None:
    result = run_against(answer(response("503 Service Unavailable")), lambda p: http(p)())
    assert not result.ok
    assert result.reason is FailureReason.CODE_MISMATCH and result.status == 503


def test_range_pattern_accepts_any_code_in_the_class() -> None:
    result = run_against(
        answer(response("204 No Content")), lambda p: http(p, expected_codes=["2xx"])()
    )
    assert result.ok


def test_redirect_is_a_code_mismatch_unless_followed() -> None:
    redirect = response("301 Moved", extra="Location: /new\r\n")
    result = run_against(answer(redirect), lambda p: http(p)())
    assert result.reason is FailureReason.CODE_MISMATCH and result.status == 301


def test_same_origin_redirect_is_followed_when_enabled() -> None:
    served = iter([response("302 Found", extra="Location: /there\r\n"), response("200 OK")])
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(next(served))
        await writer.drain()
        writer.close()

    result = run_against(handle, lambda p: http(p, follow_redirects=True)())
    assert result.ok and seen[1].startswith(b"GET /there ")


def test_body_without_expected_text_is_a_body_mismatch() -> None:
    body = response("200 OK", b"<h1>Maintenance</h1>")
    result = run_against(answer(body), lambda p: http(p, expected_body="welcome")())
    assert result.reason is FailureReason.BODY_MISMATCH and result.status == 200


def test_expected_body_matches_case_insensitively() -> None:
    body = response("200 OK", b"<h1>WELCOME home</h1>")
    result = run_against(answer(body), lambda p: http(p, expected_body="Welcome")())
    assert result.ok


def test_expected_body_beyond_the_first_10_kb_is_not_seen() -> None:
    body = response("200 OK", b"x" * (10 * 1024) + b"welcome")
    result = run_against(answer(body), lambda p: http(p, expected_body="welcome")())
    assert result.reason is FailureReason.BODY_MISMATCH


def test_chunked_body_is_decoded_before_matching() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nwel\r\n4\r\ncome\r\n0\r\n\r\n"
    result = run_against(answer(raw), lambda p: http(p, expected_body="welcome")())
    assert result.ok


def test_garbage_answer_is_an_invalid_response() -> None:
    result = run_against(answer(b"hello there\r\n\r\n"), lambda p: http(p)())
    assert result.reason is FailureReason.HTTP_INVALID_RESPONSE


def test_empty_answer_is_an_invalid_response() -> None:
    result = run_against(answer(b""), lambda p: http(p)())
    assert result.reason is FailureReason.HTTP_INVALID_RESPONSE


def test_refused_connection_is_a_tcp_connection_failure() -> None:
    port = closed_port()
    result = asyncio.run(http(port)())
    assert result.reason is FailureReason.TCP_CONNECTION_FAILED and result.attempts == 1


def test_silent_origin_times_out_and_is_retried_after_the_timeout() -> None:
    connections: list[int] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.read()  # never answers; the probe gives up first

    result = run_against(silent, lambda p: http(p, timeout=0.05, retries=2)())
    assert result.reason is FailureReason.HTTP_TIMEOUT
    assert result.attempts == 3 and len(connections) == 3


def test_non_timeout_failures_are_not_retried() -> None:
    seen: list[bytes] = []
    result = run_against(answer(response("500 Oops"), seen), lambda p: http(p, retries=2)())
    assert result.attempts == 1 and len(seen) == 1


def test_https_probe_against_plain_http_origin_is_a_tls_error() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(response("400 Bad Request"))
        await writer.drain()
        writer.close()

    result = run_against(plain, lambda p: http(p, type="https")())
    assert result.reason is FailureReason.TLS_PROTOCOL


def test_tcp_probe_passes_when_the_port_accepts() -> None:
    async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    monitor = MonitorSettings(type="tcp")
    result = run_against(idle, lambda p: probe_tcp(ProbeTarget("127.0.0.1", p), monitor))
    assert result.ok and result.status is None


def test_tcp_probe_to_closed_port_is_a_tcp_connection_failure() -> None:
    monitor = MonitorSettings(type="tcp")
    result = asyncio.run(probe_tcp(ProbeTarget("127.0.0.1", closed_port()), monitor))
    assert result.reason is FailureReason.TCP_CONNECTION_FAILED


def test_tcp_connect_that_never_completes_is_a_tcp_timeout_retried() -> None:
    attempts: list[int] = []

    async def hang(
        host: str, port: int, tls: object, sni: object
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        attempts.append(port)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monitor = MonitorSettings(type="tcp", port=9, timeout=0.01, retries=1)
    result = asyncio.run(probe_tcp(ProbeTarget("192.0.2.1"), monitor, connect=hang))
    assert result.reason is FailureReason.TCP_TIMEOUT
    assert result.attempts == 2 and attempts == [9, 9]
