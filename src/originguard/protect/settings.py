"""A zone's `security:` section: IP access rules, custom rules, rate limiting rules, the
challenge and "under attack" mode (spec §7). Typed and validated at load; rule expressions are
compiled at load too (``check_expressions``), so a bad rule stops the edge from starting and a
bad reload changes nothing.

    security:
      under_attack: false
      ip_access:
        - {target: ip_range, value: 198.51.100.0/24, mode: block}
      rules:
        - name: admin only from the office
          expression: 'http.request.uri.path contains "/admin" and not ip.src in $office'
          action: block
      rate_limits:
        - name: login
          expression: 'http.request.uri.path eq "/login"'
          characteristics: [ip.src]
          period: 60s
          requests_per_period: 5
          mitigation_timeout: 10m
          action: block
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from originguard.protect.rules import RuleSyntaxError, compile_expression
from originguard.units import Count, Duration, TypeLabel

# spec §7.2: a custom block response body is at most 2 KB; §7.3: a rate-limit one 30 KB.
MAX_RULE_BODY = 2 * 1024
MAX_RATE_LIMIT_BODY = 30 * 1024
# spec §7.3: the periods Cloudflare offers, up to one hour.
PERIODS = (10, 15, 20, 30, 40, 45, 60, 90, 120, 180, 240, 300, 480, 600, 900, 1200, 1800,
           2400, 3600)  # fmt: skip
# spec §7.3: mitigation_timeout values.
MITIGATION_TIMEOUTS = (0, 10, 60, 120, 300, 600, 3600, 86400)
# spec §7.4: IP Access rule ranges are IPv4 /16 or /24, IPv6 /32, /48 or /64 only.
RANGE_PREFIXES = {4: (16, 24), 6: (32, 48, 64)}

IpAccessMode = Literal["block", "challenge", "js_challenge", "allow"]
RuleAction = Literal["block", "challenge", "js_challenge", "skip", "log"]
RateLimitAction = Literal["block", "challenge", "js_challenge", "log"]
SkipTarget = Literal["remaining_rules", "rate_limits", "under_attack"]
ContentType = Literal["text/html", "text/plain", "application/json", "text/xml"]

_COUNTRY = re.compile(r"(?:[A-Z]{2}|T1)\Z")  # spec §7.4: plus T1 (Tor); XX (unknown) fits
_ASN = re.compile(r"(?:AS)?([0-9]{1,10})\Z", re.I)
KEYED_CHARACTERISTIC = re.compile(
    r'(?P<field>http\.request\.(?:headers|cookies|uri\.args))\["(?P<name>[^"\\]{1,256})"\]\Z'
)
# Characteristics without a key; `cf.colo.id` is accepted so pasted rules load (one node
# counts for itself, which is what a per-colo counter means here).
_PLAIN_CHARACTERISTICS = frozenset(
    {"ip.src", "http.host", "http.request.uri.path", "ip.src.country", "ip.src.asnum",
     "cf.colo.id"}
)  # fmt: skip


def managed(action: object) -> object:
    """Cloudflare's `managed_challenge` is read as `js_challenge`: Cloudflare shows most
    visitors a non-interactive challenge and escalates on bot signals the edge does not have,
    so the non-interactive proof of work is what a managed challenge amounts to here."""
    return "js_challenge" if action == "managed_challenge" else action


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _redact(_secret: SecretStr) -> str:
    return "***"


Secret = Annotated[
    SecretStr,
    ValidationInfo,
    Field(min_length=16),
    PlainSerializer(_redact, return_type=str, when_used="json"),
    TypeLabel("secret"),
]
RuleName = Annotated[str, Field(min_length=1, max_length=120), TypeLabel("name")]


class IpAccessRule(_Section):
    """One IP Access rule (spec §7.4): who, and what to do with them."""

    target: Literal["ip", "ip6", "ip_range", "asn", "country"] = Field(
        description=(
            "What `value` is: `ip` (IPv4), `ip6`, `ip_range` (IPv4 /16 or /24; IPv6 /32, /48 "
            "or /64), `asn` (`AS13335`) or `country` (ISO 3166-1 alpha-2, `T1` Tor, `XX` "
            "unknown; needs `geoip.country_database`)."
        )
    )
    value: str = Field(description="The address, range, AS number or country code.")
    mode: IpAccessMode = Field(
        description=(
            "`block` (403), `challenge` (interactive), `js_challenge`, or `allow`: allow wins "
            "over the others and skips custom rules and rate limits (an IP or ASN allow also "
            "skips under-attack mode)."
        )
    )
    notes: str = Field(default="", max_length=500, description="Free text for operators.")

    @field_validator("mode", mode="before")
    @classmethod
    def _managed(cls, value: object) -> object:
        return managed(value)

    @field_validator("value")
    @classmethod
    def _normalise(cls, value: str, info: ValidationInfo) -> str:
        target = info.data.get("target")
        return value if target is None else normalise_target(target, value)


def normalise_target(target: str, value: str) -> str:
    """The canonical spelling of an IP Access rule value; ValueError when it is not one."""
    if target in ("ip", "ip6"):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        if address.version != (4 if target == "ip" else 6):
            raise ValueError(f"{value!r} is not an IPv{4 if target == 'ip' else 6} address")
        return str(address)
    if target == "ip_range":
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a network in CIDR form: {error}") from None
        allowed = RANGE_PREFIXES[network.version]
        if network.prefixlen not in allowed:
            sizes = ", ".join(f"/{p}" for p in allowed)
            version, prefix = network.version, network.prefixlen
            raise ValueError(f"IPv{version} ranges must be {sizes}, not /{prefix}")
        return str(network)
    if target == "asn":
        match = _ASN.match(value)
        if match is None or not 0 < int(match.group(1)) < 2**32:
            raise ValueError(f"{value!r} is not an AS number like AS13335")
        return f"AS{int(match.group(1))}"
    if not _COUNTRY.match(value):
        raise ValueError(f"{value!r} is not an upper-case two-letter country code (or T1 for Tor)")
    return value


class BlockResponse(_Section):
    """A custom answer for a `block` action (spec §7.2, §7.3)."""

    status: int | None = Field(
        default=None,
        ge=400,
        le=499,
        description="Status code, 400 to 499; default 403 for custom rules, 429 for rate limits.",
    )
    content_type: ContentType = Field(default="text/html", description="Content-Type of `body`.")
    body: str = Field(
        default="",
        description="The body: at most 2 KB for custom rules, 30 KB for rate limits.",
    )


class CustomRule(_Section):
    """One custom rule (spec §7.2); rules run in order and the first terminating match wins."""

    name: RuleName = Field(description="Shown in errors, logs and metrics; unique in the zone.")
    expression: str = Field(
        min_length=1, description="A rules-language expression (see docs/rules.md)."
    )
    action: RuleAction = Field(
        description=(
            "`block`, `challenge` (interactive), `js_challenge`, `skip` (see `skip`) or `log` "
            "(count and log, then go on)."
        )
    )
    response: BlockResponse | None = Field(
        default=None, description="Custom block response; only with `action: block`."
    )
    skip: tuple[SkipTarget, ...] = Field(
        default=(),
        description=(
            "With `action: skip`, what the matching request skips: `remaining_rules` (default), "
            "`rate_limits`, `under_attack`."
        ),
    )
    logging: bool = Field(default=True, description="Log matches of a `skip` rule as events.")
    enabled: bool = Field(default=True, description="Evaluate this rule.")

    @field_validator("action", mode="before")
    @classmethod
    def _managed(cls, value: object) -> object:
        return managed(value)

    @model_validator(mode="after")
    def _coherent(self) -> CustomRule:
        if self.response is not None:
            if self.action != "block":
                raise _at(("response",), "a response can only be given with action: block")
            if len(self.response.body.encode()) > MAX_RULE_BODY:
                raise _at(("response", "body"), "must be at most 2 KB (2048 bytes)")
        if self.skip and self.action != "skip":
            raise _at(("skip",), "only meaningful with action: skip")
        if self.action == "skip" and not self.skip:
            object.__setattr__(self, "skip", ("remaining_rules",))
        return self


class RateLimitRule(_Section):
    """One rate limiting rule (spec §7.3)."""

    name: RuleName = Field(description="Shown in logs and metrics; unique in the zone.")
    expression: str = Field(min_length=1, description="Which requests this rule looks at.")
    characteristics: tuple[str, ...] = Field(
        default=("ip.src",),
        min_length=1,
        description=(
            "What a counter is per: `ip.src` (IPv6 per /64), `http.host`, "
            '`http.request.uri.path`, `http.request.headers["name"]`, '
            '`http.request.cookies["name"]`, `http.request.uri.args["name"]`, `ip.src.country`, '
            "`ip.src.asnum`. A missing header, cookie or argument has its own counter."
        ),
    )
    period: Duration = Field(
        description="Length of the sliding window: 10s, 15s, 20s, 30s, 40s, 45s, 1m ... 1h."
    )
    requests_per_period: Count = Field(ge=1, description="Requests allowed per period and key.")
    mitigation_timeout: Duration = Field(
        default=0.0,
        description=(
            "0: act only on the requests over the rate (throttle). 10s, 1m, 2m, 5m, 10m, 1h or "
            "1d: once over the rate, act on every matching request of that key for this long."
        ),
    )
    action: RateLimitAction = Field(
        default="block",
        description="`block` (429 with Retry-After), `challenge`, `js_challenge` or `log`.",
    )
    response: BlockResponse | None = Field(
        default=None, description="Custom block response; only with `action: block`."
    )
    counting_expression: str = Field(
        default="",
        description=(
            "Count only requests matching this expression, which may read the response "
            "(`http.response.code eq 401`); empty: count every request `expression` matches."
        ),
    )
    enabled: bool = Field(default=True, description="Evaluate this rule.")

    @field_validator("action", mode="before")
    @classmethod
    def _managed(cls, value: object) -> object:
        return managed(value)

    @field_validator("characteristics")
    @classmethod
    def _known(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for index, value in enumerate(values):
            if value not in _PLAIN_CHARACTERISTICS and not KEYED_CHARACTERISTIC.match(value):
                raise _at(
                    (index,),
                    f"{value!r} is not a characteristic: use ip.src, http.host, "
                    'http.request.uri.path, http.request.headers["name"], '
                    'http.request.cookies["name"] or http.request.uri.args["name"]',
                )
            if value.startswith("http.request.headers[") and value != value.lower():
                raise _at((index,), "header names are lower-case, as in the rules language")
        if len(set(values)) != len(values):
            raise ValueError("a characteristic is listed twice")
        return values

    @field_validator("period")
    @classmethod
    def _period(cls, value: float) -> float:
        if value not in PERIODS:
            raise ValueError(f"must be one of {', '.join(f'{p}s' for p in PERIODS)}")
        return value

    @field_validator("mitigation_timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value not in MITIGATION_TIMEOUTS:
            raise ValueError("must be 0, 10s, 1m, 2m, 5m, 10m, 1h or 1d")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> RateLimitRule:
        if self.response is not None:
            if self.action != "block":
                raise _at(("response",), "a response can only be given with action: block")
            if len(self.response.body.encode()) > MAX_RATE_LIMIT_BODY:
                raise _at(("response", "body"), "must be at most 30 KB")
        return self


class ChallengeSettings(_Section):
    """The challenge page and the clearance cookie it grants."""

    secret: Secret | None = Field(
        default=None,
        description=(
            "Key that signs challenges and `og_clearance` cookies (at least 16 characters): "
            "`secret: ${OG_CHALLENGE_SECRET}`. Unset: a random key per process, so clearances "
            "end when the edge restarts and are not shared between edges."
        ),
    )
    clearance_ttl: Duration = Field(
        default=1800.0,
        ge=60,
        le=7 * 86400,
        description="How long a solved challenge lets the visitor through (default 30m).",
    )
    difficulty: int = Field(
        default=16,
        ge=0,
        le=24,
        description=(
            "Proof of work of `js_challenge`: leading zero bits of SHA-256 the browser must "
            "find (16 is about 65,000 hashes, well under a second)."
        ),
    )


class GeoipSettings(_Section):
    """MaxMind-format databases for `ip.src.country` and `ip.src.asnum`."""

    country_database: str | None = Field(
        default=None, description="Path of a GeoIP2/GeoLite2 Country (or City) `.mmdb`."
    )
    asn_database: str | None = Field(
        default=None, description="Path of a GeoLite2 ASN `.mmdb`."
    )

    @field_validator("country_database", "asn_database")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{path!r} is not a readable file")
        return path


class SecuritySettings(_Section):
    """Blocking traffic at the edge: runs before the cache and the waiting room (spec §0)."""

    ip_access: tuple[IpAccessRule, ...] = Field(
        default=(), description="IP Access rules; allow beats block (spec §7.4)."
    )
    rules: tuple[CustomRule, ...] = Field(
        default=(), description="Custom rules, in order (spec §7.2)."
    )
    rate_limits: tuple[RateLimitRule, ...] = Field(
        default=(), description="Rate limiting rules, in order (spec §7.3)."
    )
    under_attack: bool = Field(
        default=False,
        description="Challenge (js) every visitor without a clearance cookie.",
    )
    challenge: ChallengeSettings = Field(
        default_factory=ChallengeSettings, description="Challenge page and clearance cookie."
    )
    geoip: GeoipSettings = Field(
        default_factory=GeoipSettings, description="GeoIP databases for country and ASN."
    )

    @field_validator("rules", "rate_limits")
    @classmethod
    def _unique_names(
        cls, rules: tuple[CustomRule | RateLimitRule, ...]
    ) -> tuple[CustomRule | RateLimitRule, ...]:
        seen: set[str] = set()
        for index, rule in enumerate(rules):
            if rule.name in seen:
                raise _at((index, "name"), f"rule {rule.name!r} is defined twice")
            seen.add(rule.name)
        return rules

    @model_validator(mode="after")
    def _geoip_for_country_and_asn(self) -> SecuritySettings:
        # Without the database every lookup is unknown: such a rule would silently never match.
        needs = {"country": self.geoip.country_database, "asn": self.geoip.asn_database}
        for index, rule in enumerate(self.ip_access):
            if rule.target in needs and needs[rule.target] is None:
                database = "country_database" if rule.target == "country" else "asn_database"
                raise _at(
                    ("ip_access", index, "target"),
                    f"a {rule.target} rule needs geoip.{database} (it could never match)",
                )
        return self

    @property
    def is_active(self) -> bool:
        return bool(self.ip_access or self.rules or self.rate_limits or self.under_attack)


def check_expressions(
    zones: Sequence[tuple[str, SecuritySettings]], lists: Mapping[str, Sequence[str | int]]
) -> None:
    """Compile every rule expression of every zone; the first error is raised located at the
    expression, its message the rule name, the expression and a caret under the problem."""
    for z, (_, security) in enumerate(zones):
        where = ("zones", z, "security")
        for index, rule in enumerate(security.rules):
            _compile_at((*where, "rules", index), rule.name, rule.expression, lists, False)
        for index, limit in enumerate(security.rate_limits):
            path = (*where, "rate_limits", index)
            _compile_at(path, limit.name, limit.expression, lists, False)
            if limit.counting_expression:
                _compile_at(path, limit.name, limit.counting_expression, lists, True, "counting_")


def _compile_at(
    path: tuple[str | int, ...],
    name: str,
    text: str,
    lists: Mapping[str, Sequence[str | int]],
    response_fields: bool,
    prefix: str = "",
) -> None:
    try:
        compile_expression(text, lists, allow_response_fields=response_fields)
    except RuleSyntaxError as error:
        raise _at((*path, prefix + "expression"), error.render(name, text)) from None


def _at(at: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error the config loader reports at the YAML line of `at` (see config._located)."""
    return PydanticCustomError("config", "{message}", {"message": message, "at": at})
