"""IP Access rules (spec §7.4): an address, range, ASN or country → block, challenge, allow.

Look-up is O(1) per target kind: exact addresses in a dict, and ranges in one dict per
allowed prefix length (IPv4 /16 and /24; IPv6 /32, /48 and /64: spec §7.4), so the client's
address is masked at most five times whatever the number of rules.

Precedence [ours where the spec is silent]: `allow` beats everything (spec: "Allow beats
Block"); otherwise the most specific target decides: address, then longer range, then ASN,
then country. An IP or ASN allow skips custom rules, rate limits and under-attack mode; a
country allow skips custom rules and rate limits only. Allow matches are not logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import TypeVar

from originguard.exchange import Exchange
from originguard.http.messages import Response
from originguard.protect.challenge import Challenger, challenge_or_pass
from originguard.protect.rules import RequestView
from originguard.protect.settings import IpAccessRule
from originguard.protect.verdict import (
    ACCESS_DENIED,
    SKIP_RATE_LIMITS,
    SKIP_RULES,
    SKIP_UNDER_ATTACK,
    SecurityEvents,
    Verdicts,
    blocked,
)

ALLOW_SKIPS = frozenset({SKIP_RULES, SKIP_RATE_LIMITS, SKIP_UNDER_ATTACK})
COUNTRY_ALLOW_SKIPS = frozenset({SKIP_RULES, SKIP_RATE_LIMITS})
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Match:
    mode: str
    target: str  # "ip", "ip_range", "asn", "country"
    value: str


class IpAccessList:
    """A zone's IP Access rules, indexed for look-up. Pure."""

    def __init__(self, rules: Sequence[IpAccessRule]) -> None:
        self._addresses: dict[IPv4Address | IPv6Address, Match] = {}
        self._ranges: dict[tuple[int, int], dict[int, Match]] = {}  # (version, prefix) -> net
        self._asns: dict[int, Match] = {}
        self._countries: dict[str, Match] = {}
        self._allows: list[Match] = []
        for rule in rules:
            match = Match(rule.mode, "ip" if rule.target == "ip6" else rule.target, rule.value)
            if rule.mode == "allow":
                self._allows.append(match)
            if rule.target in ("ip", "ip6"):
                _keep(self._addresses, ip_address(rule.value), match)
            elif rule.target == "ip_range":
                network = ip_network(rule.value)
                by_net = self._ranges.setdefault((network.version, network.prefixlen), {})
                _keep(by_net, int(network.network_address), match)
            elif rule.target == "asn":
                _keep(self._asns, int(rule.value[2:]), match)
            else:
                _keep(self._countries, rule.value, match)
        # Longest prefix first, so the first range found is the most specific.
        self._prefixes = sorted(self._ranges, key=lambda key: -key[1])

    def __bool__(self) -> bool:
        return bool(self._addresses or self._ranges or self._asns or self._countries)

    def lookup(self, view: RequestView) -> Match | None:
        """The rule that decides for this client, or None."""
        found: list[Match] = []
        address = view.client_ip
        match = self._addresses.get(address)
        if match is not None:
            found.append(match)
        if self._prefixes:
            number, version = int(address), address.version
            bits = 32 if version == 4 else 128
            for key in self._prefixes:
                if key[0] != version:
                    continue
                net = number >> (bits - key[1]) << (bits - key[1])
                match = self._ranges[key].get(net)
                if match is not None:
                    found.append(match)
        if view.asnum is not None:
            match = self._asns.get(view.asnum)
            if match is not None:
                found.append(match)
        if view.country:
            match = self._countries.get(view.country)
            if match is not None:
                found.append(match)
        if not found:
            return None
        for match in found:
            if match.mode == "allow":
                return match
        return found[0]


def _keep(index: dict[K, Match], key: K, match: Match) -> None:
    """Two rules for the same target: allow wins, else the first one listed."""
    current = index.get(key)
    if current is None or (match.mode == "allow" and current.mode != "allow"):
        index[key] = match


class IpAccessFilter:
    """First security phase (spec §0): a block or challenge answers; an allow marks the
    verdict so later phases skip."""

    def __init__(
        self,
        lists: dict[str, IpAccessList],
        challengers: dict[str, Challenger],
        verdicts: Verdicts,
        events: SecurityEvents,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lists = lists
        self.challengers = challengers
        self.verdicts = verdicts
        self.events = events
        self.clock = clock

    def on_request(self, ex: Exchange) -> Response | None:
        access = self.lists.get(ex.zone.name if ex.zone is not None else "")
        if not access:
            return None
        verdict = self.verdicts.of(ex)
        match = access.lookup(verdict.view)
        if match is None:
            return None
        rule = f"{match.target}:{match.value}"
        if match.mode == "allow":
            verdict.skip |= COUNTRY_ALLOW_SKIPS if match.target == "country" else ALLOW_SKIPS
            return None
        if match.mode == "block":
            self.events.record(ex, "ip_access", rule, "block")
            verdict.mitigated = True
            ex.reason = f"ip access {rule}: block"
            return blocked(ex, 403, ACCESS_DENIED)
        answer = challenge_or_pass(self.challengers, ex, verdict.view, match.mode, self.clock())
        self.events.record(ex, "ip_access", rule, match.mode if answer else "challenge_passed")
        if answer is not None:
            verdict.mitigated = True
            ex.reason = f"ip access {rule}: {match.mode}"
        return answer
