"""Command line: serve | check | demo | dns …; exit codes 0 ok, 1 bad input/findings, 2 error."""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.request

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


@main.command()
@click.option("--admin", "admin_url", default="http://127.0.0.1:9090", show_default=True)
@click.option(
    "--token-env", default="OG_ADMIN_TOKEN", show_default=True,
    help="Environment variable holding the admin token.",
)
@click.option(
    "--url", "files", multiple=True,
    help="Purge one URL with all its variants, e.g. https://shop.example.com/app.css; "
    "the scheme is part of the cache key (repeatable).",
)
@click.option("--prefix", "prefixes", multiple=True, help="host/path prefix (repeatable).")
@click.option("--host", "hosts", multiple=True, help="Every object of a host (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Objects carrying a Cache-Tag (repeatable).")
@click.option("--everything", is_flag=True, help="Empty the whole cache.")
def purge(
    admin_url: str,
    token_env: str,
    files: tuple[str, ...],
    prefixes: tuple[str, ...],
    hosts: tuple[str, ...],
    tags: tuple[str, ...],
    everything: bool,
) -> None:
    """Remove cached objects through a running edge's admin API."""
    document = {
        "files": list(files),
        "prefixes": list(prefixes),
        "hosts": list(hosts),
        "tags": list(tags),
        "purge_everything": everything,
    }
    request = urllib.request.Request(
        admin_url.rstrip("/") + "/purge",
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    token = os.environ.get(token_env, "").strip()  # a trailing newline from `echo` or a file
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            answer = reply.read().decode()
    except urllib.error.HTTPError as error:
        click.echo(f"purge refused ({error.code}): {error.read().decode()}", err=True)
        if error.code == 401 and not token:
            click.echo(f"hint: ${token_env} is not set in this shell", err=True)
        sys.exit(1)
    except OSError as error:
        click.echo(f"cannot reach the admin API at {admin_url}: {error}", err=True)
        sys.exit(2)
    click.echo(answer)
    if files and json.loads(answer).get("removed") == 0:
        click.echo(
            "hint: nothing was cached under those URLs; http:// and https:// are cached apart",
            err=True,
        )


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
