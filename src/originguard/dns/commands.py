"""``originguard dns audit`` and ``originguard dns export``: the I/O rim around the pure audit.

Inputs come from a zone file (``--zone-file``), live resolution (``--names`` with an optional
``--nameserver HOST[:PORT]``), the command line and, optionally, the originguard YAML config
(read here with PyYAML only, so this module does not depend on the config models).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml  # type: ignore[import-untyped, unused-ignore]

from originguard.dns.audit import Finding, Severity, audit, unresolved_findings
from originguard.dns.export import export_zone
from originguard.dns.lookup import LiveQuery, Lookup
from originguard.dns.records import (
    DnsInputError,
    Record,
    load_history,
    load_zone_file,
    load_zone_text,
    make_resolver,
    normalise_name,
    resolve_names,
)
from originguard.dns.report import EXIT_ERROR, exit_code, render

F = TypeVar("F", bound=Callable[..., Any])


# --- config -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigInputs:
    """What the DNS tools need from an originguard config file."""

    origin_addresses: tuple[str, ...] = ()  # IP literals
    origin_hosts: tuple[str, ...] = ()  # origins configured by host name: resolve them
    hostnames: tuple[str, ...] = ()  # the hostnames the edge proxies
    ignored: tuple[str, ...] = field(default_factory=tuple)  # entries we could not read


def origin_addresses_from_config(path: str | Path) -> ConfigInputs:
    """Read ``zones[*].pools[*].origins[*].address`` and ``zones[*].hostnames`` from the YAML.

    Deliberately forgiving about shape (lists or mappings, origins as strings or objects,
    addresses with ports or URL schemes): anything unreadable is listed in ``ignored``.
    Raises DnsInputError only when the file cannot be read or is not YAML.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DnsInputError(f"{path}: cannot read config: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise DnsInputError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    addresses: list[str] = []
    hosts: list[str] = []
    hostnames: list[str] = []
    ignored: list[str] = []
    for zone in _items(data.get("zones") if isinstance(data, dict) else None):
        if not isinstance(zone, dict):
            continue
        names = zone.get("hostnames")
        for name in [names] if isinstance(names, str) else _items(names):
            if isinstance(name, str) and name.strip():
                hostnames.append(normalise_name(name))
        for pool in _items(zone.get("pools")):
            for origin in _items(pool.get("origins") if isinstance(pool, dict) else None):
                raw = origin.get("address") if isinstance(origin, dict) else origin
                host = _host_of(raw) if isinstance(raw, str) else None
                if host is None:
                    ignored.append(repr(raw))
                elif _is_ip(host):
                    addresses.append(host)
                else:
                    hosts.append(normalise_name(host))
    return ConfigInputs(
        tuple(dict.fromkeys(addresses)),
        tuple(dict.fromkeys(hosts)),
        tuple(dict.fromkeys(hostnames)),
        tuple(ignored),
    )


def _items(value: object) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    return []


def _host_of(address: str) -> str | None:
    """``http://[2001:db8::1]:8080/x`` -> ``2001:db8::1``; ``origin.lan:80`` -> ``origin.lan``."""
    text = address.strip().split("://", 1)[-1].split("/", 1)[0]
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text or None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- inputs shared by audit and export -----------------------------------------------------------


@dataclass
class Inputs:
    records: list[Record]
    zone_name: str | None
    origin_addresses: list[str]
    proxied: list[str]
    lookup: Lookup
    live: LiveQuery | None
    notes: list[Finding]
    source: str


def _input_options(func: F) -> F:
    options = [
        click.option("--zone-file", type=click.Path(dir_okay=False), help="BIND zone file."),
        click.option("--zone-name", help="Zone origin when the file has no $ORIGIN."),
        click.option("--names", help="Comma-separated names to resolve live."),
        click.option("--nameserver", metavar="HOST[:PORT]", help="Ask this server only."),
        click.option("--offline", is_flag=True, help="Never query DNS beyond the zone file."),
        click.option(
            "--timeout",
            type=float,
            default=3.0,
            show_default=True,
            help="Seconds to wait for each DNS answer.",
        ),
        click.option("--origin-ip", multiple=True, help="An origin address (repeatable)."),
        click.option("--edge-ip", multiple=True, help="An edge address (repeatable)."),
        click.option("--proxied", multiple=True, help="A hostname the edge proxies (repeatable)."),
        click.option(
            "-c",
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            help="originguard config: origin addresses and proxied hostnames.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _gather(
    zone_file: str | None,
    zone_name: str | None,
    names: str | None,
    nameserver: str | None,
    offline: bool,
    timeout: float,
    origin_ip: Iterable[str],
    proxied: Iterable[str],
    config_path: str | None,
) -> Inputs:
    name_list = [n.strip() for n in (names or "").split(",") if n.strip()]
    if not zone_file and not name_list:
        raise DnsInputError("give --zone-file or --names")
    if offline and name_list:
        raise DnsInputError("--names needs live DNS; drop --offline")
    for address in origin_ip:
        try:
            ipaddress.ip_network(address.strip(), strict=False)
        except ValueError as exc:
            raise DnsInputError(f"--origin-ip {address!r}: not an IP address") from exc
    records: list[Record] = []
    sources: list[str] = []
    if zone_file:
        zone_name, records = load_zone_file(zone_file, origin=zone_name)
        sources.append(zone_file)
    resolver = None if offline else make_resolver(nameserver, timeout)
    live = None if resolver is None else LiveQuery(resolver)
    notes: list[Finding] = []
    if name_list and resolver is not None:
        resolution = resolve_names(name_list, resolver)
        if not resolution.records and not records:
            reasons = "; ".join(f"{n}: {why}" for n, why in resolution.unresolved)
            raise DnsInputError(f"none of the names resolved ({reasons})")
        records += resolution.records
        notes += unresolved_findings(resolution.unresolved)
        sources.append("dns:" + ",".join(name_list))
    lookup = Lookup(records, live)
    config = origin_addresses_from_config(config_path) if config_path else ConfigInputs()
    addresses = [a.strip() for a in origin_ip] + list(config.origin_addresses)
    for host in config.origin_hosts:
        found = lookup.addresses(host)
        addresses += found
        if not found:
            click.echo(f"warning: origin {host} from the config did not resolve", err=True)
    for entry in config.ignored:
        click.echo(f"warning: could not read origin address {entry} in the config", err=True)
    return Inputs(
        records=records,
        zone_name=zone_name,
        origin_addresses=addresses,
        proxied=list(proxied) + list(config.hostnames),
        lookup=lookup,
        live=live,
        notes=notes,
        source=" ".join(sources),
    )


# --- commands -----------------------------------------------------------------------------------


@click.group()
def dns() -> None:
    """Find DNS records that leak origin addresses, and publish a zone that does not."""


@dns.command("audit")
@_input_options
@click.option("--history", type=click.Path(dir_okay=False), help="Past records: CSV or JSONL.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "sarif"]),
    default="table",
    show_default=True,
)
@click.pass_context
def audit_command(
    ctx: click.Context,
    zone_file: str | None,
    zone_name: str | None,
    names: str | None,
    nameserver: str | None,
    offline: bool,
    timeout: float,
    origin_ip: tuple[str, ...],
    edge_ip: tuple[str, ...],
    proxied: tuple[str, ...],
    config_path: str | None,
    history: str | None,
    fmt: str,
) -> None:
    """Report every record that reveals an origin address. Exit 0 clean, 1 findings, 2 error."""
    try:
        inputs = _gather(
            zone_file,
            zone_name,
            names,
            nameserver,
            offline,
            timeout,
            origin_ip,
            proxied,
            config_path,
        )
        _check_ips(edge_ip, "--edge-ip")
        past = load_history(history) if history else []
        if not inputs.origin_addresses and not any(r.proxied for r in inputs.records):
            raise DnsInputError("no origin addresses: give --origin-ip or -c/--config")
    except (DnsInputError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_ERROR)
    findings = audit(
        inputs.records,
        inputs.origin_addresses,
        edge_ip,
        inputs.proxied,
        history=past,
        query=inputs.lookup.query,
    )
    if inputs.live is not None:
        failures = [(f"{n} {t}", reason) for n, t, reason in inputs.live.failures]
        findings += unresolved_findings(failures)
    findings = inputs.notes + findings
    click.echo(render(findings, fmt, source=inputs.source), nl=False)
    ctx.exit(exit_code(findings))


@dns.command("export")
@_input_options
@click.pass_context
def export_command(
    ctx: click.Context,
    zone_file: str | None,
    zone_name: str | None,
    names: str | None,
    nameserver: str | None,
    offline: bool,
    timeout: float,
    origin_ip: tuple[str, ...],
    edge_ip: tuple[str, ...],
    proxied: tuple[str, ...],
    config_path: str | None,
) -> None:
    """Print the public zone: proxied names answered by the edge, DNS-only records as they are."""
    try:
        inputs = _gather(
            zone_file,
            zone_name,
            names,
            nameserver,
            offline,
            timeout,
            origin_ip,
            proxied,
            config_path,
        )
        _check_ips(edge_ip, "--edge-ip")
        if not inputs.zone_name:
            raise DnsInputError("--zone-name is needed to export resolved names")
        text = export_zone(inputs.records, inputs.proxied, edge_ip, inputs.zone_name)
    except (DnsInputError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_ERROR)
    click.echo(text, nl=False)
    if inputs.origin_addresses:
        # Self-check, offline: the published zone should not leak what it was built to hide.
        published = load_zone_text(text, origin=inputs.zone_name)[1]
        left = [
            f
            for f in audit(published, inputs.origin_addresses, edge_ip, inputs.proxied)
            if f.severity in (Severity.HIGH, Severity.MEDIUM)
        ]
        if left:
            click.echo(
                f"warning: the exported zone still leaks the origin in {len(left)} place(s);"
                " run `originguard dns audit` on it",
                err=True,
            )


def _check_ips(addresses: Iterable[str], option: str) -> None:
    for address in addresses:
        if not _is_ip(address.strip()):
            raise DnsInputError(f"{option} {address!r}: not an IP address")
