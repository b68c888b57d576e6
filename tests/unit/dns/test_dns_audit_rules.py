"""Each audit rule, one small zone at a time (reference/cloudflare-spec.md §1.4)."""

from __future__ import annotations

from collections.abc import Callable

from originguard.dns.audit import Finding, Severity, audit
from originguard.dns.records import HistoryEntry, Record

ORIGIN = "203.0.113.10"
ORIGIN6 = "2001:db8:0:1::10"
EDGE = "192.0.2.1"
EDGE6 = "2001:db8:e::1"

Zone = Callable[[str], list[Record]]


def run(records: list[Record], proxied: tuple[str, ...] = (), **kwargs: object) -> list[Finding]:
    return audit(records, [ORIGIN, ORIGIN6], [EDGE, EDGE6], proxied, **kwargs)  # type: ignore[arg-type]


def rules(findings: list[Finding]) -> set[tuple[str, str, Severity]]:
    return {(f.rule, f.record.name, f.severity) for f in findings}


# --- A/AAAA -------------------------------------------------------------------------------------


def test_dns_only_a_record_on_the_origin_address_is_high(zone: Zone) -> None:
    findings = run(zone(f"direct IN A {ORIGIN}\n"))
    assert rules(findings) == {("origin-address-published", "direct.example.com", Severity.HIGH)}
    assert findings[0].address == ORIGIN
    assert "Proxy" in findings[0].fix


def test_dns_only_a_record_in_the_origin_slash_24_is_medium(zone: Zone) -> None:
    findings = run(zone("dev IN A 203.0.113.77\n"))
    assert rules(findings) == {("origin-subnet-published", "dev.example.com", Severity.MEDIUM)}
    assert "/24" in findings[0].why


def test_dns_only_aaaa_on_origin_is_high_and_in_its_slash_64_is_medium(zone: Zone) -> None:
    findings = run(zone(f"v6 IN AAAA {ORIGIN6}\nv6b IN AAAA 2001:db8:0:1::beef\n"))
    assert rules(findings) == {
        ("origin-address-published", "v6.example.com", Severity.HIGH),
        ("origin-subnet-published", "v6b.example.com", Severity.MEDIUM),
    }


def test_aaaa_records_reaching_the_ipv4_origin_are_high(zone: Zone) -> None:
    findings = run(zone(f"m IN AAAA ::ffff:{ORIGIN}\nn IN AAAA 64:ff9b::{ORIGIN}\n"))
    assert rules(findings) == {
        ("origin-address-published", "m.example.com", Severity.HIGH),
        ("origin-address-published", "n.example.com", Severity.HIGH),
    }
    assert findings[0].address.startswith(("::ffff:", "64:ff9b::"))


def test_records_outside_the_origin_network_and_on_the_edge_are_clean(zone: Zone) -> None:
    body = f"www IN A {EDGE}\nwww IN AAAA {EDGE6}\nblog IN A 198.51.100.7\nx IN A 203.0.114.10\n"
    assert run(zone(body), proxied=("www.example.com",)) == []


def test_origin_given_as_a_network_matches_every_address_in_it(zone: Zone) -> None:
    findings = audit(zone("a IN A 203.0.113.13\n"), ["203.0.113.8/29"], [EDGE], [])
    assert rules(findings) == {("origin-address-published", "a.example.com", Severity.HIGH)}


def test_wildcard_on_the_origin_explains_that_every_name_answers(zone: Zone) -> None:
    findings = run(zone(f"* IN A {ORIGIN}\n"))
    assert rules(findings) == {("origin-address-published", "*.example.com", Severity.HIGH)}
    assert "every name under example.com" in findings[0].why


def test_apex_a_record_on_the_origin_is_flagged_when_not_proxied(zone: Zone) -> None:
    findings = run(zone(f"@ IN A {ORIGIN}\n"))
    assert rules(findings) == {("origin-address-published", "example.com", Severity.HIGH)}


def test_dns_only_record_sharing_a_cloudflare_proxied_records_ip_is_flagged_without_origin_flag(
    zone: Zone,
) -> None:
    # Spec §1.4 (b): the proxied record's content is the origin; a DNS-only twin reveals it.
    body = (
        "www.example.com. 1 IN A 198.51.100.20 ; cf_tags=cf-proxied:true\n"
        "ftp.example.com. 1 IN A 198.51.100.20 ; cf_tags=cf-proxied:false\n"
    )
    findings = audit(zone(body), [], [EDGE], [])
    assert rules(findings) == {("origin-address-published", "ftp.example.com", Severity.HIGH)}


# --- proxied hostnames --------------------------------------------------------------------------


def test_proxied_hostname_answering_with_the_origin_is_high(zone: Zone) -> None:
    findings = run(zone(f"www IN A {ORIGIN}\n"), proxied=("www.example.com",))
    assert rules(findings) == {("proxied-name-bypasses-edge", "www.example.com", Severity.HIGH)}


def test_proxied_hostname_answering_elsewhere_is_medium(zone: Zone) -> None:
    findings = run(zone("www IN A 198.51.100.9\n"), proxied=("www.example.com",))
    assert rules(findings) == {("proxied-name-bypasses-edge", "www.example.com", Severity.MEDIUM)}


def test_proxied_hostname_reaching_the_origin_through_a_cname_chain_is_high(zone: Zone) -> None:
    body = f"www IN CNAME web\nweb IN CNAME host\nhost IN A {ORIGIN}\n"
    findings = run(zone(body), proxied=("www.example.com", "host.example.com"))
    www = [f for f in findings if f.record.name == "www.example.com"]
    assert [(f.rule, f.severity) for f in www] == [("proxied-name-bypasses-edge", Severity.HIGH)]
    assert "www.example.com -> web.example.com -> host.example.com" in www[0].why


def test_proxied_hostname_covered_by_an_edge_wildcard_is_clean(zone: Zone) -> None:
    assert run(zone(f"* IN A {EDGE}\n"), proxied=("shop.example.com",)) == []


def test_proxied_hostname_covered_by_an_origin_wildcard_is_high(zone: Zone) -> None:
    findings = run(zone(f"* IN A {ORIGIN}\n"), proxied=("shop.example.com", "*.example.com"))
    assert ("proxied-name-bypasses-edge", "shop.example.com", Severity.HIGH) in rules(findings)


def test_wildcard_does_not_answer_below_an_existing_name(zone: Zone) -> None:
    # RFC 4592 §3.3.1: sub.app.example.com's closest encloser is app, which has no wildcard.
    findings = run(zone(f"* IN A {ORIGIN}\napp IN A {EDGE}\n"), proxied=("sub.app.example.com",))
    assert ("proxied-name-unpublished", "sub.app.example.com", Severity.INFO) in rules(findings)


def test_proxied_apex_with_no_address_is_only_info(zone: Zone) -> None:
    findings = run(zone(""), proxied=("example.com",))
    assert rules(findings) == {("proxied-name-unpublished", "example.com", Severity.INFO)}


# --- mail ---------------------------------------------------------------------------------------


def test_mx_host_on_the_origin_is_a_mail_leak(zone: Zone) -> None:
    findings = run(zone(f"@ IN MX 10 mail\nmail IN A {ORIGIN}\n"))
    mx = [f for f in findings if f.rule == "mx-origin"]
    assert [(f.record.name, f.severity) for f in mx] == [("example.com", Severity.HIGH)]
    assert "bounces" in mx[0].why


def test_mx_host_outside_the_zone_is_resolved_through_the_injected_resolver(zone: Zone) -> None:
    def resolve(name: str) -> list[str]:
        return {"mx.hosting.example.net": [ORIGIN]}.get(name, [])

    findings = run(zone("@ IN MX 10 mx.hosting.example.net.\n"), resolve=resolve)
    assert rules(findings) == {("mx-origin", "example.com", Severity.HIGH)}


def test_mx_at_a_mail_provider_is_clean(zone: Zone) -> None:
    findings = run(
        zone("@ IN MX 10 mx.provider.example.\n"), resolve=lambda name: ["198.51.100.25"]
    )
    assert findings == []


# --- text, SRV and CNAME chains -------------------------------------------------------------------


def test_txt_record_containing_the_origin_address_is_flagged(zone: Zone) -> None:
    findings = run(zone(f'info IN TXT "backend={ORIGIN}:8080"\n'))
    assert rules(findings) == {("text-origin", "info.example.com", Severity.HIGH)}


def test_cname_to_a_provider_name_with_the_dashed_origin_address_is_flagged(zone: Zone) -> None:
    findings = run(zone("legacy IN CNAME ec2-203-0-113-10.compute.example.net.\n"))
    assert rules(findings) == {("text-origin", "legacy.example.com", Severity.HIGH)}


def test_numbers_that_only_look_like_addresses_are_not_flagged(zone: Zone) -> None:
    assert run(zone('v IN TXT "version 1.2.3.4.5 serial 2030113010"\n')) == []


def test_srv_target_on_the_origin_is_flagged(zone: Zone) -> None:
    findings = run(zone(f"_sip._tcp IN SRV 10 5 5060 sip\nsip IN A {EDGE}\nsip IN A {ORIGIN}\n"))
    assert ("srv-origin", "_sip._tcp.example.com", Severity.HIGH) in rules(findings)


def test_cname_chain_ending_at_the_origin_flags_each_name_on_it(zone: Zone) -> None:
    findings = run(zone(f"a IN CNAME b\nb IN CNAME c\nc IN A {ORIGIN}\n"))
    assert rules(findings) == {
        ("cname-origin", "a.example.com", Severity.HIGH),
        ("cname-origin", "b.example.com", Severity.HIGH),
        ("origin-address-published", "c.example.com", Severity.HIGH),
    }


def test_cname_chain_leaving_the_zone_is_resolved_through_the_injected_resolver(
    zone: Zone,
) -> None:
    findings = run(zone("cdn IN CNAME host.example.net.\n"), resolve=lambda name: [ORIGIN])
    assert rules(findings) == {("cname-origin", "cdn.example.com", Severity.HIGH)}


def test_cname_loop_is_a_low_finding_not_a_hang(zone: Zone) -> None:
    findings = run(zone("a IN CNAME b\nb IN CNAME a\n"))
    assert rules(findings) == {
        ("cname-loop", "a.example.com", Severity.LOW),
        ("cname-loop", "b.example.com", Severity.LOW),
    }


def test_overlong_cname_chain_is_reported(zone: Zone) -> None:
    body = "".join(f"h{i} IN CNAME h{i + 1}\n" for i in range(12)) + f"h12 IN A {EDGE}\n"
    findings = run(zone(body))
    assert ("cname-too-long", "h0.example.com", Severity.LOW) in rules(findings)


# --- history ------------------------------------------------------------------------------------


def test_origin_address_in_history_says_rotate_the_origin_ip(zone: Zone) -> None:
    past = [HistoryEntry("www.example.com", "A", ORIGIN, "2021-03-01", "2023-06-30")]
    findings = run(zone(f"www IN A {EDGE}\n"), proxied=("www.example.com",), history=past)
    assert rules(findings) == {("history-origin", "www.example.com", Severity.HIGH)}
    assert findings[0].fix.startswith("Rotate the origin IP")
    assert "2021-03-01 to 2023-06-30" in findings[0].why


def test_history_in_the_origin_network_is_medium_and_unrelated_history_is_clean(
    zone: Zone,
) -> None:
    past = [
        HistoryEntry("old.example.com", "A", "203.0.113.200"),
        HistoryEntry("older.example.com", "A", "198.51.100.1"),
        HistoryEntry("example.com", "TXT", f"v=spf1 ip4:{EDGE} -all"),
    ]
    findings = run(zone(""), history=past)
    assert rules(findings) == {("history-origin", "old.example.com", Severity.MEDIUM)}


def test_findings_come_most_severe_first(zone: Zone) -> None:
    body = f"dev IN A 203.0.113.77\nloop IN CNAME loop\ndirect IN A {ORIGIN}\n"
    severities = [f.severity for f in run(zone(body))]
    assert severities == [Severity.HIGH, Severity.MEDIUM, Severity.LOW]
