"""Typed settings for origin health, load balancing, affinity and alerts.

Durations are float seconds in code; YAML may also write them as ``"30s"``, ``"5m"``, ``"23h"``.
Defaults and ranges follow cloudflare-spec.md §4, §5 and §6; ``[ours]`` marks our own choices.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CODE_PATTERN = re.compile(r"^[1-5](?:\d\d|\dx|xx)$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def parse_duration(value: object) -> object:
    """Turn ``"30s"``/``"5m"``/``"500ms"`` into float seconds; numbers pass through."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 23h)")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]


def code_matches(pattern: str, status: int) -> bool:
    """``"200"`` matches 200, ``"2xx"`` matches 200-299, ``"52x"`` matches 520-529."""
    text = str(status)
    if len(text) != len(pattern):
        return False
    return all(p in ("x", c) for p, c in zip(pattern, text, strict=True))


def _check_codes(codes: list[str]) -> list[str]:
    lowered = [code.strip().lower() for code in codes]
    bad = [code for code in lowered if not _CODE_PATTERN.match(code)]
    if bad:
        raise ValueError(f"status patterns must look like 200, 2xx or 52x: {bad}")
    return lowered


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonitorSettings(_Model):
    """An active probe definition (spec §6.2), shared by pools and standalone checks."""

    type: Literal["http", "https", "tcp"] = Field(default="http", description="Probe protocol.")
    interval: Duration = Field(
        default=60.0, ge=1.0, le=3600.0, description="Seconds between probes."
    )
    timeout: Duration = Field(
        default=5.0, gt=0.0, le=120.0, description="Seconds allowed per attempt."
    )
    retries: int = Field(
        default=2, ge=0, le=5, description="Immediate re-tries, only after a timeout."
    )
    method: Literal["GET", "HEAD"] = Field(
        default="GET", description="HTTP method (ignored for tcp)."
    )
    path: str = Field(default="/", description="Request path (http/https).")
    port: int = Field(default=0, ge=0, le=65535, description="0 = 80, or 443 for https.")
    headers: dict[str, list[str]] = Field(
        default_factory=dict, description="Extra request headers; Host also becomes the SNI."
    )
    expected_codes: list[str] = Field(
        default_factory=lambda: ["200"], min_length=1, description='e.g. ["200"], ["2xx", "301"].'
    )
    expected_body: str | None = Field(
        default=None,
        description="Case-insensitive substring looked for in the first 10 KB of the body.",
    )
    follow_redirects: bool = Field(
        default=False, description="Off: a 301/302/303 is a code mismatch."
    )
    allow_insecure: bool = Field(default=False, description="https: skip certificate validation.")
    consecutive_up: int = Field(
        default=0, ge=0, le=100, description="Successes in a row to turn healthy."
    )
    consecutive_down: int = Field(
        default=0, ge=0, le=100, description="Failures in a row to go down."
    )

    _codes = field_validator("expected_codes")(_check_codes)

    @model_validator(mode="after")
    def _coherent(self) -> MonitorSettings:
        if self.timeout >= self.interval:
            raise ValueError("timeout must be shorter than interval")
        if not self.path.startswith("/") or any(c in self.path for c in " \r\n\t"):
            raise ValueError("path must start with / and contain no whitespace")
        for name, values in self.headers.items():
            if not _TOKEN.match(name):
                raise ValueError(f"invalid header name {name!r}")
            # spec §5: the probe User-Agent cannot be overridden.
            if name.lower() == "user-agent":
                raise ValueError("the probe User-Agent cannot be overridden")
            if any(c in value for value in values for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a control character in a value")
        if self.method == "HEAD" and self.expected_body is not None:
            raise ValueError("expected_body needs method GET (a HEAD response has no body)")
        return self

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return 443 if self.type == "https" else 80

    def is_expected(self, status: int) -> bool:
        return any(code_matches(code, status) for code in self.expected_codes)


class HealthCheckSettings(_Model):
    """A standalone health check (spec §5): one address watched and alerted on, no pool.

    Spec §5 defaults ``consecutive_fails``/``consecutive_successes`` to 1, which is what the
    monitor's ``consecutive_down``/``consecutive_up`` of 0 already mean (flip on first result).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=64, description="Check name.")
    address: str = Field(min_length=1, max_length=253, description="Hostname or IP to probe.")
    suspended: bool = Field(default=False, description="True: no probes are sent.")
    monitor: MonitorSettings = Field(default_factory=lambda: MonitorSettings())
    notify_on: Literal["unhealthy", "healthy", "either"] = Field(
        default="either", description="Which state changes raise an alert."
    )


class OutlierSettings(_Model):
    """Passive outlier detection on real traffic [ours, Envoy-style]."""

    enabled: bool = True
    consecutive_failures: int = Field(default=5, ge=1, le=1000)
    failure_statuses: list[str] = Field(
        default_factory=lambda: ["5xx"],
        min_length=1,
        description='Statuses that count as failures; "5xx" includes the edge 52x codes.',
    )
    base_ejection: Duration = Field(
        default=30.0, gt=0.0, description="First ejection; n-th is n x base."
    )
    max_ejection: Duration = Field(default=300.0, gt=0.0, description="Cap on one ejection.")
    max_ejection_percent: float = Field(default=50.0, ge=0.0, le=100.0)

    _codes = field_validator("failure_statuses")(_check_codes)

    @model_validator(mode="after")
    def _coherent(self) -> OutlierSettings:
        if self.max_ejection < self.base_ejection:
            raise ValueError("max_ejection must be >= base_ejection")
        return self

    def is_failure(self, status: int) -> bool:
        return any(code_matches(code, status) for code in self.failure_statuses)


class SlowStartSettings(_Model):
    """A recovered origin ramps from ``min_weight_percent`` to its full weight over ``window``."""

    window: Duration = Field(default=0.0, ge=0.0, le=3600.0, description="0 = off.")
    min_weight_percent: float = Field(default=10.0, gt=0.0, le=100.0)


AffinityMode = Literal["none", "cookie", "header", "ip_cookie"]
ZdfMode = Literal["none", "temporary", "sticky"]

# spec §6.6: (default, min, max) TTL per affinity mode.
AFFINITY_TTL = {
    "cookie": (82800.0, 1800.0, 604800.0),
    "ip_cookie": (82800.0, 1800.0, 604800.0),
    "header": (1800.0, 30.0, 3600.0),
}


class AffinitySettings(_Model):
    """Session affinity (spec §6.6) and its zero-downtime-failover mode (spec §3)."""

    mode: AffinityMode = "none"
    ttl: Duration | None = Field(
        default=None, description="None = 23h for cookies, 30 min for header."
    )
    headers: list[str] = Field(
        default_factory=list,
        max_length=5,
        description='header mode: names, or "cookie:<n1>,<n2>", or "cookie" (all cookies).',
    )
    require_all_headers: bool = False
    zero_downtime_failover: ZdfMode = "none"
    secure: Literal["auto", "always", "never"] = "auto"
    samesite: Literal["auto", "lax", "none", "strict"] = "auto"

    @model_validator(mode="after")
    def _coherent(self) -> AffinitySettings:
        if self.mode == "none":
            return self
        default, low, high = AFFINITY_TTL[self.mode]
        ttl = default if self.ttl is None else self.ttl
        if not low <= ttl <= high:
            raise ValueError(f"{self.mode} affinity ttl must be within {low:g}-{high:g} s")
        object.__setattr__(self, "ttl", ttl)
        if self.mode == "header" and not self.headers:
            raise ValueError("header affinity needs at least one header name")
        if self.mode == "header" and self.zero_downtime_failover == "sticky":
            raise ValueError("sticky zero-downtime failover is not supported for header affinity")
        if self.samesite == "none" and self.secure == "never":
            raise ValueError("samesite none cannot be combined with secure never")
        return self

    @property
    def effective_ttl(self) -> float:
        return self.ttl if self.ttl is not None else 0.0


class PoolPolicy(_Model):
    """How a load balancer treats one of the core's pools (referenced by name)."""

    name: str = Field(min_length=1)
    enabled: bool = Field(default=True, description="False: no traffic and no probes.")
    weight: float = Field(
        default=1.0, ge=0.0, le=1.0, description="random / least_outstanding share."
    )
    minimum_origins: int = Field(default=1, ge=1, description="Healthy origins needed to serve.")
    monitor: str | None = Field(default=None, description="Monitor name; None = health is ignored.")


class LoadBalancerSettings(_Model):
    """A zone's load balancer: ordered pools, fallback, steering (spec §6.1, §6.4)."""

    pools: list[PoolPolicy] = Field(min_length=1, description="In failover order.")
    fallback_pool: str | None = Field(default=None, description="None = the last pool listed.")
    steering: Literal["off", "random", "least_outstanding_requests"] = "off"
    failover_across_pools: bool = Field(
        default=False,
        description="Spec §3: the failover retry may use another pool when this one has none.",
    )
    affinity: AffinitySettings = Field(default_factory=lambda: AffinitySettings())
    outlier: OutlierSettings = Field(default_factory=lambda: OutlierSettings())
    slow_start: SlowStartSettings = Field(default_factory=lambda: SlowStartSettings())

    @model_validator(mode="after")
    def _coherent(self) -> LoadBalancerSettings:
        names = [pool.name for pool in self.pools]
        if len(set(names)) != len(names):
            raise ValueError("pool names must be unique")
        if self.fallback_pool is not None and self.fallback_pool not in names:
            raise ValueError(f"fallback_pool {self.fallback_pool!r} is not one of {names}")
        return self

    @property
    def fallback(self) -> PoolPolicy:
        name = self.fallback_pool or self.pools[-1].name
        return next(pool for pool in self.pools if pool.name == name)


class WebhookSettings(_Model):
    url: str = Field(pattern=r"^https?://", description="Where alerts are POSTed as JSON.")
    format: Literal["json", "slack"] = "json"
    secret_env: str | None = Field(
        default=None, description="Env var holding the HMAC-SHA256 key for the signature header."
    )


_MAILBOX = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_SERVER = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})$")


class EmailSettings(_Model):
    """Alerts as plain-text email through one SMTP relay (spec §4.3); password from the env."""

    server: str = Field(description="SMTP relay as host:port, e.g. smtp.example.com:587.")
    sender: str = Field(description="The From address (header and envelope).")
    to: list[str] = Field(
        min_length=1, max_length=20, description="Recipients (spec §5: up to 20 addresses)."
    )
    starttls: bool = Field(
        default=False, description="Upgrade with STARTTLS before anything else is sent."
    )
    ca_bundle: str | None = Field(
        default=None,
        description="PEM CA certificates that sign the relay's certificate (default: system).",
    )
    username: str | None = Field(default=None, description="AUTH LOGIN/PLAIN user name.")
    password_env: str | None = Field(
        default=None, description="Env var holding the SMTP password (needs username)."
    )
    subject_prefix: str = Field(
        default="[originguard]", max_length=64, description="Put before each alert's summary."
    )
    timeout: Duration = Field(
        default=10.0, gt=0.0, le=120.0, description="Seconds per SMTP socket operation."
    )

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        match = _SERVER.match(value.strip())
        if match is None or not 0 < int(match.group("port")) < 65536:
            raise ValueError("server must be host:port, e.g. smtp.example.com:587")
        return value.strip()

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not _MAILBOX.match(value):
            raise ValueError(f"not an email address: {value!r}")
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, values: list[str]) -> list[str]:
        bad = [value for value in values if not _MAILBOX.match(value)]
        if bad:
            raise ValueError(f"not email addresses: {bad}")
        return values

    @model_validator(mode="after")
    def _coherent(self) -> EmailSettings:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together")
        if self.username is not None and not self.starttls:
            # [ours] a password is never sent over an unencrypted connection
            raise ValueError("SMTP login needs starttls: true")
        if self.ca_bundle is not None:
            if not self.starttls:
                raise ValueError("ca_bundle is only used with starttls: true")
            if not os.access(self.ca_bundle, os.R_OK):
                raise ValueError(f"{self.ca_bundle}: file not found or not readable")
        if any(c in self.subject_prefix for c in "\r\n"):
            raise ValueError("subject_prefix cannot contain a line break")
        return self

    @property
    def host(self) -> str:
        return self.server.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.server.rsplit(":", 1)[1])


class AlertSettings(_Model):
    """Origin error-rate burn alert (spec §4.1 [ours] defaults), passive monitoring, delivery."""

    slo: float = Field(default=99.9, gt=0.0, lt=100.0, description="Target success percentage.")
    short_window: Duration = Field(
        default=300.0, gt=0.0, description="Spec §4.1: 5 min (shorter only for drills, tests)."
    )
    long_window: Duration = Field(default=3600.0, gt=0.0, description="Spec §4.1: 1 h.")
    burn_threshold: float = Field(default=14.4, gt=0.0)
    min_requests: int = Field(
        default=100, ge=1, description="Short-window floor; quieter = no alert."
    )
    per_origin: bool = Field(
        default=True, description="Also evaluate each origin, not only the zone."
    )
    passive_monitoring: bool = Field(default=True, description="Spec §4.2 521 alert.")
    passive_window: Duration = Field(
        default=300.0,
        ge=1.0,
        le=3600.0,
        description="Spec §4.2: the sample that must be 100 % 521 (5 min; shorter for drills).",
    )
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    email: EmailSettings | None = Field(default=None, description="SMTP delivery of alerts.")
    max_attempts: int = Field(
        default=3, ge=1, le=10, description="Delivery attempts per webhook or email."
    )
    evaluate_every: Duration = Field(
        default=10.0, ge=0.1, le=300.0, description="How often alert rules are evaluated."
    )

    @model_validator(mode="after")
    def _coherent(self) -> AlertSettings:
        if self.short_window >= self.long_window:
            raise ValueError("short_window must be shorter than long_window")
        return self

    @property
    def bucket(self) -> float:
        """Width of the alert windows' time buckets: 10 s for the spec's windows, finer for
        shorter ones (a window spans at least ten buckets), never more than 3600 per window."""
        shortest = min(self.short_window, self.passive_window)
        return max(min(10.0, shortest / 10.0), self.long_window / 3600.0)


class HealthSettings(_Model):
    """Named monitors, standalone checks, probing limits and alerts."""

    monitors: dict[str, MonitorSettings] = Field(default_factory=dict)
    checks: list[HealthCheckSettings] = Field(default_factory=list)
    max_concurrent_probes: int = Field(default=64, ge=1, le=4096)
    jitter: float = Field(
        default=0.1, ge=0.0, le=0.5, description="+/- share of interval per probe."
    )
    history: int = Field(default=20, ge=1, le=1000, description="Results kept per origin.")
    alerts: AlertSettings = Field(default_factory=lambda: AlertSettings())

    @model_validator(mode="after")
    def _unique_checks(self) -> HealthSettings:
        names = [check.name for check in self.checks]
        if len(set(names)) != len(names):
            raise ValueError("health check names must be unique")
        return self
