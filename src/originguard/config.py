"""The edge's configuration: typed sections, validated at load, printable.

``load(path)`` reads YAML, substitutes ``${NAME}`` / ``${NAME:-default}`` from the environment,
and validates the result against ``Config``. Every problem becomes one ``ConfigError`` message
``FILE:LINE: field.path: message``, with the line taken from the YAML node the field came from.
``dump(config)`` prints the normalised config (defaults filled in, secrets as ``***``) for
``originguard check``.

Adding a feature's settings = one ``Section`` subclass (each field with a ``description=``, which
is also its entry in ``docs/config.md``) + one field on ``Config`` with ``default_factory``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    IPvAnyNetwork,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from originguard.cache.settings import (
    CacheSettings,
    CacheStoreSettings,
    check_cache_expressions,
)
from originguard.health.settings import HealthSettings, LoadBalancerSettings
from originguard.protect.settings import SecuritySettings, check_expressions
from originguard.protect.waiting_room.section import (
    WaitingRoomSection,
    ZoneWaitingRooms,
    check_room_expressions,
)
from originguard.units import Count, Decimal, Duration, Size, TypeLabel

__all__ = [
    "AccessLog",
    "Admin",
    "Certificate",
    "Config",
    "ConfigError",
    "EdgeIdentity",
    "EdgeTls",
    "Limits",
    "ListenAddress",
    "Origin",
    "OriginAuth",
    "OriginTls",
    "Pool",
    "Section",
    "Zone",
    "ZoneHttps",
    "ZoneTimeouts",
    "OriginConfig",
    "PoolConfig",
    "ZoneConfig",
    "dump",
    "load",
    "loads",
]


FieldPath = tuple[str | int, ...]


class Section(BaseModel):
    """Base of every config model: unknown keys are errors and a loaded config is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- errors -------------------------------------------------------------------------------


class ConfigError(Exception):
    """A config that cannot be used; ``messages`` holds one ``FILE:LINE: path: message`` each."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def _located(at: FieldPath, message: str) -> PydanticCustomError:
    """A validation error that points `at` a path below the field whose validator raised it.

    Pydantic locates a validator's error at the validated field; ``loads`` appends ``at`` so a
    duplicate is reported at the line of the duplicate itself.
    """
    return PydanticCustomError("config", "{message}", {"message": message, "at": at})


# --- addresses and names ------------------------------------------------------------------

_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_NAME = re.compile(r"[a-z0-9_-]+\Z")
_NODE_ID = re.compile(r"[a-z0-9-]{1,16}\Z")


def _check_dns_name(name: str) -> str:
    """Lower-case `name` and check it is a DNS host name (RFC 1123 §2.1 letters-digits-hyphen)."""
    if not name.isascii():
        raise ValueError(f"{name!r} is not ASCII; write internationalised names as xn-- (IDNA)")
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        raise ValueError(f"{name!r} is not a valid host name (1 to 253 characters)")
    labels = name.split(".")
    for label in labels:
        if not _DNS_LABEL.match(label):
            raise ValueError(
                f"{name!r} is not a valid host name: each dot-separated label is 1 to 63 "
                "letters, digits or hyphens, not starting or ending with a hyphen"
            )
    # RFC 1123 §2.1: a name whose last label is numeric would be read as an IP address.
    if labels[-1].isdigit():
        raise ValueError(f"{name!r} is not a valid host name or IP address")
    return name


def _check_port(text: str, *, allow_zero: bool) -> int:
    if not text or len(text) > 5 or not all("0" <= c <= "9" for c in text):
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    port = int(text)  # ASCII digits only, checked above
    if port > 65535 or (port == 0 and not allow_zero):
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return port


def _split_host_port(text: str, *, allow_zero_port: bool = False) -> tuple[str, int]:
    """Split ``host:port``, ``[ipv6]:port`` into a normalised host and a port."""
    if "://" in text or "/" in text:
        bare = text.split("://", 1)[-1].split("/", 1)[0]
        raise ValueError(f"{text!r}: give host:port alone, without scheme or path: {bare!r}")
    if text.startswith("["):
        close = text.find("]")
        if close == -1 or text[close + 1 : close + 2] != ":":
            raise ValueError(f"{text!r} is not [IPv6]:port")
        host = text[1:close]
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"{host!r} in {text!r} is not an IPv6 address") from None
        return host, _check_port(text[close + 2 :], allow_zero=allow_zero_port)
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(f"{text!r} has no port; write host:port")
    if ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, like [::1]:8080")
    try:
        host = str(ipaddress.IPv4Address(host))
    except ValueError:
        host = _check_dns_name(host)
    return host, _check_port(port, allow_zero=allow_zero_port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_port(address: tuple[str, int]) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ListenAddress:
    """A local address to accept connections on; port 0 asks the OS for a free port."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: object) -> ListenAddress:
        if isinstance(value, ListenAddress):
            return value
        bare_port = isinstance(value, int) and not isinstance(value, bool)
        if bare_port or (isinstance(value, str) and value.startswith(":")):
            given = str(value).lstrip(":")
            raise ValueError(
                f"give the address too: '0.0.0.0:{given}' (every IPv4 address), "
                f"'[::]:{given}' (IPv6) or '127.0.0.1:{given}' (this machine only)"
            )
        if not isinstance(value, str):
            raise ValueError(f"expected a 'host:port' string, got {type(value).__name__}")
        host, port = _split_host_port(value, allow_zero_port=True)
        return cls(host, port)

    @property
    def is_loopback(self) -> bool:
        return _is_loopback(self.host)

    def __str__(self) -> str:
        return host_port((self.host, self.port))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


def _one_or_many(value: object) -> object:
    """Let a list field be written as a single item."""
    return [value] if isinstance(value, (str, int)) else value


def _no_duplicates(values: Iterable[object], what: str, *, field: FieldPath = ()) -> None:
    seen: set[object] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise _located((index, *field), f"{what} {str(value)!r} is listed twice")
        seen.add(value)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} must be lower-case letters, digits, '_' or '-'")
    return name


def _check_node_id(node_id: str) -> str:
    if not _NODE_ID.match(node_id):
        raise ValueError(f"{node_id!r} must be 1 to 16 lower-case letters, digits or '-'")
    return node_id


def _check_zone_hostname(name: str) -> str:
    """An exact host name or ``*.`` followed by one; never an IP address or ``host:port``."""
    if "/" in name:
        host = name.split("://", 1)[-1].split("/", 1)[0]
        raise ValueError(f"{name!r}: give the host name alone, without scheme or path: {host!r}")
    if ":" in name or _is_ip(name):
        raise ValueError(f"{name!r}: zones match host names; give a name without port or IP")
    if name.startswith("*."):
        return "*." + _check_dns_name(name[2:])
    if "*" in name:
        raise ValueError(
            f"{name!r}: a wildcard may only be a whole first label, as in *.example.com"
        )
    return _check_dns_name(name)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _check_host_header(value: str) -> str:
    """A Host header value (RFC 9110 §7.2): a host name or IP literal, optionally with a port."""
    if value.startswith("[") or value.count(":") == 1:
        host, port = _split_host_port(value)
        return str(ListenAddress(host, port))
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return _check_dns_name(value)


def _redact(_secret: SecretStr) -> str:
    return "***"


Name = Annotated[str, AfterValidator(_check_name), TypeLabel("name")]
ZoneHostname = Annotated[str, AfterValidator(_check_zone_hostname), TypeLabel("host name")]
Secret = Annotated[
    SecretStr,
    Field(min_length=16),
    PlainSerializer(_redact, return_type=str, when_used="json"),
    TypeLabel("secret"),
]
FailoverCode = Literal[521, 522, 523, 525, 526]


# --- sections -----------------------------------------------------------------------------


class Admin(Section):
    """The admin API and dashboard listener."""

    listen: ListenAddress = Field(
        default=ListenAddress("127.0.0.1", 9090),
        description="Address of the admin API, separate from the proxy listeners.",
    )
    token: Secret | None = Field(
        default=None,
        description=(
            "Bearer token the admin API requires; at least 16 characters. Required when "
            "`listen` is not a loopback address. Give it from the environment: "
            "`token: ${OG_ADMIN_TOKEN}`."
        ),
    )

    @model_validator(mode="after")
    def _token_off_loopback(self) -> Admin:
        if self.token is None and not self.listen.is_loopback:
            raise _located(
                ("token",),
                f"required because listen {str(self.listen)!r} is reachable beyond this host",
            )
        return self


class Limits(Section):
    """Bounds on what a client may send and how long it may take (per connection)."""

    max_head_size: Size = Field(
        default=32 * 1024, ge=1, description="Largest request line plus headers; over it: 431."
    )
    max_header_count: Count = Field(
        default=100, ge=1, description="Most header fields in one request; over it: 431."
    )
    max_url_size: Size = Field(
        default=16 * 1024, ge=1, description="Longest request target; over it: 414."
    )
    max_body_size: Size = Field(
        default=100 * 1024**2, ge=0, description="Largest request body; over it: 413."
    )
    head_timeout: Duration = Field(
        default=30.0,
        gt=0,
        description="Deadline for the whole request head, from its first byte; then 408.",
    )
    body_timeout: Duration = Field(
        default=60.0, gt=0, description="Longest gap between two reads of a request body."
    )
    send_timeout: Duration = Field(
        default=60.0,
        gt=0,
        description="Longest the client may leave the response undrained before it is cut.",
    )
    keepalive_timeout: Duration = Field(
        default=400.0,
        ge=0,
        description="How long an idle client connection stays open; 0 closes after each response.",
    )
    drain_timeout: Duration = Field(
        default=30.0,
        ge=0,
        description="On graceful shutdown, how long in-flight exchanges may take to finish.",
    )
    max_connections: Count = Field(
        default=8192,
        ge=1,
        description=(
            "Most client connections open at once; past it new connections are closed at "
            "once (keep it well under the process's file-descriptor limit)."
        ),
    )


class AccessLog(Section):
    """One line per exchange, written when it completes."""

    enabled: bool = Field(default=True, description="Write the access log.")
    path: str = Field(
        default="-", min_length=1, description="File to append to; `-` writes to stdout."
    )


class ZoneTimeouts(Section):
    """How long the edge waits on a zone's origins."""

    connect: Duration = Field(
        default=19.0, gt=0, description="Opening a connection to an origin; then 522."
    )
    response_head: Duration = Field(
        default=120.0,
        gt=0,
        description="From request sent to the origin's complete response head; then 524.",
    )
    read: Duration = Field(
        default=120.0,
        gt=0,
        description=(
            "Longest gap between two reads from an origin: 524 before the response head, "
            "an aborted response after it."
        ),
    )
    idle: Duration = Field(
        default=60.0, gt=0, description="How long an idle pooled origin connection is kept."
    )


TlsMode = Literal["off", "on", "strict"]
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+\Z")


def _check_header_name(name: str) -> str:
    """A header field name (RFC 9110 §5.1 token), lower-cased."""
    name = name.lower()
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid header name")
    return name


def _check_readable(path: str) -> str:
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path}: file not found or not readable")
    return path


PemFile = Annotated[str, AfterValidator(_check_readable), TypeLabel("file")]


def _mode_only(value: object) -> object:
    """Let ``tls: strict`` stand for ``tls: {mode: strict}``."""
    return {"mode": value} if isinstance(value, str) else value


class OriginTls(Section):
    """How a pool's connections to its origins are encrypted (spec §1.3, §2.2)."""

    mode: TlsMode = Field(
        default="off",
        description=(
            "`off`: plain TCP. `on`: TLS without checking the origin's certificate (handshake "
            "failure: 525). `strict`: TLS verifying the chain and the name (invalid "
            "certificate: 526)."
        ),
    )
    ca_bundle: PemFile | None = Field(
        default=None,
        description="PEM file of CA certificates trusted in `strict` mode instead of the system's.",
    )
    sni: Annotated[str, AfterValidator(_check_dns_name), TypeLabel("host name")] | None = Field(
        default=None,
        description=(
            "Server name sent in the TLS handshake and verified in `strict` mode. Default: the "
            "zone's `host_header`, else its first exact hostname, else the origin's host name."
        ),
    )
    client_cert: PemFile | None = Field(
        default=None,
        description=(
            "PEM client certificate the edge presents to origins (Authenticated Origin Pulls); "
            "`originguard origin certs init` creates one."
        ),
    )
    client_key: PemFile | None = Field(
        default=None, description="Private key of `client_cert` (PEM, unencrypted)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> OriginTls:
        if (self.client_cert is None) != (self.client_key is None):
            missing = "client_key" if self.client_key is None else "client_cert"
            raise _located((missing,), "client_cert and client_key go together")
        if self.mode == "off":
            for name in ("ca_bundle", "sni", "client_cert"):
                if getattr(self, name) is not None:
                    raise _located((name,), "has no effect with mode off; set mode on or strict")
        if self.mode == "on" and self.ca_bundle is not None:
            raise _located(("ca_bundle",), "is only used with mode strict")
        if self.mode != "off":
            from originguard.tls import TlsSetupError, origin_context

            try:
                origin_context(self.mode, self.ca_bundle, self.client_cert, self.client_key)
            except TlsSetupError as error:
                raise _located((), str(error)) from None
        return self


class OriginAuth(Section):
    """A shared secret the edge adds to every request to the zone's origins, for origins that
    cannot require a client certificate (spec §1.2, application layer)."""

    header: Annotated[str, AfterValidator(_check_header_name), TypeLabel("header name")] = Field(
        default="og-origin-auth", description="Name of the header carrying the secret."
    )
    secret: Secret = Field(
        description=(
            "The value, at least 16 characters; give it from the environment: "
            "`secret: ${OG_ORIGIN_AUTH}`. The origin rejects requests without it."
        )
    )

    @field_validator("secret")
    @classmethod
    def _visible_ascii(cls, secret: SecretStr) -> SecretStr:
        # It is written into the request head: no control characters, no header injection.
        if not all(33 <= ord(c) <= 126 for c in secret.get_secret_value()):
            raise ValueError("must be printable ASCII without spaces")
        return secret


class ZoneHttps(Section):
    """HTTPS for visitors of a zone: "always use HTTPS" and HSTS (RFC 6797)."""

    redirect: bool = Field(
        default=False, description="Answer requests that arrived over plain HTTP with a redirect."
    )
    status: Literal[301, 302, 307, 308] = Field(
        default=301, description="Status of the redirect (308 keeps the method and body)."
    )
    port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=443, description="Port in the redirect target; 443 is left out of the URL."
    )
    hsts_max_age: Duration = Field(
        default=0.0,
        ge=0,
        description="`max-age` of Strict-Transport-Security on HTTPS responses; 0 sends none.",
    )
    hsts_include_subdomains: bool = Field(
        default=False, description="Add `includeSubDomains` to the HSTS header."
    )
    hsts_preload: bool = Field(
        default=False,
        description="Add `preload` (needs max-age of at least 1 year and includeSubDomains).",
    )

    @model_validator(mode="after")
    def _preload_rules(self) -> ZoneHttps:
        if self.hsts_preload and (
            self.hsts_max_age < 365 * 86400 or not self.hsts_include_subdomains
        ):
            raise _located(
                ("hsts_preload",),
                "preload lists require hsts_max_age >= 365d and hsts_include_subdomains",
            )
        return self


class Certificate(Section):
    """A certificate the edge presents to visitors."""

    cert: PemFile = Field(description="PEM file: the certificate followed by its chain.")
    key: PemFile = Field(description="PEM file: the private key (unencrypted).")
    hostnames: tuple[ZoneHostname, ...] = Field(
        default=(),
        description="SNI names this certificate answers; default: the DNS names in it.",
    )


class EdgeTls(Section):
    """TLS listeners for visitors, one certificate per host name chosen by SNI."""

    listen: Annotated[tuple[ListenAddress, ...], BeforeValidator(_one_or_many)] = Field(
        default=(), description="Where the edge accepts TLS connections: `host:port` or a list."
    )
    certificates: tuple[Certificate, ...] = Field(
        default=(),
        description=(
            "Certificates by host name; the first one is also the default for clients that "
            "send no or an unknown SNI name. Reloaded on SIGHUP."
        ),
    )
    min_version: Literal["1.2", "1.3"] = Field(
        default="1.2", description="Oldest TLS version accepted."
    )
    handshake_timeout: Duration = Field(
        default=10.0, gt=0, description="Deadline for a client's TLS handshake."
    )

    @model_validator(mode="after")
    def _loadable(self) -> EdgeTls:
        if self.listen and not self.certificates:
            raise _located(("certificates",), "TLS listeners need at least one certificate")
        from originguard.tls import TlsSetupError, certificate_names, server_context

        for index, certificate in enumerate(self.certificates):
            try:
                server_context(certificate.cert, certificate.key, self.min_version)
                if not certificate.hostnames:
                    certificate_names(certificate.cert)
            except TlsSetupError as error:
                raise _located(("certificates", index), str(error)) from None
        return self


class EdgeIdentity(Section):
    """What origins should know about the edge itself."""

    egress_addresses: tuple[IPvAnyNetwork, ...] = Field(
        default=(),
        description=(
            "Addresses (or CIDRs) the edge connects to origins from, IPv4 and IPv6; "
            "`originguard origin allowlist` turns them into firewall rules."
        ),
    )


class Origin(Section):
    """One origin server."""

    address: str = Field(
        description=(
            "`host:port` of the origin: an IPv4 address, `[IPv6]`, or a DNS name; "
            "the port is required."
        )
    )
    weight: Decimal = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of traffic relative to the pool's other origins, from 0 to 1.",
    )
    enabled: bool = Field(default=True, description="Send traffic to this origin.")

    _host: str = PrivateAttr(default="")
    _port: int = PrivateAttr(default=0)

    @field_validator("address")
    @classmethod
    def _normalise_address(cls, address: str) -> str:
        host, port = _split_host_port(address)
        return str(ListenAddress(host, port))

    def model_post_init(self, context: Any, /) -> None:
        self._host, self._port = _split_host_port(self.address)

    @property
    def host(self) -> str:
        """Host to connect to: an IP address (IPv6 without brackets) or a DNS name."""
        return self._host

    @property
    def port(self) -> int:
        return self._port


class Pool(Section):
    """A group of origins that serve a zone, with a steering policy."""

    name: Name = Field(
        description="Name of the pool (`a-z`, `0-9`, `_`, `-`), unique within its zone."
    )
    enabled: bool = Field(default=True, description="Send traffic to this pool.")
    steering: Literal["random", "round_robin", "least_outstanding_requests", "hash"] = Field(
        default="random", description="How a request picks one of the pool's origins."
    )
    max_idle_connections: Count = Field(
        default=32, description="Idle connections kept open per origin for reuse."
    )
    tls: Annotated[OriginTls, BeforeValidator(_mode_only)] = Field(
        default_factory=OriginTls,
        description="TLS to the origins: `off`, `on`, `strict` or a mapping with `mode` etc.",
    )
    origins: tuple[Origin, ...] = Field(min_length=1, description="The pool's origins.")

    @field_validator("origins")
    @classmethod
    def _unique_origins(cls, origins: tuple[Origin, ...]) -> tuple[Origin, ...]:
        _no_duplicates((origin.address for origin in origins), "origin", field=("address",))
        return origins


class Zone(Section):
    """The host names one block of config owns, and where their traffic goes."""

    name: Name = Field(
        description="Name of the zone (`a-z`, `0-9`, `_`, `-`), unique across zones."
    )
    hostnames: tuple[ZoneHostname, ...] = Field(
        min_length=1,
        description=(
            "Host names the zone serves: exact names (`www.example.com`) or a leading "
            "wildcard (`*.example.com`, matching names at any depth below `example.com`, the "
            "most specific wildcard winning). Lower-cased; no ports or IP addresses."
        ),
    )
    host_header: str | None = Field(
        default=None,
        description="Host header sent to origins instead of the client's.",
    )
    failover_codes: tuple[FailoverCode, ...] = Field(
        default=(521, 522, 523),
        description=(
            "Connect failures retried once on another origin. 521 refused, 522 timed out, "
            "523 unreachable, 525 TLS handshake failed, 526 invalid certificate."
        ),
    )
    timeouts: ZoneTimeouts = Field(
        default_factory=ZoneTimeouts, description="Origin timeouts for this zone."
    )
    https: ZoneHttps = Field(
        default_factory=ZoneHttps, description="HTTPS redirect and HSTS for visitors."
    )
    origin_auth: OriginAuth | None = Field(
        default=None, description="Shared-secret header sent to this zone's origins."
    )
    pools: tuple[Pool, ...] = Field(min_length=1, description="The zone's origin pools.")
    cache: CacheSettings = Field(
        default_factory=CacheSettings,
        description="The zone's cache: defaults and cache rules. See docs/cache.md.",
    )
    security: SecuritySettings = Field(
        default_factory=SecuritySettings,
        description="IP access rules, custom rules, rate limits, challenge. See docs/rules.md.",
    )
    load_balancer: LoadBalancerSettings | None = Field(
        default=None,
        description=(
            "Health-aware steering over `pools` (referenced by name): failover order, "
            "fallback pool, affinity, outlier detection, slow start. See docs/health.md."
        ),
    )
    waiting_room: ZoneWaitingRooms = Field(
        default_factory=WaitingRoomSection,
        description="Waiting rooms and their ticket keys. See docs/waiting-room.md.",
    )

    @model_validator(mode="after")
    def _balanced_pools_exist(self) -> Zone:
        if self.load_balancer is not None:
            names = {pool.name for pool in self.pools}
            for index, policy in enumerate(self.load_balancer.pools):
                if policy.name not in names:
                    raise _located(
                        ("load_balancer", "pools", index, "name"),
                        f"pool {policy.name!r} is not one of the zone's pools {sorted(names)}",
                    )
        return self

    @field_validator("hostnames")
    @classmethod
    def _unique_hostnames(cls, hostnames: tuple[str, ...]) -> tuple[str, ...]:
        _no_duplicates(hostnames, "hostname")
        return hostnames

    @field_validator("host_header")
    @classmethod
    def _valid_host_header(cls, value: str | None) -> str | None:
        return None if value is None else _check_host_header(value)

    @field_validator("failover_codes")
    @classmethod
    def _unique_codes(cls, codes: tuple[int, ...]) -> tuple[int, ...]:
        _no_duplicates(codes, "code")
        return codes

    @field_validator("pools")
    @classmethod
    def _unique_pools(cls, pools: tuple[Pool, ...]) -> tuple[Pool, ...]:
        seen: set[str] = set()
        for index, pool in enumerate(pools):
            if pool.name in seen:
                raise _located((index, "name"), f"pool {pool.name!r} is defined twice")
            seen.add(pool.name)
        return pools


class Config(Section):
    """The whole edge configuration."""

    listen: Annotated[tuple[ListenAddress, ...], BeforeValidator(_one_or_many)] = Field(
        default=(ListenAddress("127.0.0.1", 8080),),
        min_length=1,
        description=(
            "Where the proxy accepts client connections: one `host:port` or a list; "
            "IPv6 as `[::1]:8080`."
        ),
    )
    admin: Admin = Field(default_factory=Admin, description="Admin API listener.")
    trusted_proxies: tuple[IPvAnyNetwork, ...] = Field(
        default=(),
        description=(
            "CIDRs of proxies in front of the edge whose `X-Forwarded-For` is believed when "
            "finding the client address."
        ),
    )
    node_id: Annotated[str, AfterValidator(_check_node_id)] = Field(
        default="og1",
        description=(
            "Id of this node, appended to ray ids like a colo code: 1 to 16 of `a-z`, `0-9`, `-`."
        ),
    )
    limits: Limits = Field(default_factory=Limits, description="Client request limits.")
    access_log: AccessLog = Field(default_factory=AccessLog, description="Access log output.")
    zones: tuple[Zone, ...] = Field(min_length=1, description="The zones this edge serves.")
    health: HealthSettings = Field(
        default_factory=HealthSettings,
        description="Monitors, standalone health checks and origin alerts. See docs/health.md.",
    )
    tls: EdgeTls = Field(default_factory=EdgeTls, description="TLS listeners and certificates.")
    edge: EdgeIdentity = Field(
        default_factory=EdgeIdentity, description="The edge as its origins see it."
    )

    @model_validator(mode="after")
    def _listeners_distinct(self) -> Config:
        for index, address in enumerate(self.tls.listen):
            if address in self.listen:
                raise _located(
                    ("tls", "listen", index), f"{address} is also a plain HTTP listener"
                )
        return self
    cache: CacheStoreSettings = Field(
        default_factory=CacheStoreSettings, description="Cache storage shared by all zones."
    )
    lists: dict[Name, tuple[str | int, ...]] = Field(
        default_factory=dict,
        description=(
            "Named lists for rule expressions (`ip.src in $office`): IPs/CIDRs, strings or "
            "integers. See docs/rules.md."
        ),
    )

    @model_validator(mode="after")
    def _cache_expressions_compile(self) -> Config:
        check_cache_expressions([zone.cache for zone in self.zones], self.lists)
        return self

    @model_validator(mode="after")
    def _rules_compile(self) -> Config:
        check_expressions([(zone.name, zone.security) for zone in self.zones], self.lists)
        return self

    @model_validator(mode="after")
    def _room_expressions_compile(self) -> Config:
        check_room_expressions([zone.waiting_room for zone in self.zones], self.lists)
        return self

    @model_validator(mode="after")
    def _monitors_exist(self) -> Config:
        for z, zone in enumerate(self.zones):
            if zone.load_balancer is None:
                continue
            for p, policy in enumerate(zone.load_balancer.pools):
                if policy.monitor is not None and policy.monitor not in self.health.monitors:
                    raise _located(
                        ("zones", z, "load_balancer", "pools", p, "monitor"),
                        f"monitor {policy.monitor!r} is not defined under health.monitors",
                    )
        return self

    @field_validator("listen")
    @classmethod
    def _unique_listeners(cls, listen: tuple[ListenAddress, ...]) -> tuple[ListenAddress, ...]:
        _no_duplicates(listen, "listen address")
        return listen

    @field_validator("zones")
    @classmethod
    def _unique_across_zones(cls, zones: tuple[Zone, ...]) -> tuple[Zone, ...]:
        names: set[str] = set()
        owner: dict[str, str] = {}
        for z, zone in enumerate(zones):
            if zone.name in names:
                raise _located((z, "name"), f"zone {zone.name!r} is defined twice")
            names.add(zone.name)
            for h, hostname in enumerate(zone.hostnames):
                if hostname in owner:
                    raise _located(
                        (z, "hostnames", h),
                        f"hostname {hostname!r} already belongs to zone {owner[hostname]!r}",
                    )
                owner[hostname] = zone.name
        return zones


# Names for modules that also have run-time Zone/Pool/Origin types (routing, upstream).
ZoneConfig = Zone
PoolConfig = Pool
OriginConfig = Origin


# --- loading ------------------------------------------------------------------------------

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# `$${` is a literal `${`; `${NAME}` and `${NAME:-default}` are references.
_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<close>\}?)")
_REFERENCE_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?\Z", re.S)


def load(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at `path`; raise ConfigError listing every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read config: {exc}"]) from None
    return loads(text, str(path), env=env)


def loads(text: str, source: str = "<string>", *, env: Mapping[str, str] | None = None) -> Config:
    """Validate config `text`; `source` names it in messages, `env` defaults to os.environ."""
    environ = os.environ if env is None else env
    loader = yaml.SafeLoader(text)
    try:
        document = loader.get_single_node()
        lines: dict[FieldPath, int] = {(): 1}
        problems: list[str] = []
        if document is not None:
            _Walk(source, environ, lines, problems).visit(document, ())
            if problems:
                raise ConfigError(problems)
            data = loader.construct_document(document)
        else:
            data = {}
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_message(exc, source)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}:1: {exc}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:1: the top level must be a mapping of sections"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_messages(exc, lines, source)) from None


def dump(config: Config) -> str:
    """The config as YAML with defaults filled in, units readable and secrets as ``***``."""
    data = config.model_dump(mode="json")
    text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text


def _syntax_message(exc: Any, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    parts = [part for part in (exc.context, exc.problem) if part]
    return f"{source}:{line}: {': '.join(parts) or 'invalid YAML'}"


class _Walk:
    """One pass over the YAML node tree before construction.

    It records the line each field path starts on, substitutes environment references in
    string scalars, and rejects duplicate or non-string keys (PyYAML keeps the last duplicate
    silently).
    """

    def __init__(
        self, source: str, env: Mapping[str, str], lines: dict[FieldPath, int], problems: list[str]
    ) -> None:
        self.source = source
        self.env = env
        self.lines = lines
        self.problems = problems
        self.visited: set[int] = set()

    def problem(self, node: Any, path: FieldPath, message: str) -> None:
        where = f"{_dotted(path)}: " if path else ""
        self.problems.append(f"{self.source}:{node.start_mark.line + 1}: {where}{message}")

    def visit(self, node: Any, path: FieldPath) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self.visited:  # an alias: already walked (and maybe substituted)
            return
        self.visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self.visit_mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.visit(item, (*path, index))
        elif node.tag == _STR_TAG and "$" in node.value:
            node.value = self.substitute(node, path)

    def visit_mapping(self, node: Any, path: FieldPath) -> None:
        seen: set[str] = set()
        for key, value in node.value:
            if key.tag == _MERGE_TAG:  # `<<: *defaults` contributes keys to this mapping
                sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
                for merged in sources:
                    self.visit(merged, path)
                continue
            if not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG:
                self.problem(key, path, f"keys must be strings, got {_describe(key)}")
                continue
            if key.value in seen:
                self.problem(key, (*path, key.value), "duplicate key")
                continue
            seen.add(key.value)
            child = (*path, key.value)
            self.lines.setdefault(child, key.start_mark.line + 1)
            self.visit(value, child)

    def substitute(self, node: Any, path: FieldPath) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group("body") is None:
                return "${"
            body = _REFERENCE_BODY.match(match.group("body"))
            if not match.group("close") or body is None:
                hint = "write ${NAME} or ${NAME:-default}"
                self.problem(node, path, f"malformed {match.group(0)!r}: {hint}")
                return ""
            name, default = body.group("name"), body.group("default")
            value = self.env.get(name)
            if default is not None and not value:  # as in sh: `:-` also covers set-but-empty
                return default
            if value is None:
                self.problem(node, path, f"environment variable {name} is not set")
                return ""
            return value

        return _REFERENCE.sub(replace, str(node.value))


def _describe(node: Any) -> str:
    if isinstance(node, yaml.ScalarNode):
        return repr(node.value)
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a list"


def _dotted(path: FieldPath) -> str:
    return ".".join(str(part) for part in path)


def _validation_messages(
    exc: ValidationError, lines: Mapping[FieldPath, int], source: str
) -> list[str]:
    errors = exc.errors()
    failed_below = {tuple(error["loc"][:n]) for error in errors for n in range(len(error["loc"]))}
    located: list[tuple[int, str]] = []
    for error in errors:
        path: FieldPath = tuple(error["loc"])
        # A list whose items failed also reports that too few items are left; that is noise.
        if error["type"] == "too_short" and path in failed_below:
            continue
        at = error.get("ctx", {}).get("at", ())
        path = (*path, *at)
        line = next(lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = _unknown_key_message(path)
        elif error["type"] == "too_short":  # pydantic says "Tuple" or "Value"; be concrete
            minimum = error["ctx"]["min_length"]
            if isinstance(error["input"], list | tuple):
                message = f"needs at least {minimum} item(s)"
            else:
                message = f"must be at least {minimum} characters long"
        elif error["type"] == "tuple_type":
            message = "Input should be a list"
        prefix = f"{_dotted(path)}: " if path else ""
        located.append((line, f"{source}:{line}: {prefix}{message}"))
    located.sort(key=lambda item: item[0])
    return [message for _, message in located]


def _unknown_key_message(path: FieldPath) -> str:
    """'unknown key', listing the keys the enclosing section does accept."""
    model: type[BaseModel] | None = Config
    for part in path[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _section_of(field.annotation) if field is not None else None
    if model is None:
        return "unknown key"
    return f"unknown key (expected one of: {', '.join(model.model_fields)})"


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as the items of a tuple."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        if isinstance(argument, type) and issubclass(argument, BaseModel):
            return argument
    return None
