"""Assemble the "block traffic" feature for one config: the four request filters in spec §0
order (IP access ▸ custom rules ▸ rate limits ▸ challenge), the rate-limit response filter,
and the observer that forgets each exchange's verdict.

Rate-limit counters survive a reload: the new filters take the previous runtime's counter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any

from originguard.protect.challenge import ChallengeFilter, Challenger
from originguard.protect.firewall import CustomRuleFilter, compile_rules
from originguard.protect.ip_access import IpAccessFilter, IpAccessList
from originguard.protect.ratelimit import RateLimitFilter, compile_limits
from originguard.protect.settings import GeoipSettings
from originguard.protect.verdict import GeoLookup, SecurityEvents, Verdicts
from originguard.state.base import WindowCounter
from originguard.state.memory import MemoryWindowCounter

if TYPE_CHECKING:
    from originguard.config import Config
    from originguard.observe.metrics import Metrics
    from originguard.pipeline import Observer, RequestFilter, ResponseFilter


@dataclass
class Security:
    request_filters: list[RequestFilter] = field(default_factory=list)
    response_filters: list[ResponseFilter] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)


UNKNOWN_COUNTRY = "XX"  # spec §7.4: the country code of an address the database cannot place
TOR = "T1"  # spec §7.4: the country code Cloudflare gives Tor exit nodes


class MaxMindGeo:
    """Country and AS number from MaxMind-format databases (GeoIP2/GeoLite2).

    With a country database, an address it marks as a Tor exit node (``is_tor_exit_node``,
    top level as in GeoIP2 Anonymous IP, or under ``traits``) is ``T1`` and an address it has
    no country for is ``XX``, as Cloudflare reports them; without one, the country is unknown
    to rules (``ip.src.country`` reads "") and no country IP Access rule applies.
    """

    def __init__(self, country_path: str | None, asn_path: str | None) -> None:
        import maxminddb  # only needed when a database is configured

        self._country = maxminddb.open_database(country_path) if country_path else None
        self._asn = maxminddb.open_database(asn_path) if asn_path else None

    def lookup(self, address: IPv4Address | IPv6Address) -> tuple[str | None, int | None]:
        country = asnum = None
        if self._country is not None:
            record: Any = self._country.get(address)
            country = country_of(record)
        if self._asn is not None:
            record = self._asn.get(address)
            if isinstance(record, dict):
                number = record.get("autonomous_system_number")
                asnum = number if isinstance(number, int) else None
        return country, asnum


def country_of(record: object) -> str:
    """The country code of a MaxMind record: ISO alpha-2, ``T1`` for Tor, ``XX`` unknown."""
    if not isinstance(record, dict):
        return UNKNOWN_COUNTRY
    traits = record.get("traits")
    if record.get("is_tor_exit_node") is True or (
        isinstance(traits, dict) and traits.get("is_tor_exit_node") is True
    ):
        return TOR
    found = record.get("country") or record.get("registered_country") or {}
    code = found.get("iso_code") if isinstance(found, dict) else None
    return code if isinstance(code, str) and code else UNKNOWN_COUNTRY


_GEO_CACHE: dict[tuple[str | None, str | None], MaxMindGeo] = {}


def open_geo(settings: GeoipSettings) -> GeoLookup | None:
    """One reader per pair of database paths for the life of the process."""
    paths = (settings.country_database, settings.asn_database)
    if paths == (None, None):
        return None
    geo = _GEO_CACHE.get(paths)
    if geo is None:
        geo = _GEO_CACHE[paths] = MaxMindGeo(*paths)
    return geo


def build_security(
    config: Config,
    metrics: Metrics,
    previous_filters: Sequence[object] = (),
    clock: Callable[[], float] = time.time,
) -> Security:
    """The feature's filters for `config`; nothing at all when no zone has a security rule."""
    zones = [zone for zone in config.zones if zone.security.is_active]
    security = Security()
    if not zones:
        return security
    counter: WindowCounter = MemoryWindowCounter()
    for old in previous_filters:
        if isinstance(old, RateLimitFilter):
            counter = old.counter
    geo = {zone.name: g for zone in zones if (g := open_geo(zone.security.geoip)) is not None}
    verdicts = Verdicts(geo)
    events = SecurityEvents(metrics)
    challengers = {
        zone.name: Challenger.from_settings(zone.name, zone.security.challenge) for zone in zones
    }
    access = {zone.name: IpAccessList(zone.security.ip_access) for zone in zones}
    rules = {zone.name: compile_rules(zone.security.rules, config.lists) for zone in zones}
    limits = {zone.name: compile_limits(zone.security.rate_limits, config.lists) for zone in zones}
    under_attack = frozenset(zone.name for zone in zones if zone.security.under_attack)
    rate_limits = RateLimitFilter(limits, counter, challengers, verdicts, events, clock)
    security.request_filters += [
        IpAccessFilter(access, challengers, verdicts, events, clock),
        CustomRuleFilter(rules, challengers, verdicts, events, clock),
        rate_limits,
        ChallengeFilter(challengers, under_attack, verdicts, events, clock),
    ]
    security.response_filters.append(rate_limits)
    security.observers.append(verdicts)
    return security
