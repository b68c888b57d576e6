"""The public zone: proxied names answer with the edge, and no origin address survives on them."""

from __future__ import annotations

from collections.abc import Callable

import dns.zone
import pytest

from originguard.dns.audit import audit
from originguard.dns.export import export_zone
from originguard.dns.records import Record, load_zone_text

ORIGIN = "203.0.113.10"
ORIGIN6 = "2001:db8:0:1::10"
EDGE = "192.0.2.1"
EDGE6 = "2001:db8:e::1"

Zone = Callable[[str], list[Record]]


def export(records: list[Record], proxied: tuple[str, ...]) -> tuple[str, list[Record]]:
    """Export, check the text loads as a zone, and return it with its records."""
    text = export_zone(records, proxied, [EDGE, EDGE6], "example.com")
    dns.zone.from_text(text, relativize=False)  # a valid zone with SOA and NS
    return text, load_zone_text(text)[1]


def at(records: list[Record], name: str) -> set[tuple[str, int, str]]:
    return {(r.type, r.ttl, r.value) for r in records if r.name == name}


def test_proxied_name_is_answered_with_edge_addresses_at_ttl_300(zone: Zone) -> None:
    text, records = export(
        zone(f"www IN A {ORIGIN}\nwww IN AAAA {ORIGIN6}\n"), ("www.example.com",)
    )
    assert at(records, "www.example.com") == {("A", 300, EDGE), ("AAAA", 300, EDGE6)}
    assert ORIGIN not in text and ORIGIN6 not in text


def test_dns_only_records_are_kept_as_they_are(zone: Zone) -> None:
    body = (
        "@ IN MX 10 mx.provider.example.\n"
        '@ IN TXT "v=spf1 include:_spf.provider.example -all"\n'
        "ftp 7200 IN A 198.51.100.7\n"
        "_sip._tcp IN SRV 10 5 5060 sip.provider.example.\n"
    )
    original = zone(body)
    _, records = export(original, ())
    assert set(records) == {r for r in original}


def test_apex_cname_is_flattened_to_the_edge(zone: Zone) -> None:
    _, records = export(zone("@ IN CNAME app.hosting.example.\n"), ())
    assert at(records, "example.com") >= {("A", 300, EDGE), ("AAAA", 300, EDGE6)}
    assert not [r for r in records if r.type == "CNAME"]


def test_cname_chain_on_a_proxied_name_is_flattened(zone: Zone) -> None:
    body = f"www IN CNAME web\nweb IN A {ORIGIN}\n"
    text, records = export(zone(body), ("www.example.com", "web.example.com"))
    assert at(records, "www.example.com") == {("A", 300, EDGE), ("AAAA", 300, EDGE6)}
    assert ORIGIN not in text


def test_dns_only_cname_to_a_proxied_name_is_kept(zone: Zone) -> None:
    _, records = export(zone(f"shop IN CNAME www\nwww IN A {ORIGIN}\n"), ("www.example.com",))
    assert at(records, "shop.example.com") == {("CNAME", 3600, "www.example.com.")}


def test_any_proxied_record_makes_the_whole_name_proxied(zone: Zone) -> None:
    # Spec §1.1: if any A/AAAA on a name is proxied, all of them are.
    body = (
        f"www.example.com. 1 IN A {ORIGIN} ; cf_tags=cf-proxied:true\n"
        "www.example.com. 1 IN A 203.0.113.11 ; cf_tags=cf-proxied:false\n"
    )
    text, records = export(zone(body), ())
    assert at(records, "www.example.com") == {("A", 300, EDGE), ("AAAA", 300, EDGE6)}
    assert "203.0.113.1" not in text


def test_address_hints_and_text_with_the_origin_are_dropped_from_proxied_names(
    zone: Zone,
) -> None:
    body = (
        f"www IN A {ORIGIN}\n"
        f"www IN HTTPS 1 . alpn=h2 ipv4hint={ORIGIN}\n"
        f'www IN TXT "served-by={ORIGIN}"\n'
        'www IN TXT "google-site-verification=abc"\n'
    )
    text, records = export(zone(body), ("www.example.com",))
    assert ORIGIN not in text
    assert ("TXT", 3600, '"google-site-verification=abc"') in at(records, "www.example.com")


def test_proxied_wildcard_and_names_without_records_get_edge_addresses(zone: Zone) -> None:
    _, records = export(zone(f"* IN A {ORIGIN}\n"), ("*.example.com", "new.example.com"))
    assert at(records, "*.example.com") == {("A", 300, EDGE), ("AAAA", 300, EDGE6)}
    assert at(records, "new.example.com") == {("A", 300, EDGE), ("AAAA", 300, EDGE6)}


def test_proxied_names_outside_the_zone_are_ignored(zone: Zone) -> None:
    _, records = export(zone(""), ("www.other.example",))
    assert not [r for r in records if "other" in r.name]


def test_exported_zone_audits_clean_for_proxied_names(zone: Zone) -> None:
    body = f"@ IN A {ORIGIN}\nwww IN CNAME @\napi IN A {ORIGIN}\n"
    proxied = ("example.com", "www.example.com", "api.example.com")
    assert audit(zone(body), [ORIGIN], [EDGE, EDGE6], proxied) != []
    _, records = export(zone(body), proxied)
    assert audit(records, [ORIGIN], [EDGE, EDGE6], proxied) == []


def test_proxied_names_without_edge_addresses_is_an_error(zone: Zone) -> None:
    with pytest.raises(ValueError, match="edge address"):
        export_zone(zone(f"www IN A {ORIGIN}\n"), ["www.example.com"], [], "example.com")
