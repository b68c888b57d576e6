"""``originguard origin …``: authenticated-origin-pull certificates, allowlist rules, and the
exposure check. Exit codes: 0 ok/clean, 1 findings or bad input, 2 error."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import click

from originguard.config import Config, ConfigError, load
from originguard.origin.allowlist import CAVEAT, FORMATS, render
from originguard.origin.exposure import Report, Target, as_json, judge, probe
from originguard.origin.mtls import origin_instructions, write_pull_files
from originguard.tls import default_sni

EXIT_FINDINGS = 1
EXIT_ERROR = 2


@click.group()
def origin() -> None:
    """Lock origins down: client certificates, allowlists, exposure check."""


@origin.group()
def certs() -> None:
    """Certificates for authenticated origin pulls (mTLS from the edge to origins)."""


@certs.command("init")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False))
@click.option(
    "--days",
    default=365,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="Client certificate lifetime (1-3650 days).",
)
@click.option("--name", default="originguard", show_default=True, help="Name in the certs.")
@click.option("--force", is_flag=True, help="Replace existing files (origins must be updated).")
def certs_init(directory: str, days: int, name: str, force: bool) -> None:
    """Create a private CA and the edge's client certificate in DIR; print origin config."""
    now = datetime.datetime.now(datetime.UTC)
    try:
        files = write_pull_files(Path(directory), now, days, name, force)
    except FileExistsError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FINDINGS)
    except OSError as error:
        click.echo(f"error: {directory}: {error.strerror or error}", err=True)
        sys.exit(EXIT_ERROR)
    click.echo(origin_instructions(files), nl=False)


@origin.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS))
@click.option(
    "--port",
    "ports",
    multiple=True,
    type=click.IntRange(1, 65535),
    help="Origin port to protect (repeatable); default: the ports of the origins.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
def allowlist(config_path: str, fmt: str, ports: tuple[int, ...], output: str | None) -> None:
    """Rules letting only edge.egress_addresses reach the origins' ports."""
    config = _load(config_path)
    networks = list(config.edge.egress_addresses)
    if not networks:
        click.echo(f"{config_path}: edge.egress_addresses is empty: nothing to allow", err=True)
        sys.exit(EXIT_FINDINGS)
    chosen = list(ports) or sorted(
        {o.port for zone in config.zones for pool in zone.pools for o in pool.origins}
    )
    text = render(fmt, networks, chosen)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    click.echo(f"caveat: {CAVEAT}", err=True)


@origin.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--timeout", default=5.0, show_default=True, help="Seconds per connection.")
def check(config_path: str, fmt: str, timeout: float) -> None:
    """Try each origin directly, as an attacker would; exit 1 when one gives the site away.

    Run it from outside the edge (the edge's own address is allowed by design)."""
    config = _load(config_path)
    try:
        reports = [judge(probe(target, timeout)) for target in targets(config)]
    except Exception as error:  # a bug must not look like a clean result
        click.echo(f"error: {type(error).__name__}: {error}", err=True)
        sys.exit(EXIT_ERROR)
    if fmt == "json":
        click.echo(json.dumps(as_json(reports), indent=2))
    else:
        click.echo(render_table(reports), nl=False)
    sys.exit(EXIT_FINDINGS if any(r.findings for r in reports) else 0)


def targets(config: Config) -> list[Target]:
    out = []
    for zone in config.zones:
        auth = zone.origin_auth.header if zone.origin_auth is not None else None
        for pool in zone.pools:
            for o in pool.origins:
                name = pool.tls.sni or default_sni(zone.host_header, zone.hostnames, o.host)
                out.append(
                    Target(
                        zone=zone.name,
                        pool=pool.name,
                        address=o.address,
                        host=o.host,
                        port=o.port,
                        tls=pool.tls.mode != "off",
                        hostname=name,
                        site_names=zone.hostnames,
                        client_cert=pool.tls.client_cert is not None,
                        auth_header=auth,
                    )
                )
    return out


def render_table(reports: list[Report]) -> str:
    rows = [("ZONE", "POOL", "ORIGIN", "SCHEME", "DIRECT", "VERDICT")]
    for r in reports:
        o = r.origin
        direct = (
            str(o["status"])
            if o["status"] is not None
            else str(o["tls_error"] or o["error"] or "-")
        )
        rows.append(
            (
                str(o["zone"]),
                str(o["pool"]),
                str(o["address"]),
                str(o["scheme"]),
                direct[:40],
                r.verdict.value,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    findings = [f for r in reports for f in r.findings]
    lines.append("")
    if not findings:
        lines.append("No findings: no origin gave the site away from this vantage point.")
    for f in findings:
        lines += [f"[{f.severity}] {f.check}: {f.message}", f"    fix: {f.fix}"]
    return "\n".join(lines) + "\n"


def _load(config_path: str) -> Config:
    try:
        return load(config_path)
    except ConfigError as error:
        for message in error.messages:
            click.echo(message, err=True)
        sys.exit(EXIT_FINDINGS)
