"""Answering DNS questions from a set of records first, and from live DNS only for the rest.

The audit asks questions (``addresses("mail.example.com")``, ``query("_spf.example.net",
"TXT")``) without knowing where the answers come from. :class:`Lookup` answers them like an
authoritative server for the zones whose SOA is among the records (exact owner, then the
wildcard at the closest encloser, RFC 4592 §3.3.1; a name inside the zone that does not exist
has no records and is never asked elsewhere), and hands every other name to an injected
``fallback`` (live DNS in the CLI, a dict in tests, nothing at all offline).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.resolver

from originguard.dns.records import MAX_CNAME_HOPS, Record, normalise_name

Query = Callable[[str, str], Sequence[str]]
"""(name, record type) -> record values in presentation format."""

Resolve = Callable[[str], Sequence[str]]
"""name -> IPv4 and IPv6 addresses (CNAMEs followed)."""


class Lookup:
    """Zone records first, then ``fallback`` for names the records are not authoritative for."""

    def __init__(self, records: Iterable[Record], fallback: Query | None = None) -> None:
        self._rrsets: dict[tuple[str, str], list[Record]] = defaultdict(list)
        self._owners: set[str] = set()
        self._apexes: set[str] = set()
        for record in records:
            self._rrsets[(record.name, record.type)].append(record)
            self._owners.add(record.name)
            if record.type == "SOA":
                self._apexes.add(record.name)
        self._fallback = fallback

    def records(self, name: str, rtype: str) -> list[Record] | None:
        """Zone records answering (name, type); [] when the zone says "no such data"; None when
        the name is outside every zone we hold (ask the fallback)."""
        name = normalise_name(name)
        exact = self._rrsets.get((name, rtype))
        if exact:
            return list(exact)
        if name in self._owners:
            return []
        source = self._wildcard_source(name)
        if source is not None:
            return [
                Record(name, r.type, r.ttl, r.value, r.proxied)
                for r in self._rrsets.get((source, rtype), [])
            ]
        if self.is_in_zone(name):
            return []
        return None

    def query(self, name: str, rtype: str) -> list[str]:
        """Record values for (name, type): from the zone, else from the fallback."""
        found = self.records(name, rtype)
        if found is not None:
            return [r.value for r in found]
        if self._fallback is None:
            return []
        return list(self._fallback(normalise_name(name), rtype))

    def addresses(self, name: str) -> list[str]:
        """A and AAAA values for ``name``, following CNAMEs (bounded, loops give nothing)."""
        chain = self.chain(name)
        return [] if chain.problem else list(chain.addresses)

    def chain(self, name: str) -> Chain:
        """Follow CNAMEs from ``name``; report the hops, the final addresses, or the problem."""
        hops = [normalise_name(name)]
        while True:
            cnames = self.query(hops[-1], "CNAME")
            if not cnames:
                final = hops[-1]
                return Chain(tuple(hops), tuple(self.query(final, "A") + self.query(final, "AAAA")))
            target = normalise_name(cnames[0].split()[-1])
            if target in hops:
                return Chain(tuple(hops + [target]), (), "loop")
            hops.append(target)
            if len(hops) > MAX_CNAME_HOPS + 1:
                return Chain(tuple(hops), (), "too long")

    def is_in_zone(self, name: str) -> bool:
        """True when ``name`` is at or below the apex of a zone we hold (we are authoritative)."""
        name = normalise_name(name)
        return any(name == apex or name.endswith("." + apex) for apex in self._apexes)

    def _wildcard_source(self, name: str) -> str | None:
        # RFC 4592 §3.3.1: the closest encloser is the longest existing ancestor; only the
        # wildcard directly below it can synthesise an answer.
        labels = name.split(".")
        for cut in range(1, len(labels)):
            ancestor = ".".join(labels[cut:])
            if ancestor in self._owners or self._has_descendant(ancestor):
                wildcard = "*." + ancestor
                return wildcard if wildcard in self._owners else None
        return None

    def _has_descendant(self, name: str) -> bool:
        # An empty non-terminal exists too (RFC 4592 §2.2.2).
        suffix = "." + name
        return any(owner.endswith(suffix) for owner in self._owners)


@dataclass(frozen=True, slots=True)
class Chain:
    """The outcome of following CNAMEs: hops walked, final addresses, and a problem if any."""

    hops: tuple[str, ...]
    addresses: tuple[str, ...]
    problem: str | None = None  # "loop" | "too long"


class LiveQuery:
    """A :data:`Query` backed by a dnspython resolver; failures become empty answers and are
    remembered in :attr:`failures` (name, type, reason) for the report."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self._resolver = resolver
        self._cache: dict[tuple[str, str], list[str]] = {}
        self.failures: list[tuple[str, str, str]] = []

    def __call__(self, name: str, rtype: str) -> list[str]:
        key = (normalise_name(name), rtype)
        if key not in self._cache:
            self._cache[key] = self._ask(*key)
        return self._cache[key]

    def _ask(self, name: str, rtype: str) -> list[str]:
        try:
            answer = self._resolver.resolve(name, rtype, raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            self.failures.append((name, rtype, str(exc) or type(exc).__name__))
            return []
        return [rd.to_text() for rd in answer.rrset] if answer.rrset is not None else []


def resolve_from(query: Query) -> Resolve:
    """A :data:`Resolve` (name -> addresses) built on a :data:`Query`."""

    def resolve(name: str) -> list[str]:
        return Lookup((), query).addresses(name)

    return resolve


def query_from(resolve: Resolve) -> Query:
    """A :data:`Query` that only knows addresses (A/AAAA), built on a :data:`Resolve`."""

    def query(name: str, rtype: str) -> list[str]:
        if rtype not in ("A", "AAAA"):
            return []
        version = 4 if rtype == "A" else 6
        return [a for a in resolve(name) if _ip_version(a) == version]

    return query


def _ip_version(text: str) -> int | None:
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return None
