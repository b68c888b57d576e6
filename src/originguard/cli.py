"""Command line: serve | check | demo | dns …; exit codes 0 ok, 1 bad input/findings, 2 error."""

from __future__ import annotations

import logging
import sys

import click
import uvloop

from originguard.config import ConfigError, dump, load
from originguard.dns.commands import dns
from originguard.origin.commands import origin


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group()
@click.version_option(package_name="originguard")
def main() -> None:
    """originguard: a self-hosted edge that protects origin servers."""


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--log-level", default="info", show_default=True)
def serve(config_path: str, log_level: str) -> None:
    """Run the edge with CONFIG. SIGHUP reloads it, SIGTERM drains and exits."""
    from originguard.app import serve as run

    _setup_logging(log_level)
    config = _load_or_exit(config_path)
    sys.exit(uvloop.run(run(config, config_path)))


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False))
def check(config_path: str) -> None:
    """Validate CONFIG and print it normalised, secrets redacted."""
    config = _load_or_exit(config_path)
    click.echo(dump(config), nl=False)


@main.command()
@click.option("--port", default=8080, show_default=True, help="Edge port (another if busy).")
@click.option("--admin-port", default=9090, show_default=True)
def demo(port: int, admin_port: int) -> None:
    """Start two demo origins and the edge in front of them; prints what to try."""
    from originguard.demo import run_demo

    _setup_logging("info")
    sys.exit(uvloop.run(run_demo(port, admin_port)))


main.add_command(dns)
main.add_command(origin)


def _load_or_exit(config_path: str):  # type: ignore[no-untyped-def]
    try:
        return load(config_path)
    except ConfigError as error:
        for message in error.messages:
            click.echo(message, err=True)
        sys.exit(1)
    except OSError as error:
        click.echo(f"{config_path}: {error.strerror}", err=True)
        sys.exit(2)
