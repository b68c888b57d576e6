"""Secure origin connections against real TLS peers (spec §1.2, §1.3, §2.2).

A real nginx is the origin: `tls` (a certificate for site.test from a private CA), `mtls` (the
same, and it requires a client certificate from the origin-pull CA; unknown SNI names are
refused) and `plain` (HTTP only). The edge's own TLS listener is checked with Python's ssl.
"""

from __future__ import annotations

import datetime
import json
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.edge import run_cli, site_config
from support.origin import Origin

from originguard.origin.mtls import create_ca, issue, write_pull_files

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/usr/sbin/nginx").exists(), reason="needs nginx"),
]

NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Pki:
    root: Path
    ca: Path  # signs the origins' server certificates
    wrong_ca: Path  # trusts nothing the origins present
    origin_cert: Path
    origin_key: Path
    pull_ca: Path  # origin-pull CA (made by `origin certs init`)
    client_cert: Path
    client_key: Path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = create_ca("test origin CA", NOW)
    wrong = create_ca("some other CA", NOW)
    server = issue(ca, "site.test", NOW, 30, client=False, dns_names=("site.test",))
    pulls = write_pull_files(root / "aop", NOW, 30, "test")
    return Pki(
        root=root,
        ca=_write(root / "ca.pem", ca.cert_pem),
        wrong_ca=_write(root / "wrong-ca.pem", wrong.cert_pem),
        origin_cert=_write(root / "origin.pem", server.cert_pem + ca.cert_pem),
        origin_key=_write(root / "origin.key", server.key_pem),
        pull_ca=pulls.ca_cert,
        client_cert=pulls.client_cert,
        client_key=pulls.client_key,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Nginx:
    tls: str
    mtls: str
    plain: str


NGINX_CONF = """
daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off; default_type text/plain;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  ssl_certificate {cert}; ssl_certificate_key {key};
  server {{
    listen 127.0.0.1:{tls} ssl; server_name site.test;
    location / {{ return 200 "tls-origin proto=$http_x_forwarded_proto\\n"; }}
  }}
  server {{ listen 127.0.0.1:{mtls} ssl default_server; ssl_reject_handshake on; }}
  server {{
    listen 127.0.0.1:{mtls} ssl; server_name site.test;
    ssl_client_certificate {pull_ca}; ssl_verify_client on; ssl_verify_depth 1;
    location / {{ return 200 "mtls-origin client=$ssl_client_s_dn\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{plain};
    location / {{ return 200 "plain-origin\\n"; }}
  }}
}}
"""


@pytest.fixture(scope="module")
def nginx(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    prefix = tmp_path_factory.mktemp("nginx")
    ports = {"tls": free_port(), "mtls": free_port(), "plain": free_port()}
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            d=prefix, cert=pki.origin_cert, key=pki.origin_key, pull_ca=pki.pull_ca, **ports
        )
    )
    process = subprocess.Popen(
        ["/usr/sbin/nginx", "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    for port in ports.values():
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    error = (
                        (prefix / "error.log").read_text()
                        if (prefix / "error.log").exists()
                        else ""
                    )
                    pytest.fail(f"nginx did not start: {error}")
                time.sleep(0.05)
    yield Nginx(**{name: f"127.0.0.1:{port}" for name, port in ports.items()})
    process.send_signal(signal.SIGTERM)
    process.wait(10)


def tls_pool(origins: list[str], **tls: Any) -> dict[str, Any]:
    return {
        "tls": {k: str(v) for k, v in tls.items()},
        "origins": [{"address": a} for a in origins],
    }


def attempt_errors(edge, reply) -> list[tuple[int, str | None]]:
    entry = edge.log_for_ray(reply.header("og-ray"))
    return [(a["status"], a["error"]) for a in entry["attempts"]]


# -- TLS to origins: on, strict, 525, 526 -------------------------------------------------------


def test_strict_mode_with_the_origins_ca_proxies(start_edge, nginx: Nginx, pki: Pki) -> None:
    edge = start_edge(
        site_config(nginx.tls, pool={"tls": {"mode": "strict", "ca_bundle": str(pki.ca)}})
    )
    reply = edge.get("/")
    assert reply.status == 200
    assert reply.text == "tls-origin proto=http\n"


def test_strict_mode_with_a_wrong_ca_gives_526(start_edge, nginx: Nginx, pki: Pki) -> None:
    edge = start_edge(
        site_config(nginx.tls, pool={"tls": {"mode": "strict", "ca_bundle": str(pki.wrong_ca)}})
    )
    reply = edge.get("/")
    assert reply.status == 526
    assert "Error 526" in reply.text
    assert attempt_errors(edge, reply) == [(526, "tls_invalid_certificate")]


def test_strict_mode_with_a_name_the_certificate_lacks_gives_526(
    start_edge, nginx: Nginx, pki: Pki
) -> None:
    tls = {"mode": "strict", "ca_bundle": str(pki.ca), "sni": "elsewhere.test"}
    edge = start_edge(site_config(nginx.tls, pool={"tls": tls}))
    reply = edge.get("/")
    assert reply.status == 526
    assert attempt_errors(edge, reply) == [(526, "tls_invalid_certificate")]


def test_mode_on_encrypts_without_checking_the_certificate(start_edge, nginx: Nginx) -> None:
    edge = start_edge(site_config(nginx.tls, pool={"tls": "on"}))
    assert edge.get("/").text == "tls-origin proto=http\n"


def test_tls_to_a_plaintext_port_gives_525(start_edge, nginx: Nginx) -> None:
    edge = start_edge(site_config(nginx.plain, pool={"tls": "on"}))
    reply = edge.get("/")
    assert reply.status == 525
    assert attempt_errors(edge, reply) == [(525, "tls_handshake_failed")]


def test_525_fails_over_to_another_origin_when_configured(start_edge, nginx: Nginx) -> None:
    config = site_config(
        nginx.plain,
        nginx.tls,
        pool={"tls": "on"},
        zone={"failover_codes": [521, 522, 523, 525, 526]},
    )
    edge = start_edge(config)
    replies = [edge.get("/") for _ in range(2)]  # round robin: one of them starts at `plain`
    assert [r.status for r in replies] == [200, 200]
    assert sorted(len(attempt_errors(edge, r)) for r in replies) == [1, 2]


def test_525_is_not_retried_by_default(start_edge, nginx: Nginx) -> None:
    edge = start_edge(site_config(nginx.plain, nginx.tls, pool={"tls": "on"}))
    statuses = sorted(edge.get("/").status for _ in range(2))
    assert statuses == [200, 525]


# -- authenticated origin pulls ------------------------------------------------------------------


def test_origin_requiring_a_client_certificate_accepts_the_edges(
    start_edge, nginx: Nginx, pki: Pki
) -> None:
    tls = {
        "mode": "strict",
        "ca_bundle": str(pki.ca),
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
    }
    edge = start_edge(site_config(nginx.mtls, pool={"tls": tls}))
    reply = edge.get("/")
    assert reply.status == 200
    assert reply.text == "mtls-origin client=CN=test edge\n"


def test_origin_requiring_a_client_certificate_refuses_the_edge_without_one(
    start_edge, nginx: Nginx, pki: Pki
) -> None:
    edge = start_edge(
        site_config(nginx.mtls, pool={"tls": {"mode": "strict", "ca_bundle": str(pki.ca)}})
    )
    reply = edge.get("/")
    assert reply.status == 400  # nginx: "No required SSL certificate was sent", passed through
    assert "certificate" in reply.text.lower()


# -- the edge's own TLS listener -----------------------------------------------------------------


def make_edge_cert(root: Path, name: str) -> tuple[Path, Path]:
    ca = create_ca(f"{name} issuer", NOW)
    leaf = issue(ca, name, NOW, 30, client=False, dns_names=(name,))
    cert = _write(root / f"{name}.pem", leaf.cert_pem)
    key = _write(root / f"{name}.key", leaf.key_pem)
    return cert, key


def tls_get(port: int, server_name: str | None, target: str = "/", host: str = "site.test"):
    """(certificate common name, raw response) over TLS to the edge, no verification."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as sock:
            der = sock.getpeercert(binary_form=True)
            version = sock.version()
            sock.sendall(
                f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    from cryptography import x509

    cn = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return cn, version, data.decode("latin-1")


@pytest.fixture
def edge_certs(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    return {name: make_edge_cert(tmp_path, name) for name in ("site.test", "other.test")}


def tls_edge_config(
    origin: str, certs: dict[str, tuple[Path, Path]], https_port: int
) -> dict[str, Any]:
    return site_config(
        origin,
        hostnames=("site.test", "other.test"),
        zone={"https": {"redirect": True, "port": https_port, "hsts_max_age": "180d"}},
        tls={
            "listen": f"127.0.0.1:{https_port}",
            "certificates": [{"cert": str(c), "key": str(k)} for c, k in certs.values()],
        },
    )


def test_edge_tls_listener_picks_the_certificate_by_sni(start_edge, edge_certs) -> None:
    origin = Origin("a").start()
    try:
        port = free_port()
        edge = start_edge(tls_edge_config(origin.address, edge_certs, port))
        assert edge.wait_for_stderr(r"TLS listening on 127\.0\.0\.1:(\d+)").group(1) == str(port)
        assert tls_get(port, "site.test")[0] == "CN=site.test"
        assert tls_get(port, "other.test", host="other.test")[0] == "CN=other.test"
        cn, version, response = tls_get(port, "unknown.test")
        assert cn == "CN=site.test"  # the first certificate is the default
        assert version in ("TLSv1.2", "TLSv1.3")
        assert response.startswith("HTTP/1.1 200")
        assert "strict-transport-security: max-age=15552000\r\n" in response.lower()
        assert origin.requests[-1].header("x-forwarded-proto") == "https"
    finally:
        origin.stop()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_edge_tls_listener_refuses_tls_1_1(start_edge, edge_certs) -> None:
    origin = Origin("a").start()
    try:
        port = free_port()
        start_edge(tls_edge_config(origin.address, edge_certs, port))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):
                context.wrap_socket(raw, server_hostname="site.test")
    finally:
        origin.stop()


def test_plain_http_is_redirected_to_https_without_hsts(start_edge, edge_certs) -> None:
    origin = Origin("a").start()
    try:
        port = free_port()
        edge = start_edge(tls_edge_config(origin.address, edge_certs, port))
        reply = edge.get("/path?q=1")
        assert reply.status == 301
        assert reply.header("location") == f"https://site.test:{port}/path?q=1"
        assert reply.header("strict-transport-security") is None  # RFC 6797 §7.2
        assert origin.requests == []
    finally:
        origin.stop()


def test_sighup_reloads_the_edge_certificate(start_edge, edge_certs, tmp_path: Path) -> None:
    origin = Origin("a").start()
    try:
        port = free_port()
        config = tls_edge_config(origin.address, edge_certs, port)
        edge = start_edge(config)
        assert tls_get(port, "other.test", host="other.test")[0] == "CN=other.test"
        # Rotate other.test's files in place to a certificate with another subject.
        ca = create_ca("rotated issuer", NOW)
        leaf = issue(ca, "other.test rotated", NOW, 30, client=False, dns_names=("other.test",))
        cert, key = edge_certs["other.test"]
        cert.write_bytes(leaf.cert_pem)
        key.write_bytes(leaf.key_pem)
        assert "configuration reloaded" in edge.reload(config)
        assert tls_get(port, "other.test", host="other.test")[0] == "CN=other.test rotated"
    finally:
        origin.stop()


def test_reload_with_an_unreadable_certificate_keeps_the_old_one(start_edge, edge_certs) -> None:
    origin = Origin("a").start()
    try:
        port = free_port()
        config = tls_edge_config(origin.address, edge_certs, port)
        edge = start_edge(config)
        edge_certs["site.test"][0].write_text("not a certificate")
        assert "reload rejected" in edge.reload(config)
        assert tls_get(port, "site.test")[0] == "CN=site.test"
    finally:
        origin.stop()


# -- the exposure check --------------------------------------------------------------------------


def write_config(path: Path, config: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config))
    return path


def test_origin_check_flags_an_origin_that_answers_without_the_client_certificate(
    tmp_path: Path, nginx: Nginx, pki: Pki
) -> None:
    tls = {"mode": "on", "client_cert": str(pki.client_cert), "client_key": str(pki.client_key)}
    config = write_config(tmp_path / "edge.yaml", site_config(nginx.tls, pool={"tls": tls}))
    result = run_cli("origin", "check", "-c", str(config), "--format", "json", "--timeout", "3")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["origins"][0]["verdict"] == "exposed"
    checks = {f["check"] for f in report["findings"]}
    assert checks == {"answers_without_edge", "certificate_to_unknown_sni", "site_for_unknown_host"}
    assert "client certificate" in next(
        f["message"] for f in report["findings"] if f["check"] == "answers_without_edge"
    )


def test_origin_check_passes_an_origin_that_requires_the_client_certificate(
    tmp_path: Path, nginx: Nginx, pki: Pki
) -> None:
    tls = {
        "mode": "strict",
        "ca_bundle": str(pki.ca),
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
    }
    config = write_config(tmp_path / "edge.yaml", site_config(nginx.mtls, pool={"tls": tls}))
    result = run_cli("origin", "check", "-c", str(config), "--timeout", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "requires_client_cert" in result.stdout
    assert "No findings" in result.stdout


def test_origin_check_reports_a_closed_origin_as_clean(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edge.yaml", site_config(f"127.0.0.1:{free_port()}"))
    result = run_cli("origin", "check", "-c", str(config), "--timeout", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "closed" in result.stdout


def test_origin_check_flags_a_plain_origin_without_the_secret_header(
    tmp_path: Path, nginx: Nginx
) -> None:
    zone = {"origin_auth": {"secret": "s" * 24}}
    config = write_config(tmp_path / "edge.yaml", site_config(nginx.plain, zone=zone))
    result = run_cli("origin", "check", "-c", str(config), "--format", "json")
    assert result.returncode == 1
    finding = json.loads(result.stdout)["findings"][0]
    assert "og-origin-auth" in finding["message"]


# -- the shared-secret header -------------------------------------------------------------------


def test_origin_auth_header_reaches_the_origin_and_a_client_copy_does_not(start_edge) -> None:
    origin = Origin("a").start()
    try:
        secret = "correct-horse-battery-staple"
        edge = start_edge(
            site_config(origin.address, zone={"origin_auth": {"secret": "${OG_TEST_SECRET}"}}),
            env={"OG_TEST_SECRET": secret},
        )
        reply = edge.get("/", headers=[("OG-Origin-Auth", "forged")])
        assert reply.status == 200
        assert origin.requests[-1].header_values("og-origin-auth") == [secret]
        assert secret not in reply.text
    finally:
        origin.stop()
