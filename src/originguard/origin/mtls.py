"""Authenticated Origin Pulls (spec §1.3): a private CA, a client certificate for the edge, and
the origin-side configuration that requires it.

The CA exists only to sign the edge's client certificate; origins trust this CA and nothing
else for client authentication, so a certificate from a public CA (which anyone can get) does
not pass. Keys are EC P-256; the client certificate carries the clientAuth extended key usage.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650


@dataclass(frozen=True, slots=True)
class Issued:
    """One certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def create_ca(common_name: str, now: datetime.datetime, days: int = CA_DAYS) -> Issued:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        _builder(name, name, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue(
    ca: Issued,
    common_name: str,
    now: datetime.datetime,
    days: int,
    *,
    client: bool = True,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
) -> Issued:
    """An end-entity certificate signed by `ca`: a TLS client certificate (the edge's), or a
    server certificate for `dns_names`/`ip_addresses` when `client` is False."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _builder(subject, ca.certificate.subject, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
    )


# --- files and origin-side configuration ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PullFiles:
    """Where `origin certs init` wrote its files."""

    ca_cert: Path
    ca_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_dir(cls, directory: Path) -> PullFiles:
        return cls(
            directory / "origin-pull-ca.pem",
            directory / "origin-pull-ca.key",
            directory / "edge-client.pem",
            directory / "edge-client.key",
        )

    @property
    def all(self) -> tuple[Path, ...]:
        return (self.ca_cert, self.ca_key, self.client_cert, self.client_key)


def write_pull_files(
    directory: Path, now: datetime.datetime, days: int, name: str, force: bool = False
) -> PullFiles:
    """Create the CA and the edge's client certificate in `directory` (keys mode 0600).
    Refuses to overwrite existing files unless `force`: replacing the CA locks the edge out
    of every origin that trusts the old one."""
    files = PullFiles.in_dir(directory)
    existing = [str(path) for path in files.all if path.exists()]
    if existing and not force:
        raise FileExistsError(f"already exists: {', '.join(existing)} (use --force to replace)")
    directory.mkdir(parents=True, exist_ok=True)
    ca = create_ca(f"{name} origin-pull CA", now)
    client = issue(ca, f"{name} edge", now, days)
    _write(files.ca_cert, ca.cert_pem, 0o644)
    _write(files.ca_key, ca.key_pem, 0o600)
    _write(files.client_cert, client.cert_pem, 0o644)
    _write(files.client_key, client.key_pem, 0o600)
    return files


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(path, mode)


def origin_instructions(files: PullFiles) -> str:
    """What to put on the origin (nginx, Apache, Caddy) and in the edge's config."""
    ca = "/etc/ssl/originguard/origin-pull-ca.pem"
    return f"""\
Created:
  {files.ca_cert}   CA certificate: copy it to each origin (as {ca} below)
  {files.ca_key}   CA key: keep it offline; it signs new client certificates
  {files.client_cert}   the edge's client certificate
  {files.client_key}   its key: readable by the edge only

--- originguard (each pool whose origins require the certificate) ---
    tls:
      mode: strict            # or "on"; client certificates need TLS to the origin
      client_cert: {files.client_cert}
      client_key: {files.client_key}

--- nginx (in the origin's `server {{ listen 443 ssl; ... }}` block) ---
    ssl_client_certificate {ca};
    ssl_verify_client on;     # roll out with "optional" and log $ssl_client_verify first
    ssl_verify_depth 1;

--- Apache httpd (in the origin's <VirtualHost *:443>, mod_ssl) ---
    SSLCACertificateFile {ca}
    SSLVerifyClient require
    SSLVerifyDepth 1

--- Caddy (in the origin's site block) ---
    tls {{
        client_auth {{
            mode require_and_verify
            trust_pool file {ca}    # Caddy < 2.8: trusted_ca_cert_file {ca}
        }}
    }}

Then run `originguard origin check -c CONFIG` from outside the edge: each origin should be
reported as requiring the client certificate.
"""
