"""SPF (RFC 7208) as the audit walks it: mechanisms, includes, the 10-look-up bound, loops."""

from __future__ import annotations

from collections.abc import Callable

from originguard.dns.audit import SPF_LOOKUP_LIMIT, Finding, Severity, audit
from originguard.dns.records import Record

ORIGIN = "203.0.113.10"
ORIGIN6 = "2001:db8:0:1::10"
EDGE = "192.0.2.1"

Zone = Callable[[str], list[Record]]


class Elsewhere:
    """Other people's DNS, as a dict; counts the questions asked."""

    def __init__(self, answers: dict[tuple[str, str], list[str]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    def __call__(self, name: str, rtype: str) -> list[str]:
        self.asked.append((name, rtype))
        return self.answers.get((name, rtype), [])


def spf(zone: Zone, policy: str, query: Elsewhere | None = None) -> list[Finding]:
    records = zone(f'@ IN TXT "{policy}"\n')
    return audit(records, [ORIGIN, ORIGIN6], [EDGE], [], query=query)


def test_ip4_range_containing_the_origin_is_high(zone: Zone) -> None:
    findings = spf(zone, "v=spf1 ip4:203.0.113.0/25 -all")
    assert [(f.rule, f.severity, f.address) for f in findings] == [
        ("spf-origin", Severity.HIGH, ORIGIN)
    ]
    assert "ip4:203.0.113.0/25" in findings[0].why


def test_ip4_neighbour_of_the_origin_is_medium(zone: Zone) -> None:
    findings = spf(zone, "v=spf1 ip4:203.0.113.25 -all")
    assert [(f.rule, f.severity) for f in findings] == [("spf-origin", Severity.MEDIUM)]


def test_ip6_range_containing_the_origin_is_high(zone: Zone) -> None:
    findings = spf(zone, "v=spf1 ip6:2001:db8:0:1::/64 ~all")
    assert [(f.rule, f.severity) for f in findings] == [("spf-origin", Severity.HIGH)]


def test_ranges_away_from_the_origin_and_edge_addresses_are_clean(zone: Zone) -> None:
    assert spf(zone, f"v=spf1 ip4:198.51.100.0/24 ip4:{EDGE} ip6:2001:db8:ff::/48 -all") == []


def test_a_mechanism_is_resolved_in_the_zone(zone: Zone) -> None:
    records = zone(
        f'@ IN TXT "v=spf1 a:web.example.com -all"\nweb IN A {EDGE}\nweb IN A {ORIGIN}\n'
    )
    findings = audit(records, [ORIGIN], [EDGE], ["web.example.com"])
    spf_findings = [f for f in findings if f.rule == "spf-origin"]
    assert [(f.severity, f.address) for f in spf_findings] == [(Severity.HIGH, ORIGIN)]
    assert "a:web.example.com resolves through web.example.com" in spf_findings[0].why


def test_bare_a_and_mx_mechanisms_use_the_records_own_domain(zone: Zone) -> None:
    body = f'@ IN TXT "v=spf1 a mx -all"\n@ IN A {ORIGIN}\n@ IN MX 10 mail\nmail IN A {ORIGIN}\n'
    findings = audit(zone(body), [ORIGIN], [EDGE], [])
    terms = sorted(f.why.split(": ")[1].split(" ")[0] for f in findings if f.rule == "spf-origin")
    assert terms == ["a", "mx"]


def test_a_mechanism_with_a_cidr_length_covers_the_origin_network(zone: Zone) -> None:
    # a/24: every address in the /24 of web's address may send (RFC 7208 §5.3).
    records = zone('@ IN TXT "v=spf1 a:web.example.com/24 -all"\nweb IN A 203.0.113.200\n')
    findings = [f for f in audit(records, [ORIGIN], [EDGE], []) if f.rule == "spf-origin"]
    assert [(f.severity, f.address) for f in findings] == [(Severity.HIGH, ORIGIN)]


def test_include_chain_outside_the_zone_is_followed(zone: Zone) -> None:
    elsewhere = Elsewhere(
        {
            ("_spf.mailer.example", "TXT"): ['"v=spf1 include:_net.mailer.example -all"'],
            ("_net.mailer.example", "TXT"): ['"v=spf1 ip4:203.0.113.0/24 -all"'],
        }
    )
    findings = spf(zone, "v=spf1 include:_spf.mailer.example -all", elsewhere)
    assert [(f.rule, f.record.name) for f in findings] == [("spf-origin", "_net.mailer.example")]


def test_redirect_is_followed_and_ignored_when_the_record_has_all(zone: Zone) -> None:
    elsewhere = Elsewhere({("policy.example", "TXT"): [f'"v=spf1 ip4:{ORIGIN} -all"']})
    assert [f.rule for f in spf(zone, "v=spf1 redirect=policy.example", elsewhere)] == [
        "spf-origin"
    ]
    # RFC 7208 §6.1: "redirect" is ignored when there is an "all" mechanism.
    assert spf(zone, "v=spf1 -all redirect=policy.example", Elsewhere({})) == []


def test_more_than_ten_lookups_stops_with_a_finding_at_the_eleventh(zone: Zone) -> None:
    chain = {
        (f"l{i}.example.net", "TXT"): [f'"v=spf1 include:l{i + 1}.example.net -all"']
        for i in range(1, 30)
    }
    chain[("l12.example.net", "TXT")] = [f'"v=spf1 ip4:{ORIGIN} -all"']  # past the bound
    elsewhere = Elsewhere(chain)
    findings = spf(zone, "v=spf1 include:l1.example.net -all", elsewhere)
    assert [(f.rule, f.severity, f.record.name) for f in findings] == [
        ("spf-lookup-limit", Severity.LOW, "example.com")
    ]
    assert len(elsewhere.asked) == SPF_LOOKUP_LIMIT  # RFC 7208 §4.6.4: no 11th look-up


def test_ten_lookups_are_allowed(zone: Zone) -> None:
    chain = {
        (f"l{i}.example.net", "TXT"): [f'"v=spf1 include:l{i + 1}.example.net -all"']
        for i in range(1, 10)
    }
    chain[("l10.example.net", "TXT")] = [f'"v=spf1 ip4:{ORIGIN} -all"']
    findings = spf(zone, "v=spf1 include:l1.example.net -all", Elsewhere(chain))
    assert [f.rule for f in findings] == ["spf-origin"]


def test_include_loop_is_reported_once_and_terminates(zone: Zone) -> None:
    elsewhere = Elsewhere(
        {
            ("a.example.net", "TXT"): ['"v=spf1 include:b.example.net -all"'],
            ("b.example.net", "TXT"): ['"v=spf1 include:a.example.net -all"'],
        }
    )
    findings = spf(zone, "v=spf1 include:a.example.net -all", elsewhere)
    assert [(f.rule, f.record.name) for f in findings] == [("spf-loop", "b.example.net")]
    assert "a.example.net -> b.example.net -> a.example.net" in findings[0].why


def test_macros_and_unknown_terms_are_skipped_not_crashed_on(zone: Zone) -> None:
    assert spf(zone, "v=spf1 exists:%{i}.spf.example.net ip4:not-an-ip ?all") == []


def test_records_that_are_not_spf_are_read_as_plain_text(zone: Zone) -> None:
    findings = spf(zone, "v=spf10 ip4:203.0.113.0/24")
    assert [(f.rule, f.severity) for f in findings] == [("text-origin", Severity.MEDIUM)]
