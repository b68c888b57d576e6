"""The DNS record model the audit and the export share, and the three ways to load it.

Every source (a BIND zone file, live resolution of a list of names, a history file of past
records) ends up as plain values: names are absolute, lower-case and written without the
trailing dot (``www.example.com``, ``*.example.com``); record data is dnspython's presentation
format with absolute names (``10 mail.example.com.``, ``"v=spf1 ip4:192.0.2.1 -all"``).

Loading fails with :class:`DnsInputError`, whose message names the file and line, so the CLI can
print it and exit 2 instead of showing a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.tokenizer
import dns.zone
import dns.zonefile

LIVE_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "NS")
MAX_CNAME_HOPS = 8  # resolvers give up on longer chains; so do we
HISTORY_FIELDS = ("name", "type", "value", "first_seen", "last_seen")


class DnsInputError(Exception):
    """A zone file, history file, name or nameserver that cannot be used (message has file:line)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record as published, with its proxy status when the source says it."""

    name: str
    type: str
    ttl: int
    value: str
    proxied: bool | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A record seen in the past (from a passive-DNS export or our own snapshots)."""

    name: str
    type: str
    value: str
    first_seen: str = ""
    last_seen: str = ""


@dataclass(frozen=True, slots=True)
class Resolution:
    """What live resolution found, and the names it could not resolve (with the reason)."""

    records: tuple[Record, ...]
    unresolved: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def normalise_name(name: str) -> str:
    """``WWW.Example.COM.`` -> ``www.example.com``; the root stays ``.``."""
    text = name.strip().lower()
    return text.rstrip(".") or "."


def txt_text(value: str) -> str:
    """The strings of a TXT/SPF record's presentation value, joined as RFC 7208 §3.3 joins them."""
    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, value)
    except dns.exception.DNSException:
        return value.strip('"')
    strings: Sequence[bytes] = getattr(rdata, "strings", ())
    return "".join(s.decode("utf-8", "replace") for s in strings)


def target_of(record: Record) -> str | None:
    """The host name a CNAME, MX, SRV or NS record points at (normalised), else None."""
    parts = record.value.split()
    if record.type in ("CNAME", "NS", "DNAME") and parts:
        return normalise_name(parts[-1])
    if record.type == "MX" and len(parts) == 2:
        return normalise_name(parts[1])
    if record.type == "SRV" and len(parts) == 4:
        target = normalise_name(parts[3])
        return None if target == "." else target  # RFC 2782: "." means "no service"
    return None


# --- zone files ---------------------------------------------------------------------------------

# Cloudflare's BIND export marks proxied records with a comment: `... ; cf_tags=cf-proxied:true`.
_PROXIED_TAG = re.compile(r";.*cf-proxied:(true|false)", re.IGNORECASE)


def load_zone_file(path: str | Path, origin: str | None = None) -> tuple[str, list[Record]]:
    """Parse a BIND zone file; return its origin (normalised) and its records.

    Relative names, ``$ORIGIN``, ``$TTL``, ``@`` and wildcards are handled by dnspython. A zone
    without NS records at the apex is accepted: an audit should look at broken zones too.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DnsInputError(f"{path}: cannot read zone file: {exc}") from exc
    return load_zone_text(text, origin=origin, filename=str(path))


def load_zone_text(
    text: str, origin: str | None = None, filename: str = "<zone>"
) -> tuple[str, list[Record]]:
    """Like :func:`load_zone_file`, from a string."""
    _check_generate(text, filename)
    try:
        zone_origin = dns.name.from_text(origin) if origin else None
        try:
            zone = dns.zone.from_text(
                text, origin=zone_origin, relativize=False, filename=filename, check_origin=False
            )
            found_origin = zone.origin
            rdatas = list(zone.iterate_rdatas())
        except dns.zonefile.CNAMEAndOtherData:
            found_origin, rdatas = _read_allowing_cname_and_other_data(text, zone_origin, filename)
    except dns.exception.DNSException as exc:
        # dnspython's syntax errors already read "file:line: message".
        message = str(exc)
        if not message.startswith(filename):
            message = f"{filename}: {message}"
        if isinstance(exc, dns.zone.UnknownOrigin):
            message += " (the file has no $ORIGIN: give --zone-name, e.g. example.com)"
        raise DnsInputError(message) from exc
    tags = _proxied_tags(text, found_origin)
    records: list[Record] = []
    for name, ttl, rdata in rdatas:
        rtype = dns.rdatatype.to_text(rdata.rdtype)
        value = rdata.to_text()
        owner = normalise_name(name.to_text())
        records.append(Record(owner, rtype, ttl, value, tags.get((owner, rtype, value))))
    return normalise_name(found_origin.to_text() if found_origin else "."), records


_GENERATE = re.compile(r"^\$GENERATE[ \t]+([0-9]+)-([0-9]+)(?:/([0-9]+))?", re.I | re.M)
MAX_GENERATED = 65_536  # records all $GENERATE lines of one zone may expand to


def _check_generate(text: str, filename: str) -> None:
    """Refuse a zone whose $GENERATE ranges would expand past MAX_GENERATED records (dnspython
    expands them all in memory: one line could ask for billions)."""
    total = 0
    for match in _GENERATE.finditer(text):
        numbers = [match.group(1), match.group(2), match.group(3) or "1"]
        if max(len(n) for n in numbers) > 12:
            total = MAX_GENERATED + 1
        else:
            start, stop, step = (int(n) for n in numbers)
            total += max(0, (stop - start) // max(step, 1) + 1)
        if total > MAX_GENERATED:
            line = text.count("\n", 0, match.start()) + 1
            raise DnsInputError(
                f"{filename}:{line}: $GENERATE expands past {MAX_GENERATED} records in all"
            )


class _AnyDataTransaction(dns.zonefile.RRsetsReaderTransaction):
    """Accepts a CNAME beside other data (RFC 1034 §3.6.2 forbids it): provider exports carry
    apex CNAMEs they flatten when answering, and the audit must read such files, not refuse them.
    """

    def check_put_rdataset(self, check: object) -> None:
        return None

    def _set_origin(self, origin: dns.name.Name | None) -> None:
        manager = self.manager
        if isinstance(manager, _AnyDataManager) and manager.found_origin is None:
            manager.found_origin = origin


class _AnyDataManager(dns.zonefile.RRSetsReaderManager):
    found_origin: dns.name.Name | None = None

    def writer(self, replacement: bool = False) -> _AnyDataTransaction:
        return _AnyDataTransaction(self, True, False)  # type: ignore[no-untyped-call]

    def origin_information(
        self,
    ) -> tuple[dns.name.Name | None, bool, dns.name.Name | None]:
        # The first $ORIGIN becomes the zone origin, as dns.zone.from_text does.
        return (self.found_origin, False, self.found_origin)


def _read_allowing_cname_and_other_data(
    text: str, origin: dns.name.Name | None, filename: str
) -> tuple[dns.name.Name | None, list[tuple[dns.name.Name, int, dns.rdata.Rdata]]]:
    manager = _AnyDataManager(origin, False, dns.rdataclass.IN)
    manager.found_origin = origin
    with manager.writer(True) as txn:
        tokenizer = dns.tokenizer.Tokenizer(text, filename)
        dns.zonefile.Reader(tokenizer, dns.rdataclass.IN, txn).read()
    rdatas = [(rrset.name, rrset.ttl, rdata) for rrset in manager.rrsets for rdata in rrset]
    return manager.found_origin, rdatas


def _proxied_tags(text: str, origin: dns.name.Name | None) -> dict[tuple[str, str, str], bool]:
    """Proxy flags from ``cf-proxied:`` comments on one-line records with an explicit owner."""
    tags: dict[tuple[str, str, str], bool] = {}
    for line in text.splitlines():
        match = _PROXIED_TAG.search(line)
        if not match or line[:1].isspace() or line.startswith("$"):
            continue
        fields = line[: line.index(";")].split()
        for index, token in enumerate(fields[1:], start=1):
            if token.upper() not in ("A", "AAAA", "CNAME"):
                continue
            try:
                owner = dns.name.from_text(fields[0], origin)
                rdata = dns.rdata.from_text(
                    dns.rdataclass.IN, token.upper(), " ".join(fields[index + 1 :]), origin
                )
            except dns.exception.DNSException:
                break
            key = (normalise_name(owner.to_text()), token.upper(), rdata.to_text())
            tags[key] = match.group(1).lower() == "true"
            break
    return tags


# --- live resolution ----------------------------------------------------------------------------


def parse_nameserver(spec: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) -> (host, port); port defaults to 53."""
    text = spec.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DnsInputError(f"--nameserver {spec!r}: expected HOST[:PORT]")
    return host, int(port)


def make_resolver(nameserver: str | None = None, timeout: float = 3.0) -> dns.resolver.Resolver:
    """A resolver bound to one nameserver (``HOST[:PORT]``), or the system's when None."""
    try:
        if nameserver is None:
            resolver = dns.resolver.Resolver(configure=True)
        else:
            host, port = parse_nameserver(nameserver)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [host]
            resolver.port = port
    except (dns.exception.DNSException, ValueError) as exc:
        raise DnsInputError(f"cannot set up a resolver ({nameserver or 'system'}): {exc}") from exc
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def resolve_names(names: Iterable[str], resolver: dns.resolver.Resolver) -> Resolution:
    """Query each name for :data:`LIVE_TYPES` and follow CNAME targets, at most 8 hops deep.

    Every record in an answer section is kept, so a server that returns the whole CNAME chain in
    one answer and one that returns only the first hop give the same result.
    """
    found: dict[tuple[str, str, str], Record] = {}
    unresolved: list[tuple[str, str]] = []
    queue = [(normalise_name(n), 0) for n in names if n.strip()]
    seen: set[str] = set()
    while queue:
        name, depth = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        answered, reason = False, "no records"
        for rtype in LIVE_TYPES:
            outcome = _query(resolver, name, rtype)
            if isinstance(outcome, str):
                reason = outcome
                if outcome.startswith(("NXDOMAIN", "timeout", "no nameserver")):
                    break  # every other type would fail the same way
                continue
            for record in outcome:
                answered = True
                found.setdefault((record.name, record.type, record.value), record)
                target = target_of(record)
                if record.type == "CNAME" and target and depth < MAX_CNAME_HOPS:
                    queue.append((target, depth + 1))
        if not answered:
            unresolved.append((name, reason))
    return Resolution(tuple(found.values()), tuple(unresolved))


def _query(resolver: dns.resolver.Resolver, name: str, rtype: str) -> list[Record] | str:
    """Records of the answer section, or a short reason string when there is no answer."""
    try:
        answer = resolver.resolve(name, rtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return "NXDOMAIN"
    except dns.resolver.LifetimeTimeout:
        return "timeout"
    except dns.resolver.NoNameservers as exc:
        return f"no nameserver answered ({exc})"
    except dns.exception.DNSException as exc:
        return f"error: {exc}"
    records: list[Record] = []
    for rrset in answer.response.answer:
        owner = normalise_name(rrset.name.to_text())
        rrtype = dns.rdatatype.to_text(rrset.rdtype)
        records.extend(Record(owner, rrtype, rrset.ttl, rd.to_text()) for rd in rrset)
    return records


# --- history files ------------------------------------------------------------------------------


def load_history(path: str | Path) -> list[HistoryEntry]:
    """Read past records: CSV with header ``name,type,value,first_seen,last_seen`` or JSON lines
    with the same keys (detected from the first non-blank character)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DnsInputError(f"{path}: cannot read history file: {exc}") from exc
    if text.lstrip().startswith("{"):
        return _history_from_json_lines(text, str(path))
    return _history_from_csv(text, str(path))


def _history_from_csv(text: str, filename: str) -> list[HistoryEntry]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or ()]
    missing = [f for f in HISTORY_FIELDS[:3] if f not in header]
    if missing:
        raise DnsInputError(
            f"{filename}:1: history CSV header must be {','.join(HISTORY_FIELDS)};"
            f" missing {','.join(missing)}"
        )
    entries = []
    for row in reader:
        clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not any(clean.values()):
            continue
        entries.append(_history_entry(clean, f"{filename}:{reader.line_num}"))
    return entries


def _history_from_json_lines(text: str, filename: str) -> list[HistoryEntry]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DnsInputError(f"{filename}:{number}: invalid JSON: {exc.msg}") from exc
        if not isinstance(item, dict):
            raise DnsInputError(f"{filename}:{number}: expected a JSON object")
        clean = {str(k).lower(): "" if v is None else str(v) for k, v in item.items()}
        entries.append(_history_entry(clean, f"{filename}:{number}"))
    return entries


def _history_entry(row: dict[str, str], where: str) -> HistoryEntry:
    if not row.get("name") or not row.get("type") or not row.get("value"):
        raise DnsInputError(f"{where}: history entry needs name, type and value")
    return HistoryEntry(
        name=normalise_name(row["name"]),
        type=row["type"].strip().upper(),
        value=row["value"].strip(),
        first_seen=row.get("first_seen", ""),
        last_seen=row.get("last_seen", ""),
    )
