"""`originguard origin …` through click: exit codes, outputs, and the origin_auth header."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from originguard.cli import main
from originguard.config import loads
from originguard.routing import build_zones

CONFIG = """
edge:
  egress_addresses: ["192.0.2.10", "2001:db8::10"]
zones:
  - name: site
    hostnames: [site.test]
    origin_auth: {secret: "0123456789abcdef0123"}
    pools:
      - name: main
        origins: [{address: "127.0.0.1:8443"}, {address: "[::1]:8080"}]
"""


def write(tmp_path: Path, text: str = CONFIG) -> str:
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    return str(path)


def test_allowlist_prints_rules_for_the_origin_ports_and_the_caveat(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["origin", "allowlist", "-c", write(tmp_path), "--format", "nftables"]
    )
    assert result.exit_code == 0, result.output
    assert "tcp dport { 8080, 8443 } ip saddr @edge4 accept" in result.stdout
    assert "192.0.2.10/32" in result.stdout and "2001:db8::10/128" in result.stdout
    assert "caveat:" in result.stderr


def test_allowlist_without_egress_addresses_is_an_error(tmp_path: Path) -> None:
    text = CONFIG.replace(
        'egress_addresses: ["192.0.2.10", "2001:db8::10"]', "egress_addresses: []"
    )
    result = CliRunner().invoke(
        main, ["origin", "allowlist", "-c", write(tmp_path, text), "--format", "ufw"]
    )
    assert result.exit_code == 1
    assert "egress_addresses is empty" in result.stderr


def test_allowlist_writes_a_file_with_chosen_ports(tmp_path: Path) -> None:
    out = tmp_path / "rules.sh"
    result = CliRunner().invoke(
        main,
        [
            "origin",
            "allowlist",
            "-c",
            write(tmp_path),
            "--format",
            "iptables",
            "--port",
            "443",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0
    assert "--dports 443 " in out.read_text()


def test_certs_init_twice_refuses_without_force(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["origin", "certs", "init", "--dir", str(tmp_path / "aop")])
    assert first.exit_code == 0 and "ssl_verify_client on;" in first.stdout
    second = runner.invoke(main, ["origin", "certs", "init", "--dir", str(tmp_path / "aop")])
    assert second.exit_code == 1 and "--force" in second.stderr


def test_check_with_a_bad_config_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["origin", "check", "-c", write(tmp_path, "zones: []\n")])
    assert result.exit_code == 1


# -- the shared-secret header on the upstream request -----------------------------------------


def zone():  # type: ignore[no-untyped-def]
    return build_zones(loads(CONFIG)).zones[0]


def test_origin_headers_are_added_before_the_blank_line() -> None:
    head = b"GET / HTTP/1.1\r\nhost: site.test\r\n\r\n"
    assert zone().with_origin_headers(head) == (
        b"GET / HTTP/1.1\r\nhost: site.test\r\nog-origin-auth: 0123456789abcdef0123\r\n\r\n"
    )


def test_a_client_copy_of_the_secret_header_is_dropped() -> None:
    head = b"GET / HTTP/1.1\r\nhost: site.test\r\nog-origin-auth: guess\r\nx-a: 1\r\n\r\n"
    assert zone().with_origin_headers(head) == (
        b"GET / HTTP/1.1\r\nhost: site.test\r\nx-a: 1\r\nog-origin-auth: 0123456789abcdef0123"
        b"\r\n\r\n"
    )


def test_zones_without_origin_auth_leave_the_head_alone() -> None:
    config = loads(CONFIG.replace('    origin_auth: {secret: "0123456789abcdef0123"}\n', ""))
    head = b"GET / HTTP/1.1\r\nhost: site.test\r\n\r\n"
    assert build_zones(config).zones[0].with_origin_headers(head) is head


def test_a_secret_with_a_line_break_is_refused_at_load() -> None:
    import pytest

    from originguard.config import ConfigError

    with pytest.raises(ConfigError, match="printable ASCII"):
        loads(CONFIG.replace('"0123456789abcdef0123"', '"0123456789abcdef\\r\\nx-evil: 1"'))
