"""The public zone: what DNS should publish once the edge proxies the zone's web hostnames.

Proxy semantics follow reference/cloudflare-spec.md §1.1: a proxied name is answered with the
edge addresses at TTL 300; if any A/AAAA/CNAME on a name is proxied, all of them are; a CNAME
on a proxied name (or at the apex, where RFC 1034 §3.6.2 allows no CNAME) is flattened to the
edge addresses; DNS-only records are published as they are. §11: answers for proxied names
must never contain origin addresses, so their HTTPS/SVCB records (whose address hints may name
the origin) are dropped, and so is any other record on a proxied name that writes one of the
replaced addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from originguard.dns.audit import addresses_in_text
from originguard.dns.records import Record, normalise_name

PROXIED_TTL = 300  # Cloudflare "Auto" TTL for proxied records (spec §1.1)
_REPLACED_TYPES = frozenset({"A", "AAAA", "CNAME", "HTTPS", "SVCB"})
_TYPE_ORDER = {"SOA": 0, "NS": 1}


def export_zone(
    records: Iterable[Record],
    proxied_hostnames: Iterable[str],
    edge_addresses: Iterable[str],
    origin: str,
) -> str:
    """Render the public zone for ``origin`` as a BIND zone file.

    Raises ValueError when a name must be proxied but no edge address is given.
    """
    apex = normalise_name(origin)
    records = [r for r in records if _is_in(r.name, apex)]
    edges = [ipaddress.ip_address(a.strip()) for a in edge_addresses]
    proxied = _proxied_names(records, proxied_hostnames, apex)
    if proxied and not edges:
        raise ValueError("proxied hostnames need at least one edge address (--edge-ip)")

    replaced = {
        ip
        for r in records
        if r.name in proxied and r.type in ("A", "AAAA")
        for ip in addresses_in_text(r.value)
    }
    kept: list[Record] = []
    dropped: list[str] = []
    for record in records:
        if record.name in proxied and record.type in _REPLACED_TYPES:
            continue
        if record.name in proxied and replaced & set(addresses_in_text(record.value)):
            dropped.append(f"{record.name} {record.type}: contained an origin address")
            continue
        kept.append(record)
    for name in sorted(proxied):
        for ip in edges:
            kind = "A" if ip.version == 4 else "AAAA"
            kept.append(Record(name, kind, PROXIED_TTL, str(ip), proxied=True))

    lines = [
        f"; public zone for {apex}, written by originguard dns export",
        f"; {len(proxied)} proxied name(s) answered with the edge addresses (TTL {PROXIED_TTL})",
    ]
    lines += [f"; dropped {reason}" for reason in dropped]
    if not any(r.type == "SOA" for r in kept):
        lines.append("; no SOA in the input: add one before loading this into a server")
    lines.append(f"$ORIGIN {_fqdn(apex)}")
    for record in sorted(kept, key=lambda r: _order(r, apex)):
        line = f"{_fqdn(record.name)}\t{record.ttl}\tIN\t{record.type}\t{record.value}"
        lines.append(line + ("\t; proxied" if record.proxied and record.name in proxied else ""))
    return "\n".join(lines) + "\n"


def _proxied_names(records: list[Record], hostnames: Iterable[str], apex: str) -> set[str]:
    names = {normalise_name(h) for h in hostnames}
    names = {n for n in names if _is_in(n, apex)}
    for record in records:
        # Spec §1.1: if any A/AAAA (or CNAME) on a name is proxied, all of them are.
        if record.proxied and record.type in ("A", "AAAA", "CNAME"):
            names.add(record.name)
        # A CNAME at the apex cannot coexist with SOA/NS: flatten it to the edge.
        if record.type == "CNAME" and record.name == apex:
            names.add(apex)
    return names


def _is_in(name: str, apex: str) -> bool:
    return apex == "." or name == apex or name.endswith("." + apex)


def _fqdn(name: str) -> str:
    return "." if name == "." else name + "."


def _order(record: Record, apex: str) -> tuple[int, int, tuple[str, ...], str, str]:
    labels = tuple(reversed(record.name.split(".")))
    return (
        0 if record.name == apex else 1,
        _TYPE_ORDER.get(record.type, 2),
        labels,
        record.type,
        record.value,
    )
