"""Edge TLS: certificate choice by SNI, HTTPS redirect and HSTS, origin TLS settings."""

from __future__ import annotations

import datetime
import logging
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from originguard.config import EdgeTls, OriginTls, ZoneHttps
from originguard.origin.mtls import create_ca, issue
from originguard.tls import (
    CertificateStore,
    HttpsPolicy,
    TlsSetupError,
    build_store,
    certificate_names,
    default_sni,
    hsts_value,
    origin_context,
    pool_tls,
    redirect,
    warn_if_expiring,
)

NOW = datetime.datetime.now(datetime.UTC)


def write_cert(directory: Path, name: str, *names: str) -> tuple[str, str]:
    ca = create_ca("issuer", NOW)
    leaf = issue(ca, name, NOW, 10, client=False, dns_names=names or (name,))
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(leaf.cert_pem)
    key.write_bytes(leaf.key_pem)
    return str(cert), str(key)


# -- certificate choice ---------------------------------------------------------------------


def test_store_prefers_exact_names_then_one_label_wildcards_then_the_default() -> None:
    default, exact, wild = (ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) for _ in range(3))
    store = CertificateStore(default, {"www.site.test": exact, "*.site.test": wild})
    assert store.select("www.site.test") is exact
    assert store.select("WWW.Site.Test.") is exact
    assert store.select("api.site.test") is wild
    assert store.select("a.b.site.test") is default  # RFC 6125: a wildcard covers one label
    assert store.select("site.test") is default
    assert store.select(None) is default


def test_an_expired_or_expiring_certificate_is_logged(tmp_path: Path, caplog: Any) -> None:
    cert, _ = write_cert(tmp_path, "soon.test")  # valid for 10 days
    with caplog.at_level(logging.WARNING, logger="originguard.tls"):
        warn_if_expiring(cert, NOW)
        warn_if_expiring(cert, NOW + datetime.timedelta(days=11))
        warn_if_expiring(cert, NOW - datetime.timedelta(days=30))
    assert [(r.levelname, r.getMessage().split(" ", 3)[3]) for r in caplog.records] == [
        ("WARNING", f"expires on {(NOW + datetime.timedelta(days=10)).date()}"),
        ("ERROR", f"expired on {(NOW + datetime.timedelta(days=10)).date()}"),
    ]


def test_store_names_come_from_the_certificate_when_not_configured(tmp_path: Path) -> None:
    first = write_cert(tmp_path, "one.test", "one.test", "*.one.test")
    second = write_cert(tmp_path, "two.test")
    settings = EdgeTls.model_validate(
        {"certificates": [{"cert": c, "key": k} for c, k in (first, second)]}
    )
    store = build_store(settings)
    assert store is not None
    assert certificate_names(first[0]) == ("one.test", "*.one.test")
    assert store.select("x.one.test") is store.select("one.test") is store.default
    assert store.select("two.test") is not store.default


def test_no_certificates_means_no_store() -> None:
    assert build_store(EdgeTls()) is None


def test_server_contexts_refuse_versions_below_the_minimum(tmp_path: Path) -> None:
    cert, key = write_cert(tmp_path, "site.test")
    settings = EdgeTls.model_validate(
        {"min_version": "1.3", "certificates": [{"cert": cert, "key": key}]}
    )
    store = build_store(settings)
    assert store is not None
    assert store.default.minimum_version == ssl.TLSVersion.TLSv1_3


def test_a_certificate_that_does_not_load_is_a_setup_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not pem")
    with pytest.raises(TlsSetupError, match="bad.pem"):
        certificate_names(str(bad))


# -- HTTPS redirect and HSTS ----------------------------------------------------------------


def exchange(scheme: bytes, zone: str = "site", uri: bytes = b"/a?b=1") -> Any:
    return SimpleNamespace(
        zone=SimpleNamespace(name=zone),
        conn=SimpleNamespace(scheme=scheme),
        head=SimpleNamespace(host=b"site.test", uri=uri),
    )


def policy(**https: Any) -> HttpsPolicy:
    return HttpsPolicy({"site": ZoneHttps.model_validate(https), "other": ZoneHttps()})


def test_plain_http_gets_a_redirect_keeping_path_and_query() -> None:
    response = policy(redirect=True).on_request(exchange(b"http"))
    assert response is not None
    assert response.status == 301
    assert (b"location", b"https://site.test/a?b=1") in response.headers


def test_redirect_names_a_non_default_port_and_status() -> None:
    response = policy(redirect=True, port=8443, status=308).on_request(exchange(b"http"))
    assert response is not None and response.status == 308
    assert (b"location", b"https://site.test:8443/a?b=1") in response.headers


def test_options_asterisk_is_redirected_to_the_root() -> None:
    response = redirect(b"site.test", b"*", 443, 301)
    assert (b"location", b"https://site.test/") in response.headers


def test_https_requests_and_other_zones_are_not_redirected() -> None:
    assert policy(redirect=True).on_request(exchange(b"https")) is None
    assert policy(redirect=True).on_request(exchange(b"http", "other")) is None


def test_hsts_only_over_https_and_replaces_an_origin_value() -> None:
    hsts = policy(hsts_max_age="365d", hsts_include_subdomains=True, hsts_preload=True)
    headers = [(b"strict-transport-security", b"max-age=1")]
    hsts.on_response(exchange(b"https"), headers)
    assert headers == [
        (b"strict-transport-security", b"max-age=31536000; includeSubDomains; preload")
    ]
    plain: list[tuple[bytes, bytes]] = []
    hsts.on_response(exchange(b"http"), plain)  # RFC 6797 §7.2
    assert plain == []


def test_hsts_off_by_default_and_policy_inactive() -> None:
    assert hsts_value(ZoneHttps()) is None
    assert not HttpsPolicy({"site": ZoneHttps()}).is_active


# -- TLS to origins -------------------------------------------------------------------------


def test_mode_on_does_not_verify_and_strict_verifies_chain_and_name() -> None:
    on = origin_context("on")
    assert on.verify_mode == ssl.CERT_NONE and not on.check_hostname
    strict = origin_context("strict")
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    assert strict.minimum_version == ssl.TLSVersion.TLSv1_2


def test_default_sni_is_host_override_then_first_exact_hostname_then_origin_name() -> None:
    assert default_sni("origin.site.test:8443", ["www.site.test"], "10.0.0.1") == (
        "origin.site.test"
    )
    assert default_sni("10.0.0.9", ["*.site.test", "site.test"], "10.0.0.1") == "site.test"
    assert default_sni(None, ["*.site.test"], "backend.test") == "backend.test"
    assert default_sni("[::1]:80", ["*.site.test"], "::1") is None


def test_pool_tls_off_is_plain_and_identity_follows_settings() -> None:
    assert pool_tls(OriginTls(), None, ["site.test"])("10.0.0.1") is None
    on = pool_tls(OriginTls(mode="on"), None, ["site.test"])("10.0.0.1")
    assert on is not None and on.server_hostname == "site.test"
    sni = pool_tls(OriginTls(mode="on", sni="x.test"), None, ["site.test"])("10.0.0.1")
    assert sni is not None and sni.server_hostname == "x.test"
    assert sni.identity != on.identity
