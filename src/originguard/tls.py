"""TLS at the edge: listener contexts chosen by SNI, contexts for origins, HTTPS redirect + HSTS.

Edge listeners are created once with a *shell* context whose SNI callback swaps in the context
of the certificate that matches the requested name (or the default one). The mapping lives in a
``CertificateStore`` that a reload replaces in one assignment, so SIGHUP rotates certificates
without closing a listener; connections already open keep the certificate they shook hands with.

Origins get one client context per pool (``origin_context``): ``on`` encrypts without checking
the certificate, ``strict`` verifies the chain and the name (spec §2.2: 526 otherwise), and a
client certificate is presented when configured (Authenticated Origin Pulls, spec §1.3).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID

from originguard.http.messages import Headers, Response

log = logging.getLogger("originguard.tls")
EXPIRY_WARNING = datetime.timedelta(days=14)

if TYPE_CHECKING:
    from originguard.config import Certificate, EdgeTls, OriginTls, ZoneHttps
    from originguard.exchange import Exchange

# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are all modern and are not
# affected by set_ciphers). Mozilla's "intermediate" profile makes the same choice.
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!SHA1:!MD5"
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsSetupError(Exception):
    """A certificate, key or CA bundle that cannot be used; the message names the file."""


# --- edge listeners -------------------------------------------------------------------------


def server_context(cert: str, key: str, min_version: str = "1.2") -> ssl.SSLContext:
    """A server context for one certificate chain and key, TLS >= `min_version`, HTTP/1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[min_version]
    context.set_ciphers(MODERN_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as error:
        raise TlsSetupError(f"{error.filename}: no such file") from None
    except (ssl.SSLError, OSError) as error:
        raise TlsSetupError(f"{cert} / {key}: cannot load certificate and key: {error}") from None
    return context


def certificate_names(cert: str) -> tuple[str, ...]:
    """The DNS names a PEM certificate covers: its subjectAltName entries, else its CN."""
    try:
        with open(cert, "rb") as file:
            certificate = x509.load_pem_x509_certificate(file.read())
    except (OSError, ValueError) as error:
        raise TlsSetupError(f"{cert}: cannot read certificate: {error}") from None
    return names_of(certificate)


def names_of(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return tuple(str(a.value).lower() for a in common)
    return tuple(name.lower() for name in san.value.get_values_for_type(x509.DNSName))


class CertificateStore:
    """Host name -> server context: exact names first, then a `*.` wildcard one label deep
    (RFC 6125 §6.4.3), else the default (the first certificate configured)."""

    def __init__(self, default: ssl.SSLContext, by_name: Mapping[str, ssl.SSLContext]) -> None:
        self.default = default
        self._exact = {n: c for n, c in by_name.items() if not n.startswith("*.")}
        self._wildcard = {n[2:]: c for n, c in by_name.items() if n.startswith("*.")}

    def select(self, server_name: str | None) -> ssl.SSLContext:
        if not server_name:
            return self.default
        name = server_name.lower().rstrip(".")
        context = self._exact.get(name)
        if context is not None:
            return context
        _, dot, parent = name.partition(".")
        if dot:
            context = self._wildcard.get(parent)
            if context is not None:
                return context
        return self.default


def build_store(settings: EdgeTls) -> CertificateStore | None:
    """Load every configured certificate (raises TlsSetupError); None without certificates."""
    if not settings.certificates:
        return None
    by_name: dict[str, ssl.SSLContext] = {}
    default: ssl.SSLContext | None = None
    for certificate in settings.certificates:
        context = server_context(certificate.cert, certificate.key, settings.min_version)
        warn_if_expiring(certificate.cert)
        default = default or context
        for name in hostnames_of(certificate):
            by_name.setdefault(name, context)  # the first certificate listed for a name wins
    assert default is not None
    return CertificateStore(default, by_name)


def warn_if_expiring(cert: str, now: datetime.datetime | None = None) -> None:
    """Log a certificate that has expired or expires within EXPIRY_WARNING: clients would
    refuse every connection it serves, and nothing else would say why."""
    try:
        with open(cert, "rb") as file:
            ends = x509.load_pem_x509_certificate(file.read()).not_valid_after_utc
    except (OSError, ValueError):
        return  # server_context already accepted it; names and errors are reported there
    now = now or datetime.datetime.now(datetime.UTC)
    if ends <= now:
        log.error("TLS certificate %s expired on %s", cert, ends.date())
    elif ends - now <= EXPIRY_WARNING:
        log.warning("TLS certificate %s expires on %s", cert, ends.date())


def hostnames_of(certificate: Certificate) -> tuple[str, ...]:
    return certificate.hostnames or certificate_names(certificate.cert)


class EdgeTlsListener:
    """The context TLS listeners are created with; `store` is swapped on reload."""

    def __init__(self, store: CertificateStore, min_version: str = "1.2") -> None:
        self.store = store
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = _VERSIONS[min_version]
        self.context.set_ciphers(MODERN_CIPHERS)
        self.context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        self.context.set_alpn_protocols(["http/1.1"])
        self.context.sni_callback = self._on_server_name

    def set_min_version(self, min_version: str) -> None:
        self.context.minimum_version = _VERSIONS[min_version]

    def _on_server_name(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: object
    ) -> None:
        # Called for every ClientHello, with None when the client sent no SNI.
        connection.context = self.store.select(server_name)


# --- origins --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OriginTlsRuntime:
    """What a pool's connections use for TLS: the context, the SNI name, and an identity that
    changes when the settings do (pooled connections are not reused across a change)."""

    context: ssl.SSLContext
    server_hostname: str | None
    identity: str


def origin_context(
    mode: Literal["on", "strict"],
    ca_bundle: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> ssl.SSLContext:
    """A client context for origins. `on`: encrypt only (Cloudflare's "Full"); `strict`:
    verify chain and name against `ca_bundle` or the system store ("Full (strict)")."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if mode == "strict":
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            if ca_bundle:
                context.load_verify_locations(cafile=ca_bundle)
            else:
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        except (ssl.SSLError, OSError) as error:
            raise TlsSetupError(f"{ca_bundle}: cannot load CA bundle: {error}") from None
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        try:
            context.load_cert_chain(client_cert, client_key)
        except (ssl.SSLError, OSError) as error:
            raise TlsSetupError(
                f"{client_cert} / {client_key}: cannot load client certificate: {error}"
            ) from None
    return context


def pool_tls(
    settings: OriginTls, host_header: str | None, hostnames: Iterable[str]
) -> Callable[[str], OriginTlsRuntime | None]:
    """For one pool: origin host -> its run-time TLS (None when `mode` is off). The context is
    built once per pool and shared by its origins; raises TlsSetupError."""
    if settings.mode == "off":
        return _plain
    context = origin_context(
        settings.mode, settings.ca_bundle, settings.client_cert, settings.client_key
    )
    names = tuple(hostnames)

    def for_origin(origin_host: str) -> OriginTlsRuntime:
        sni = settings.sni or default_sni(host_header, names, origin_host)
        identity = "|".join(
            (settings.mode, settings.ca_bundle or "", sni or "", settings.client_cert or "")
        )
        return OriginTlsRuntime(context, sni, identity)

    return for_origin


def _plain(_: str) -> None:
    return None


def default_sni(host_header: str | None, hostnames: Iterable[str], origin_host: str) -> str | None:
    """The name sent as SNI (and verified in strict mode) when the pool sets none: the zone's
    Host override, else its first exact hostname, else the origin's own name if it has one."""
    if host_header and not host_header.startswith("["):
        host = host_header.rsplit(":", 1)[0]
        if not _is_ip(host):
            return host
    for name in hostnames:
        if not name.startswith("*."):
            return name
    return None if _is_ip(origin_host) else origin_host


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- HTTPS policy: redirect and HSTS ---------------------------------------------------------


class HttpsPolicy:
    """Per-zone "always use HTTPS" redirect (a request filter) and HSTS (a response filter).

    RFC 6797 §7.2: an HSTS host must not send Strict-Transport-Security over plain HTTP, so the
    header is only added on connections that arrived over TLS.
    """

    def __init__(self, zones: Mapping[str, ZoneHttps]) -> None:
        self._redirect = {name: https for name, https in zones.items() if https.redirect}
        self._hsts = {name: hsts_value(https) for name, https in zones.items()}
        self._hsts = {name: value for name, value in self._hsts.items() if value}

    @property
    def is_active(self) -> bool:
        return bool(self._redirect or self._hsts)

    def on_request(self, ex: Exchange) -> Response | None:
        if ex.zone is None or ex.conn.scheme == b"https":
            return None
        https = self._redirect.get(ex.zone.name)
        if https is None:
            return None
        return redirect(ex.head.host, ex.head.uri, https.port, https.status)

    def on_response(self, ex: Exchange, headers: Headers) -> None:
        if ex.zone is None or ex.conn.scheme != b"https":
            return
        value = self._hsts.get(ex.zone.name)
        if value is not None:
            headers[:] = [h for h in headers if h[0] != b"strict-transport-security"]
            headers.append((b"strict-transport-security", value))


def redirect(host: bytes, uri: bytes, port: int, status: int) -> Response:
    authority = host if port == 443 else b"%s:%d" % (host, port)
    location = b"https://" + authority + (b"/" if uri == b"*" else uri)  # OPTIONS *
    body = b"Moved to " + location + b"\n"
    headers: Headers = [
        (b"location", location),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"cache-control", b"no-store"),
    ]
    return Response(status, headers, body)


def hsts_value(https: ZoneHttps) -> bytes | None:
    """The Strict-Transport-Security value (RFC 6797 §6.1), or None when HSTS is off."""
    if https.hsts_max_age <= 0:
        return None
    value = b"max-age=%d" % int(https.hsts_max_age)
    if https.hsts_include_subdomains:
        value += b"; includeSubDomains"
    if https.hsts_preload:
        value += b"; preload"
    return value
