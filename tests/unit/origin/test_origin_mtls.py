"""Authenticated origin pulls: the CA, the client certificate, and the files on disk."""

from __future__ import annotations

import datetime
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from originguard.origin.mtls import create_ca, issue, origin_instructions, write_pull_files

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_ca_may_sign_only_end_entity_certificates() -> None:
    ca = create_ca("pull CA", NOW)
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ca.certificate.not_valid_after_utc - NOW > datetime.timedelta(days=3000)


def test_client_certificate_is_for_client_auth_and_chains_to_the_ca() -> None:
    ca = create_ca("pull CA", NOW)
    client = issue(ca, "edge", NOW, 90)
    usage = client.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(usage.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.certificate.issuer == ca.certificate.subject
    assert client.certificate.not_valid_after_utc == NOW + datetime.timedelta(days=90)
    client.certificate.verify_directly_issued_by(ca.certificate)


def test_write_pull_files_protects_keys_and_refuses_to_overwrite(tmp_path: Path) -> None:
    files = write_pull_files(tmp_path / "aop", NOW, 30, "shop")
    assert stat.S_IMODE(files.client_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(files.client_cert, files.client_key)  # a usable pair
    with pytest.raises(FileExistsError, match="--force"):
        write_pull_files(tmp_path / "aop", NOW, 30, "shop")
    before = files.ca_cert.read_bytes()
    write_pull_files(tmp_path / "aop", NOW, 30, "shop", force=True)
    assert files.ca_cert.read_bytes() != before


def test_instructions_cover_nginx_apache_caddy_and_the_edge(tmp_path: Path) -> None:
    files = write_pull_files(tmp_path, NOW, 30, "shop")
    text = origin_instructions(files)
    assert "ssl_verify_client on;" in text and "ssl_client_certificate" in text
    assert "SSLVerifyClient require" in text
    assert "require_and_verify" in text
    assert f"client_cert: {files.client_cert}" in text
