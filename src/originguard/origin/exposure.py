"""Origin exposure check: reach each origin directly, the way an attacker who found its address
would, and judge what it gave away (spec §1.2-§1.4).

Per origin, from wherever the command runs:
  direct   TCP, then TLS when the pool uses it (no client certificate, the zone's name as SNI),
           then `GET /` with the zone's Host header and without the shared-secret header;
  foreign  the same with an unknown name as SNI and Host (what certificate scanners such as
           CloudFlair and default-vhost probes see).

`probe` is the I/O; `judge` turns what was observed into findings and is a pure function.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from cryptography import x509

from originguard.tls import names_of

MAX_READ = 256 * 1024
USER_AGENT = "originguard-exposure-check"


class Verdict(StrEnum):
    CLOSED = "closed"  # no TCP connection: good from this vantage point
    REQUIRES_CLIENT_CERT = "requires_client_cert"  # mTLS enforced: good
    REFUSED = "refused"  # answered, but 4xx without the edge's credentials
    EXPOSED = "exposed"  # real content without the edge's credentials
    INCONCLUSIVE = "inconclusive"  # 5xx, broken TLS or HTTP: look by hand


@dataclass(frozen=True, slots=True)
class Target:
    """One origin as the config describes it."""

    zone: str
    pool: str
    address: str
    host: str
    port: int
    tls: bool
    hostname: str | None  # Host header and SNI of the direct probe
    site_names: tuple[str, ...]  # the zone's hostnames (incl. wildcards)
    client_cert: bool = False  # the pool presents a client certificate
    auth_header: str | None = None  # the zone's shared-secret header name


@dataclass(slots=True)
class Attempt:
    """What one connection saw."""

    connected: bool = False
    tls_error: str | None = None
    cert_required: bool = False  # the server demanded a client certificate
    cert_names: tuple[str, ...] = ()
    status: int | None = None
    body_sha256: str | None = None
    body_hint: str = ""  # first bytes of the body, lower-cased
    error: str | None = None


@dataclass(slots=True)
class Observation:
    target: Target
    direct: Attempt
    foreign: Attempt | None = None
    foreign_name: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # high | medium
    zone: str
    origin: str
    check: str
    message: str
    fix: str


@dataclass(slots=True)
class Report:
    origin: dict[str, object]
    verdict: Verdict
    findings: list[Finding] = field(default_factory=list)


# --- probing (I/O) ------------------------------------------------------------------------------

Connector = Callable[[str, int, float], socket.socket]


def probe(target: Target, timeout: float = 5.0, connect: Connector | None = None) -> Observation:
    """Observe `target` directly and with a foreign name (only when the first connects)."""
    dial = connect or _dial
    direct = _attempt(target, target.hostname, timeout, dial)
    observation = Observation(target, direct)
    if direct.connected:
        observation.foreign_name = f"og-probe-{os.urandom(4).hex()}.invalid"
        observation.foreign = _attempt(target, observation.foreign_name, timeout, dial)
    return observation


def _dial(host: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def _attempt(target: Target, name: str | None, timeout: float, dial: Connector) -> Attempt:
    seen = Attempt()
    try:
        sock = dial(target.host, target.port, timeout)
    except OSError as error:
        seen.error = f"connect: {error.strerror or error}"
        return seen
    seen.connected = True
    stream: socket.socket = sock
    try:
        if target.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # an attacker does not care who signed it
            try:
                tls_sock = context.wrap_socket(sock, server_hostname=name)
            except ssl.SSLError as error:
                seen.tls_error = str(error)
                seen.cert_required = _is_cert_required(error)
                return seen
            except OSError as error:
                seen.tls_error = str(error) or type(error).__name__
                return seen
            stream = tls_sock
            der = tls_sock.getpeercert(binary_form=True)
            if der:
                seen.cert_names = names_of(x509.load_der_x509_certificate(der))
        host = name or target.address
        stream.sendall(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Accept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        _read_response(stream, seen)
    except ssl.SSLError as error:
        # TLS 1.3: a missing client certificate is reported after the handshake.
        seen.cert_required = _is_cert_required(error)
        seen.tls_error = str(error)
    except OSError as error:
        seen.error = f"read: {error.strerror or error}"
    finally:
        stream.close()
    return seen


def _is_cert_required(error: ssl.SSLError) -> bool:
    # TLS 1.3 alert 116 (RFC 8446 §6.2). A TLS 1.2 server that insists sends a generic
    # handshake_failure, which is not told apart from other failures: inconclusive.
    return "CERTIFICATE_REQUIRED" in str(error).upper()


def _read_response(stream: socket.socket, seen: Attempt) -> None:
    data = bytearray()
    while len(data) < MAX_READ:
        try:
            chunk = stream.recv(65536)
        except (TimeoutError, ssl.SSLZeroReturnError):
            break
        if not chunk:
            break
        data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        seen.status = int(parts[1])
        seen.body_sha256 = hashlib.sha256(body).hexdigest()
        seen.body_hint = body[:512].decode("latin-1").lower()
    elif data:
        seen.error = "not an HTTP response"
    else:
        seen.error = "closed without a response"


# --- judging (pure) -----------------------------------------------------------------------------


def judge(observation: Observation) -> Report:
    """Findings for one origin from what `probe` saw."""
    target, direct = observation.target, observation.direct
    origin: dict[str, object] = {
        "zone": target.zone,
        "pool": target.pool,
        "address": target.address,
        "scheme": "https" if target.tls else "http",
        "status": direct.status,
        "tls_error": direct.tls_error,
        "error": direct.error,
    }
    report = Report(origin, _verdict(direct))
    where = f"{target.address} ({target.zone}/{target.pool})"
    if report.verdict is Verdict.EXPOSED:
        report.findings.append(_exposed_finding(target, direct, where))
    foreign = observation.foreign
    if foreign is not None and target.tls and _covers(foreign.cert_names, target.site_names):
        report.findings.append(
            Finding(
                "medium",
                target.zone,
                target.address,
                "certificate_to_unknown_sni",
                f"{where} presents a certificate for {', '.join(foreign.cert_names)} to the "
                f"unknown name {observation.foreign_name}: Internet-wide certificate scans "
                "link this address to the site.",
                "Make the origin's default TLS server reject unknown names (nginx: a "
                "default_server with `ssl_reject_handshake on`) or present a throw-away "
                "certificate there.",
            )
        )
    if (
        foreign is not None
        and foreign.status is not None
        and 200 <= foreign.status < 400
        and direct.body_sha256 is not None
        and foreign.body_sha256 == direct.body_sha256
        and report.verdict is Verdict.EXPOSED
    ):
        report.findings.append(
            Finding(
                "medium",
                target.zone,
                target.address,
                "site_for_unknown_host",
                f"{where} serves the same page for the unknown Host {observation.foreign_name} "
                "as for the site: a scan of the address finds the site without knowing its name.",
                "Serve only the site's names on the origin; answer any other Host with 421 or "
                "close the connection (nginx: `return 444;` in a default_server).",
            )
        )
    return report


def _verdict(direct: Attempt) -> Verdict:
    if not direct.connected:
        return Verdict.CLOSED
    if direct.cert_required:
        return Verdict.REQUIRES_CLIENT_CERT
    status = direct.status
    if status is None:
        return Verdict.INCONCLUSIVE
    if status in (400, 495, 496) and "certificate" in direct.body_hint:
        return Verdict.REQUIRES_CLIENT_CERT  # nginx answers 400 "No required SSL certificate"
    if 200 <= status < 400:
        return Verdict.EXPOSED
    if 400 <= status < 500:
        return Verdict.REFUSED
    return Verdict.INCONCLUSIVE


def _exposed_finding(target: Target, direct: Attempt, where: str) -> Finding:
    missing = []
    if target.client_cert:
        missing.append("the edge's client certificate")
    if target.auth_header:
        missing.append(f"the {target.auth_header} header")
    if missing:
        why = f"answered {direct.status} without {' and '.join(missing)}"
        fix = (
            "Make the origin require what the edge presents: `ssl_verify_client on` with the "
            "origin-pull CA (see `originguard origin certs init`) and/or reject requests "
            "without the secret header."
        )
    else:
        why = f"answered {direct.status} to a request that did not come through the edge"
        fix = (
            "Require a client certificate (`originguard origin certs init`) or a secret "
            "header (zones[].origin_auth), and allow only the edge's addresses "
            "(`originguard origin allowlist`)."
        )
    check = "answers_without_edge"
    return Finding("high", target.zone, target.address, check, f"{where} {why}.", fix)


def _covers(cert_names: tuple[str, ...], site_names: tuple[str, ...]) -> bool:
    """Whether any certificate name matches any site name (either may be a `*.` wildcard)."""
    for cert_name in cert_names:
        for site in site_names:
            if cert_name == site:
                return True
            if cert_name.startswith("*.") and site.partition(".")[2] == cert_name[2:]:
                return True
            if site.startswith("*.") and cert_name.partition(".")[2] == site[2:]:
                return True
    return False


def as_json(reports: list[Report]) -> dict[str, object]:
    return {
        "origins": [{**r.origin, "verdict": r.verdict.value} for r in reports],
        "findings": [asdict(f) for r in reports for f in r.findings],
    }
