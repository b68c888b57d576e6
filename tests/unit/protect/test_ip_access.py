"""IP Access rules (spec §7.4): targets, allowed range sizes, allow beats block, skips."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from ipaddress import ip_address

import pytest
from exchanges import Clock, build, event_count, guard, make_exchange, security_yaml

from originguard.config import ConfigError, loads
from originguard.protect.ip_access import IpAccessList
from originguard.protect.settings import IpAccessRule
from originguard.protect.verdict import request_view


def rules(*specs: tuple[str, str, str]) -> IpAccessList:
    return IpAccessList([IpAccessRule(target=t, value=v, mode=m) for t, v, m in specs])  # type: ignore[arg-type]


def lookup(access: IpAccessList, ip: str, country: str | None = None, asnum: int | None = None):  # type: ignore[no-untyped-def]
    view = replace(request_view(make_exchange("/", client_ip=ip), None), country=country)
    return access.lookup(replace(view, asnum=asnum, client_ip=ip_address(ip)))


def test_address_range_asn_and_country_targets_match() -> None:
    access = rules(
        ("ip", "192.0.2.1", "block"),
        ("ip_range", "198.51.100.0/24", "js_challenge"),
        ("ip6", "2001:db8::1", "block"),
        ("ip_range", "2001:db8:aa::/48", "challenge"),
        ("asn", "AS64500", "block"),
        ("country", "XX", "challenge"),
    )
    assert lookup(access, "192.0.2.1").mode == "block"
    assert lookup(access, "198.51.100.77").mode == "js_challenge"
    assert lookup(access, "2001:db8::1").mode == "block"
    assert lookup(access, "2001:db8:aa:1::5").mode == "challenge"
    assert lookup(access, "203.0.113.1", asnum=64500).mode == "block"
    assert lookup(access, "203.0.113.1", country="XX").mode == "challenge"
    assert lookup(access, "203.0.113.1") is None


def test_allow_beats_block_whatever_the_order() -> None:
    access = rules(("ip_range", "198.51.100.0/24", "block"), ("ip", "198.51.100.9", "allow"))
    assert lookup(access, "198.51.100.9").mode == "allow"
    access = rules(("ip", "198.51.100.9", "block"), ("country", "GB", "allow"))
    assert lookup(access, "198.51.100.9", country="GB").mode == "allow"


def test_the_most_specific_target_decides_between_block_and_challenge() -> None:
    access = rules(
        ("country", "GB", "block"),
        ("ip_range", "198.51.0.0/16", "block"),
        ("ip_range", "198.51.100.0/24", "js_challenge"),
    )
    assert lookup(access, "198.51.100.9", country="GB").mode == "js_challenge"
    assert lookup(access, "198.51.7.9", country="GB").target == "ip_range"


@pytest.mark.parametrize(
    ("target", "value"),
    [
        ("ip_range", "10.0.0.0/8"),
        ("ip_range", "10.1.2.0/23"),
        ("ip_range", "2001:db8::/56"),
        ("ip_range", "10.1.2.3/24"),  # host bits set
        ("ip", "2001:db8::1"),
        ("ip6", "192.0.2.1"),
        ("asn", "ASX"),
        ("country", "gb"),
    ],
)
def test_values_outside_the_spec_are_refused_at_load(target: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(
            security_yaml(f"ip_access:\n  - {{target: {target}, value: '{value}', mode: block}}\n")
        )
    assert "zones.0.security.ip_access.0.value" in str(caught.value)


def test_asn_is_normalised() -> None:
    assert IpAccessRule(target="asn", value="as13335", mode="block").value == "AS13335"


SECURITY = """
ip_access:
  - {target: ip_range, value: 198.51.100.0/24, mode: block}
  - {target: ip, value: 198.51.100.5, mode: allow}
  - {target: ip, value: 192.0.2.1, mode: challenge}
rules:
  - {name: everything, expression: 'http.host eq "site.test"', action: block}
under_attack: true
"""


def test_blocked_addresses_get_403_and_an_event() -> None:
    security, metrics = build(SECURITY, Clock())
    answer = asyncio.run(guard(security, make_exchange("/", client_ip="198.51.100.4")))
    assert answer.status == 403 and b"1020" in answer.body
    assert event_count(metrics, "ip_access", "ip_range:198.51.100.0/24", "block") == 1


def test_an_allowed_address_skips_custom_rules_and_under_attack_and_is_not_logged() -> None:
    security, metrics = build(SECURITY, Clock())
    assert asyncio.run(guard(security, make_exchange("/", client_ip="198.51.100.5"))) is None
    assert event_count(metrics, "ip_access", "ip:198.51.100.5", "allow") == 0


def test_a_challenged_address_gets_the_interactive_page() -> None:
    security, _ = build(SECURITY, Clock())
    answer = asyncio.run(guard(security, make_exchange("/", client_ip="192.0.2.1")))
    assert answer.status == 403 and dict(answer.headers)[b"og-mitigated"] == b"challenge"
    assert b"I am human" in answer.body
