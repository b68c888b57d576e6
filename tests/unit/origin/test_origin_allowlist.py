"""Allowlist rules: every format lets the edge's IPv4 and IPv6 egress in and no one else."""

from __future__ import annotations

import ipaddress

import pytest

from originguard.origin.allowlist import CAVEAT, FORMATS, render

EDGE = [ipaddress.ip_network("192.0.2.0/28"), ipaddress.ip_network("2001:db8:e::/48")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_names_both_families_and_carries_the_caveat(fmt: str) -> None:
    text = render(fmt, EDGE, [443, 80, 443])
    assert "192.0.2.0/28" in text and "2001:db8:e::/48" in text
    assert "same provider" in text  # the caveat travels with the rules, as comments
    assert all(line.startswith("#") or "provider" not in line for line in text.splitlines())


def test_nftables_accepts_the_sets_then_drops_the_ports() -> None:
    text = render("nftables", EDGE, [80, 443])
    lines = [line.strip() for line in text.splitlines()]
    accept4 = lines.index("tcp dport { 80, 443 } ip saddr @edge4 accept")
    accept6 = lines.index("tcp dport { 80, 443 } ip6 saddr @edge6 accept")
    assert accept4 < accept6 < lines.index("tcp dport { 80, 443 } drop")


def test_nftables_leaves_out_an_empty_family() -> None:
    text = render("nftables", EDGE[:1], [443])
    assert "edge6" not in text


def test_iptables_uses_a_flushable_chain_for_both_tools() -> None:
    text = render("iptables", EDGE, [443])
    assert "iptables -A originguard-edge -s 192.0.2.0/28 -j ACCEPT" in text
    assert "ip6tables -A originguard-edge -s 2001:db8:e::/48 -j ACCEPT" in text
    assert text.count("-j DROP") == 2
    assert "--dports 443" in text


def test_ufw_allows_before_it_denies() -> None:
    lines = render("ufw", EDGE, [443]).splitlines()
    rules = [line for line in lines if line.startswith("ufw ")]
    assert rules[-1] == "ufw deny proto tcp from any to any port 443"
    assert rules[0] == "ufw allow proto tcp from 192.0.2.0/28 to any port 443"


def test_web_server_formats() -> None:
    assert render("nginx", EDGE, [443]).rstrip().endswith("deny all;")
    assert "Require ip 192.0.2.0/28 2001:db8:e::/48" in render("apache", EDGE, [443])
    assert "abort @not_originguard" in render("caddy", EDGE, [443])
    assert "reject unless from_originguard" in render("haproxy", EDGE, [443])


def test_caveat_says_to_pair_it_with_mtls_or_the_secret_header() -> None:
    assert "certs init" in CAVEAT and "origin_auth" in CAVEAT
