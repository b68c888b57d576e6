"""The origin-IP leak audit: which published records let a stranger find the origin.

A pure function of the records, the origin and edge addresses, the hostnames the edge proxies,
the history, and an injected resolver; it does no I/O of its own. The rules follow the
"Secure origin connections" advice (reference/cloudflare-spec.md §1.4):

==========================  ========  ====================================================
rule                        severity  what it finds
==========================  ========  ====================================================
origin-address-published    high      DNS-only A/AAAA on an origin address
origin-subnet-published     medium    DNS-only A/AAAA in an origin's /24 (IPv4) or /64 (IPv6)
proxied-name-bypasses-edge  high/med  a proxied hostname whose A/AAAA is not an edge address
proxied-name-unpublished    info      a proxied hostname with no A/AAAA at all
mx-origin                   high/med  an MX host resolving to an origin address (mail bounces)
spf-origin                  high/med  SPF ip4/ip6/a/mx (through include/redirect) on an origin
spf-lookup-limit            low       SPF needs more than 10 DNS look-ups (RFC 7208 §4.6.4)
spf-loop                    low       SPF include/redirect loop
text-origin                 high/med  an origin address written in TXT or other record data
cname-origin, srv-origin    high/med  a CNAME or SRV chain that ends at an origin address
cname-loop, cname-too-long  low       a CNAME chain that never ends
history-origin              high/med  an origin address in past records: rotate the origin IP
name-unresolved             info      a name asked for in live mode that does not resolve
==========================  ========  ====================================================
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from originguard.dns.lookup import Chain, Lookup, Query, Resolve, query_from
from originguard.dns.records import HistoryEntry, Record, normalise_name, target_of, txt_text

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SPF_LOOKUP_LIMIT = 10  # RFC 7208 §4.6.4
NEIGHBOUR_PREFIX = {4: 24, 6: 64}  # "same subnet" as the origin: what one provider block shares


class Severity(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


SEVERITY_ORDER = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2, Severity.INFO: 3}


@dataclass(frozen=True, slots=True)
class RecordRef:
    """The record a finding is about, as shown to the operator."""

    name: str
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    rule: str
    record: RecordRef
    why: str
    fix: str
    address: str | None = None  # the origin address that leaks, when there is one


RULES: dict[str, str] = {
    "origin-address-published": "A DNS-only A/AAAA record publishes an origin address",
    "origin-subnet-published": "A DNS-only A/AAAA record is in an origin's /24 or /64",
    "proxied-name-bypasses-edge": "A proxied hostname resolves to something other than the edge",
    "proxied-name-unpublished": "A proxied hostname has no A/AAAA record",
    "mx-origin": "A mail exchanger resolves to an origin address",
    "spf-origin": "An SPF record authorises an origin address",
    "spf-lookup-limit": "An SPF record needs more than 10 DNS look-ups",
    "spf-loop": "An SPF include/redirect chain loops",
    "text-origin": "Record data contains an origin address as text",
    "cname-origin": "A CNAME chain ends at an origin address",
    "srv-origin": "An SRV target resolves to an origin address",
    "cname-loop": "A CNAME chain loops",
    "cname-too-long": "A CNAME chain is longer than resolvers follow",
    "history-origin": "An origin address appears in historical DNS records",
    "name-unresolved": "A name given for live resolution did not resolve",
}


def audit(
    records: Iterable[Record],
    origin_addresses: Iterable[str],
    edge_addresses: Iterable[str],
    proxied_hostnames: Iterable[str],
    history: Iterable[HistoryEntry] = (),
    resolve: Resolve | None = None,
    query: Query | None = None,
) -> list[Finding]:
    """Every leak of an origin address in ``records`` and ``history``, most severe first.

    ``resolve`` (name -> addresses) and ``query`` ((name, type) -> values) answer for names the
    records do not hold (SPF includes, MX hosts elsewhere); without them the audit is offline.
    Origin addresses may be given as networks (``203.0.113.0/28``). Records flagged
    ``proxied=True`` by their source count as proxied, and their values as origin addresses.
    """
    records = list(records)
    fallback = query or (query_from(resolve) if resolve else None)
    state = _Audit(
        lookup=Lookup(records, fallback),
        origins=_origins(origin_addresses, records),
        edges=frozenset(_parse_ips(edge_addresses)),
        proxied=frozenset(normalise_name(h) for h in proxied_hostnames),
    )
    for record in records:
        state.check_record(record)
    for hostname in sorted(state.proxied):
        state.check_proxied_hostname(hostname, records)
    for entry in history:
        state.check_history(entry)
    return sorted(state.findings.values(), key=_sort_key)


def unresolved_findings(unresolved: Iterable[tuple[str, str]]) -> list[Finding]:
    """Info findings for names live mode could not resolve (so a typo is not a silent pass)."""
    return [
        Finding(
            Severity.INFO,
            "name-unresolved",
            RecordRef(name, "-", reason),
            f"{name} did not resolve ({reason}), so it was not audited.",
            "Check the spelling, or the --nameserver the audit asked.",
        )
        for name, reason in unresolved
    ]


def has_problems(findings: Sequence[Finding]) -> bool:
    """True when a finding needs action (anything above info): the CLI exits 1."""
    return any(f.severity is not Severity.INFO for f in findings)


def _sort_key(finding: Finding) -> tuple[int, str, str, str, str]:
    ref = finding.record
    return (SEVERITY_ORDER[finding.severity], ref.name, ref.type, finding.rule, ref.value)


# --- address matching ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Origin:
    network: IPNetwork  # a single address is a /32 or /128
    label: str
    source: str  # "given" | "proxied record <name>"

    @property
    def neighbourhood(self) -> IPNetwork:
        prefix = min(NEIGHBOUR_PREFIX[self.network.version], self.network.prefixlen)
        return self.network.supernet(new_prefix=prefix)


def _origins(given: Iterable[str], records: Sequence[Record]) -> tuple[_Origin, ...]:
    found: dict[IPNetwork, _Origin] = {}
    for text in given:
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            continue
        found.setdefault(network, _Origin(network, text.strip(), "given"))
    for record in records:
        # Cloudflare §1.4 (b): a proxied record's content is the origin; DNS-only records
        # pointing at the same IP reveal it.
        if record.proxied and record.type in ("A", "AAAA"):
            for ip in _parse_ips([record.value]):
                network = ipaddress.ip_network(ip)
                found.setdefault(network, _Origin(network, str(ip), f"proxied {record.name}"))
    return tuple(found.values())


def _parse_ips(texts: Iterable[str]) -> list[IPAddress]:
    ips = []
    for text in texts:
        try:
            ips.append(ipaddress.ip_address(text.strip()))
        except ValueError:
            continue
    return ips


@dataclass(frozen=True, slots=True)
class _Match:
    severity: Severity  # HIGH: the origin itself, MEDIUM: its /24 or /64
    origin: _Origin
    address: str


def _match_address(address: IPAddress, origins: Sequence[_Origin]) -> _Match | None:
    best: _Match | None = None
    shown = str(address)
    # ::ffff:a.b.c.d (IPv4-mapped) and 64:ff9b::a.b.c.d (NAT64) reach the IPv4 address a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    for origin in origins:
        if address.version != origin.network.version:
            continue
        if address in origin.network:
            return _Match(Severity.HIGH, origin, shown)
        if best is None and address in origin.neighbourhood:
            best = _Match(Severity.MEDIUM, origin, shown)
    return best


def _match_network(network: IPNetwork, origins: Sequence[_Origin]) -> _Match | None:
    """An SPF range that contains an origin (high) or overlaps its /24 or /64 (medium)."""
    best: _Match | None = None
    for origin in origins:
        if network.version != origin.network.version:
            continue
        if origin.network.subnet_of(network):  # type: ignore[arg-type]
            return _Match(Severity.HIGH, origin, str(origin.network.network_address))
        if best is None and network.overlaps(origin.neighbourhood):
            best = _Match(Severity.MEDIUM, origin, str(network))
    return best


_IPV4_TEXT = re.compile(r"(?<![\d.])(\d{1,3})([.-])(\d{1,3})\2(\d{1,3})\2(\d{1,3})(?!\d)(?!\2\d)")
_IPV6_TEXT = re.compile(r"(?<![0-9a-f:])[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![0-9a-f:])", re.I)


def addresses_in_text(text: str) -> list[IPAddress]:
    """IP addresses written in free text, including the dashed form providers put in host
    names (``ec2-203-0-113-10.compute.example``)."""
    found: list[IPAddress] = []
    for match in _IPV4_TEXT.finditer(text):
        octets = (match.group(1), match.group(3), match.group(4), match.group(5))
        if all(int(o) <= 255 for o in octets):
            found.append(ipaddress.IPv4Address(".".join(octets)))
    for match in _IPV6_TEXT.finditer(text):
        try:
            found.append(ipaddress.IPv6Address(match.group(0)))
        except ValueError:
            continue
    return found


# --- the rules ----------------------------------------------------------------------------------

_FIX_PROXY = "Proxy this hostname through the edge, or point it at a host that is not the origin."
_FIX_ROTATE = (
    "move the origin to a new address that was never published, in another network, and allow"
    " only the edge to reach it (see `originguard origin allowlist`)."
)


@dataclass
class _Audit:
    lookup: Lookup
    origins: tuple[_Origin, ...]
    edges: frozenset[IPAddress]
    proxied: frozenset[str]

    def __post_init__(self) -> None:
        self.findings: dict[tuple[str, str, str, str, str], Finding] = {}

    def add(self, finding: Finding) -> None:
        ref = finding.record
        key = (finding.rule, ref.name, ref.type, ref.value, finding.why)
        self.findings.setdefault(key, finding)

    def is_proxied(self, record: Record) -> bool:
        return bool(record.proxied) or record.name in self.proxied

    def match(self, text: str) -> _Match | None:
        ips = _parse_ips([text])
        if not ips or ips[0] in self.edges:
            return None
        return _match_address(ips[0], self.origins)

    # --- per record

    def check_record(self, record: Record) -> None:
        if record.type in ("A", "AAAA"):
            if not self.is_proxied(record):
                self.check_address_record(record)
        elif record.type == "MX":
            self.check_chain(record, "mx-origin")
        elif record.type == "SRV":
            self.check_chain(record, "srv-origin")
        elif record.type == "CNAME" and not self.is_proxied(record):
            self.check_chain(record, "cname-origin")
        if record.type in ("TXT", "SPF") and _is_spf(txt_text(record.value)):
            _Spf(self, record).evaluate()
        else:
            self.check_text(record)

    def check_address_record(self, record: Record) -> None:
        match = self.match(record.value)
        if match is None:
            return
        wildcard = record.name.startswith("*.")
        where = (
            f"every name under {record.name[2:]} without its own record"
            if wildcard
            else record.name
        )
        if match.severity is Severity.HIGH:
            rule, why = (
                "origin-address-published",
                (
                    f"{where} answers with the origin address {match.address} directly; anyone who"
                    " looks it up can reach the origin without the edge."
                ),
            )
        else:
            rule, why = (
                "origin-subnet-published",
                (
                    f"{where} answers with {match.address}, in the same "
                    f"/{match.origin.neighbourhood.prefixlen} as the origin {match.origin.label};"
                    " scanning that block finds the origin."
                ),
            )
        self.add(Finding(match.severity, rule, _ref(record), why, _FIX_PROXY, match.address))

    def check_chain(self, record: Record, rule: str) -> None:
        target = target_of(record)
        if target is None:
            return
        # A CNAME's chain starts at its owner; MX and SRV chains start at their target.
        chain = self.lookup.chain(record.name if record.type == "CNAME" else target)
        if self.report_broken_chain(record, chain):
            return
        role = {"mx-origin": "mail exchanger", "srv-origin": "SRV target"}.get(rule, "CNAME")
        for address in chain.addresses:
            match = self.match(address)
            if match is None:
                continue
            path = " -> ".join(_path(record, chain))
            if rule == "mx-origin":
                why = (
                    f"The {role} {target} resolves to {address}"
                    f"{' (the origin)' if match.severity is Severity.HIGH else ''}"
                    f"{'' if match.severity is Severity.HIGH else ', next to the origin'}."
                    " Mail sent to a non-existent address bounces back with the server's"
                    " Received headers, revealing the address."
                )
                fix = (
                    "Do not run mail on the web origin: use a separate mail host or a mail"
                    " provider, and publish only that in MX."
                )
            else:
                why = f"The chain {path} ends at {address}, which is " + (
                    "the origin." if match.severity is Severity.HIGH else "next to the origin."
                )
                fix = _FIX_PROXY
            self.add(Finding(match.severity, rule, _ref(record), why, fix, address))

    def report_broken_chain(self, record: Record, chain: Chain) -> bool:
        if chain.problem is None:
            return False
        rule = "cname-loop" if chain.problem == "loop" else "cname-too-long"
        path = " -> ".join(_path(record, chain))
        self.add(
            Finding(
                Severity.LOW,
                rule,
                _ref(record),
                f"The CNAME chain {path} {'loops' if rule == 'cname-loop' else 'never ends'};"
                " resolvers return SERVFAIL and the audit cannot see where it leads.",
                "Point the record at a name that has A/AAAA records.",
            )
        )
        return True

    def check_text(self, record: Record) -> None:
        texts = [record.name]
        if record.type not in ("A", "AAAA"):
            texts.append(txt_text(record.value) if record.type == "TXT" else record.value)
        for text in texts:
            for ip in addresses_in_text(text):
                if ip in self.edges:
                    continue
                match = _match_address(ip, self.origins)
                if match is None:
                    continue
                self.add(
                    Finding(
                        match.severity,
                        "text-origin",
                        _ref(record),
                        f"The {record.type} record for {record.name} contains {ip} as text"
                        f"{'' if match.severity is Severity.HIGH else ', next to the origin'};"
                        " public record data is read by scanners as readily as A records.",
                        "Remove the address from the record, or rotate the origin IP.",
                        str(ip),
                    )
                )

    def check_proxied_hostname(self, hostname: str, records: Sequence[Record]) -> None:
        chain = self.lookup.chain(hostname)
        ref = RecordRef(hostname, "A/AAAA", ", ".join(chain.addresses) or "-")
        if chain.problem is not None:
            self.report_broken_chain(Record(hostname, "CNAME", 0, chain.hops[1]), chain)
            return
        if not chain.addresses:
            self.add(
                Finding(
                    Severity.INFO,
                    "proxied-name-unpublished",
                    ref,
                    f"{hostname} is proxied by the edge but DNS has no address for it,"
                    " so visitors cannot reach it (nothing leaks).",
                    "Publish A/AAAA records with the edge addresses (`originguard dns export`).",
                )
            )
            return
        stray = [
            a
            for a in chain.addresses
            if not _parse_ips([a]) or _parse_ips([a])[0] not in self.edges
        ]
        if not stray:
            return
        matches = [m for m in (self.match(a) for a in stray) if m is not None]
        high = any(m.severity is Severity.HIGH for m in matches)
        via = f" (via {' -> '.join(chain.hops)})" if len(chain.hops) > 1 else ""
        why = f"{hostname} is proxied in the edge config, but DNS answers {', '.join(stray)}{via}"
        why += (
            ", the origin itself: the edge is bypassed and the origin address is public."
            if high
            else ", not an edge address: visitors bypass the edge and its protection."
        )
        self.add(
            Finding(
                Severity.HIGH if high else Severity.MEDIUM,
                "proxied-name-bypasses-edge",
                ref,
                why,
                "Answer this name with the edge addresses only (`originguard dns export`), then"
                " rotate the origin IP if it was ever published.",
                next((m.address for m in matches), None),
            )
        )

    def check_history(self, entry: HistoryEntry) -> None:
        if entry.type in ("A", "AAAA"):
            ips = _parse_ips([entry.value])
        else:
            ips = addresses_in_text(entry.value)
        for ip in ips:
            match = _match_address(ip, self.origins)
            if match is None or ip in self.edges:
                continue
            seen = " to ".join(s for s in (entry.first_seen, entry.last_seen) if s)
            exact = match.severity is Severity.HIGH
            why = (
                f"{entry.name} {entry.type} {entry.value} was public"
                f"{' (' + seen + ')' if seen else ''}; historical DNS datasets keep it, so "
                + (
                    "the origin address is known to anyone who looks."
                    if exact
                    else "the origin's network is known to anyone who looks."
                )
            )
            self.add(
                Finding(
                    match.severity,
                    "history-origin",
                    RecordRef(entry.name, entry.type, entry.value),
                    why,
                    "Rotate the origin IP: " + _FIX_ROTATE,
                    str(ip),
                )
            )


def _path(record: Record, chain: Chain) -> tuple[str, ...]:
    return chain.hops if chain.hops[:1] == (record.name,) else (record.name,) + chain.hops


def _ref(record: Record) -> RecordRef:
    return RecordRef(record.name, record.type, record.value)


# --- SPF (RFC 7208) -----------------------------------------------------------------------------


def _is_spf(text: str) -> bool:
    # RFC 7208 §4.5: "v=spf1" followed by a space or the end, case-insensitively.
    lowered = text.strip().lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


class _Spf:
    """One SPF policy walked like a receiver would, counting DNS-querying terms."""

    def __init__(self, state: _Audit, record: Record) -> None:
        self.state = state
        self.top = record
        self.lookups = 0
        self.over_limit = False

    def evaluate(self) -> None:
        self.walk(self.top.name, _ref(self.top), txt_text(self.top.value), (self.top.name,))

    def count(self, ref: RecordRef, term: str) -> bool:
        """Count one DNS look-up; False (and one finding) once the RFC 7208 limit is passed."""
        if self.over_limit:
            return False
        self.lookups += 1
        if self.lookups <= SPF_LOOKUP_LIMIT:
            return True
        self.over_limit = True
        self.state.add(
            Finding(
                Severity.LOW,
                "spf-lookup-limit",
                _ref(self.top),
                f"Evaluating the SPF policy of {self.top.name} needs more than {SPF_LOOKUP_LIMIT}"
                f" DNS look-ups (the 11th is {term!r} in {ref.name}); receivers return permerror"
                " (RFC 7208 §4.6.4) and the audit stopped there.",
                "Flatten includes into ip4:/ip6: ranges (never the origin's) or drop unused ones.",
            )
        )
        return False

    def walk(self, domain: str, ref: RecordRef, policy: str, stack: tuple[str, ...]) -> None:
        redirect: str | None = None
        terms = policy.split()[1:]
        has_all = any(t.lower().lstrip("+-~?") == "all" for t in terms)
        for term in terms:
            if self.over_limit:
                return
            name, _, arg = term.lstrip("+-~?").partition(":")
            name = name.lower()
            if "%{" in term:
                continue  # macros need a sender to expand (RFC 7208 §7); nothing to check
            if term.lower().startswith("redirect="):
                redirect = term.split("=", 1)[1]
            elif name in ("ip4", "ip6"):
                self.check_range(ref, term, arg)
            elif name.split("/")[0] in ("a", "mx"):
                if self.count(ref, term):
                    self.check_hosts(domain, ref, term)
            elif name == "include":
                if self.count(ref, term):
                    self.follow(ref, term, arg, stack)
            elif name in ("ptr", "exists"):
                self.count(ref, term)
        # RFC 7208 §6.1: redirect is ignored when the record has an "all" mechanism.
        if redirect and not has_all and not self.over_limit and self.count(ref, "redirect"):
            self.follow(ref, f"redirect={redirect}", redirect, stack)

    def follow(self, ref: RecordRef, term: str, target: str, stack: tuple[str, ...]) -> None:
        domain = normalise_name(target)
        if domain in stack:
            self.state.add(
                Finding(
                    Severity.LOW,
                    "spf-loop",
                    ref,
                    f"SPF {term} in {ref.name} leads back to {domain}"
                    f" ({' -> '.join(stack + (domain,))}); receivers return permerror.",
                    "Remove the include/redirect that closes the loop.",
                )
            )
            return
        for text in self.state.lookup.query(domain, "TXT"):
            policy = txt_text(text)
            if _is_spf(policy):
                self.walk(domain, RecordRef(domain, "TXT", text), policy, stack + (domain,))
                return

    def check_range(self, ref: RecordRef, term: str, arg: str) -> None:
        try:
            network = ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return
        match = _match_network(network, self.state.origins)
        if match is not None:
            self.report(ref, term, match, f"{term} covers {match.address}")

    def check_hosts(self, domain: str, ref: RecordRef, term: str) -> None:
        # a[:domain][/cidr4][//cidr6] and mx[:domain][/cidr4][//cidr6] (RFC 7208 §5.3, §5.4)
        body = term.lstrip("+-~?")
        spec, _, cidr6 = body.partition("//")
        spec, _, cidr4 = spec.partition("/")
        mechanism, _, target = spec.partition(":")
        target = normalise_name(target) if target else domain
        hosts = [target]
        if mechanism.lower() == "mx":
            mx_values = self.state.lookup.query(target, "MX")
            hosts = [normalise_name(v.split()[-1]) for v in mx_values if v.split()]
        for host in hosts:
            for address in self.state.lookup.addresses(host):
                ips = _parse_ips([address])
                if not ips or ips[0] in self.state.edges:
                    continue
                prefix = cidr4 if ips[0].version == 4 else cidr6
                network = ipaddress.ip_network(
                    f"{ips[0]}/{prefix}" if prefix.isdigit() else str(ips[0]), strict=False
                )
                match = _match_network(network, self.state.origins)
                if match is not None:
                    self.report(ref, term, match, f"{term} resolves through {host} to {address}")

    def report(self, ref: RecordRef, term: str, match: _Match, how: str) -> None:
        where = "the origin" if match.severity is Severity.HIGH else "next to the origin"
        self.state.add(
            Finding(
                match.severity,
                "spf-origin",
                ref,
                f"The SPF policy of {ref.name}: {how}, {where} ({match.origin.label});"
                " SPF records are public and are read to find mail and web servers.",
                "Send mail from a host other than the origin and list only that host in SPF.",
                match.address,
            )
        )
