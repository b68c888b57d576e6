"""https probes of a TLS pool shake hands as the proxy does: the pool's context (mode, CA bundle,
client certificate) and its SNI. Real TLS servers on 127.0.0.1 with certificates from a test CA.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from originguard.config import Config
from originguard.health.notify import Notifier
from originguard.health.probe import FailureReason, ProbeResult, ProbeTarget, probe_http
from originguard.health.service import HealthService
from originguard.health.settings import MonitorSettings
from originguard.observe.metrics import Metrics
from originguard.origin.mtls import Issued, create_ca, issue
from originguard.routing import build_zones
from originguard.tls import origin_context

NOW = datetime.datetime.now(datetime.UTC)
HTTPS = MonitorSettings(type="https", interval=10, timeout=2, retries=0)


def write(directory: Path, name: str, issued: Issued) -> tuple[str, str]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    return str(cert), str(key)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    """A CA, a server certificate for origin.test, and an edge client certificate."""
    ca = create_ca("health test CA", NOW)
    server = issue(ca, "origin.test", NOW, 5, client=False, dns_names=("origin.test",))
    client = issue(ca, "edge", NOW, 5)
    ca_pem = tmp_path / "ca.pem"
    ca_pem.write_bytes(ca.cert_pem)
    server_cert, server_key = write(tmp_path, "server", server)
    client_cert, client_key = write(tmp_path, "client", client)
    return {
        "ca": str(ca_pem),
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }


def server_context(pki: dict[str, str], require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server_cert"], pki["server_key"])
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki["ca"])
    return context


async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def against(context: ssl.SSLContext, check: Callable[[int], Awaitable[ProbeResult]]) -> ProbeResult:
    async def main() -> ProbeResult:
        server = await asyncio.start_server(ok, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await check(port)

    return asyncio.run(main())


def pool_probe(tls: ssl.SSLContext, sni: str | None) -> Callable[[int], Awaitable[ProbeResult]]:
    return lambda port: probe_http(ProbeTarget("127.0.0.1", port, None, "t", tls, sni), HTTPS)


def test_strict_pool_probe_trusts_the_pool_ca_bundle_and_sends_the_pool_sni(
    pki: dict[str, str],
) -> None:
    strict = origin_context("strict", pki["ca"])
    result = against(server_context(pki), pool_probe(strict, "origin.test"))
    assert result.ok and result.status == 200


def test_strict_pool_probe_without_the_ca_is_an_untrusted_certificate(
    pki: dict[str, str],
) -> None:
    strict = origin_context("strict")  # the system store does not know the test CA
    result = against(server_context(pki), pool_probe(strict, "origin.test"))
    assert not result.ok and result.reason is FailureReason.TLS_UNTRUSTED


def test_strict_pool_probe_with_another_name_is_a_name_mismatch(pki: dict[str, str]) -> None:
    strict = origin_context("strict", pki["ca"])
    result = against(server_context(pki), pool_probe(strict, "elsewhere.test"))
    assert not result.ok and result.reason is FailureReason.TLS_NAME_MISMATCH


def test_pool_mode_on_probe_accepts_any_certificate_like_the_proxy(pki: dict[str, str]) -> None:
    result = against(server_context(pki), pool_probe(origin_context("on"), "origin.test"))
    assert result.ok


def test_probe_presents_the_pool_client_certificate_to_an_origin_that_requires_one(
    pki: dict[str, str],
) -> None:
    server = server_context(pki, require_client_cert=True)
    with_cert = origin_context("strict", pki["ca"], pki["client_cert"], pki["client_key"])
    without = origin_context("strict", pki["ca"])
    assert against(server, pool_probe(with_cert, "origin.test")).ok
    refused = against(server, pool_probe(without, "origin.test"))
    assert not refused.ok  # TLS 1.3 reports the missing certificate after the handshake


def strict_pool_config(pki: dict[str, str], monitor: dict[str, Any]) -> Config:
    return Config.model_validate(
        {
            "health": {"monitors": {"web": monitor}},
            "zones": [
                {
                    "name": "site",
                    "hostnames": ["site.test"],
                    "pools": [
                        {
                            "name": "main",
                            "tls": {
                                "mode": "strict",
                                "ca_bundle": pki["ca"],
                                "sni": "origin.test",
                                "client_cert": pki["client_cert"],
                                "client_key": pki["client_key"],
                            },
                            "origins": [{"address": "127.0.0.1:8443"}],
                        }
                    ],
                    "load_balancer": {"pools": [{"name": "main", "monitor": "web"}]},
                }
            ],
        }
    )


def targets_of(cfg: Config) -> list[ProbeTarget]:
    router = build_zones(cfg)
    seen: list[ProbeTarget] = []

    async def capture(target: ProbeTarget, monitor: MonitorSettings) -> ProbeResult:
        seen.append(target)
        return ProbeResult(True, 0.0, 200)

    async def run() -> None:
        health = HealthService(
            cfg, router, Metrics(), notifier=Notifier([]), probe_fn=capture, clock=lambda: 0.0
        )
        for key in health.states:
            await health._probe(key)

    asyncio.run(run())
    origin = router.zones[0].pools[0].origins[0]
    assert origin.tls is not None
    return [t for t in seen if t.tls is None or t.tls is origin.tls.context]


def test_https_monitor_of_a_strict_pool_probes_with_the_pool_context_and_sni(
    pki: dict[str, str],
) -> None:
    (target,) = targets_of(strict_pool_config(pki, {"type": "https", "interval": 10}))
    assert target.tls is not None and target.tls.verify_mode is ssl.CERT_REQUIRED
    assert target.server_name == "origin.test" and target.port == 8443


def test_http_and_tcp_monitors_of_a_tls_pool_carry_no_tls(pki: dict[str, str]) -> None:
    for kind in ("http", "tcp"):
        (target,) = targets_of(strict_pool_config(pki, {"type": kind, "interval": 10}))
        assert target.tls is None and target.server_name is None
