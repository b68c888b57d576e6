"""Report formats, exit codes, the config reader and the click commands (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from originguard.dns.audit import Finding, RecordRef, Severity
from originguard.dns.commands import dns, origin_addresses_from_config
from originguard.dns.records import DnsInputError
from originguard.dns.report import exit_code, render, render_sarif

ORIGIN = "203.0.113.10"
EDGE = "192.0.2.1"

ZONE = f"""$ORIGIN example.com.
$TTL 3600
@       IN SOA ns1.dns-host.net. hostmaster 1 7200 900 1209600 300
@       IN NS  ns1.dns-host.net.
@       IN A   {ORIGIN}
www     IN CNAME @
mail    IN A   {ORIGIN}
@       IN MX  10 mail
@       IN TXT "v=spf1 mx -all"
"""

HIGH = Finding(
    Severity.HIGH,
    "origin-address-published",
    RecordRef("direct.example.com", "A", ORIGIN),
    "why it leaks",
    "how to fix",
    ORIGIN,
)
INFO = Finding(
    Severity.INFO, "name-unresolved", RecordRef("typo.example.com", "-", "NXDOMAIN"), "w", "f"
)


def test_exit_codes_clean_info_only_and_findings() -> None:
    assert exit_code([]) == 0
    assert exit_code([INFO]) == 0
    assert exit_code([INFO, HIGH]) == 1


def test_table_shows_severity_rule_record_why_and_fix() -> None:
    text = render([HIGH], "table")
    assert "HIGH" in text and "origin-address-published" in text and "direct.example.com A" in text
    assert "why: why it leaks" in text and "fix: how to fix" in text
    assert render([], "table") == "No origin leaks found.\n"


def test_json_lists_findings_with_their_record() -> None:
    data = json.loads(render([HIGH], "json"))
    assert data["count"] == 1
    assert data["findings"][0]["record"] == {
        "name": "direct.example.com",
        "type": "A",
        "value": ORIGIN,
    }


def test_sarif_has_the_required_structure() -> None:
    log = render_sarif([HIGH, INFO], "zones/example.com.zone")
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"]
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert all(rule["shortDescription"]["text"] for rule in driver["rules"])
    for result in run["results"]:
        assert result["ruleId"] in rule_ids
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in {"none", "note", "warning", "error"}
        assert result["message"]["text"]
        location = result["locations"][0]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "zones/example.com.zone"
        assert location["logicalLocations"][0]["name"]
    assert [r["level"] for r in run["results"]] == ["error", "note"]
    json.dumps(log)  # serialisable


# --- config -------------------------------------------------------------------------------------


def test_config_origins_and_hostnames_are_read_whatever_the_shape(tmp_path: Path) -> None:
    path = tmp_path / "og.yaml"
    path.write_text(
        """
zones:
  - hostnames: [WWW.example.com, example.com]
    pools:
      - origins:
          - address: 203.0.113.10:8080
          - address: "[2001:db8::10]:443"
          - address: http://origin.internal:80/
          - {port: 80}
  - hostnames: api.example.com
    pools:
      main:
        origins: ["198.51.100.4"]
  - just a string
"""
    )
    inputs = origin_addresses_from_config(path)
    assert inputs.origin_addresses == ("203.0.113.10", "2001:db8::10", "198.51.100.4")
    assert inputs.origin_hosts == ("origin.internal",)
    assert inputs.hostnames == ("www.example.com", "example.com", "api.example.com")
    assert inputs.ignored == ("None",)


def test_config_that_is_not_yaml_is_an_error_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "og.yaml"
    path.write_text("zones:\n  - hostnames: [a\n  b: ]\n")
    with pytest.raises(DnsInputError, match=r"og\.yaml:\d+: invalid YAML"):
        origin_addresses_from_config(path)


def test_config_without_zones_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "og.yaml"
    path.write_text("- 1\n- 2\n")
    assert origin_addresses_from_config(path).origin_addresses == ()


# --- commands -----------------------------------------------------------------------------------


@pytest.fixture
def zone_file(tmp_path: Path) -> Path:
    path = tmp_path / "example.com.zone"
    path.write_text(ZONE)
    return path


def test_audit_command_reports_findings_and_exits_1(zone_file: Path) -> None:
    result = CliRunner().invoke(
        dns,
        [
            "audit",
            "--zone-file",
            str(zone_file),
            "--offline",
            "--origin-ip",
            ORIGIN,
            "--edge-ip",
            EDGE,
            "--proxied",
            "example.com",
            "--proxied",
            "www.example.com",
        ],
    )
    assert result.exit_code == 1, result.output
    for rule in ("proxied-name-bypasses-edge", "mx-origin", "spf-origin"):
        assert rule in result.output


def test_audit_command_reads_origins_and_hostnames_from_config(
    zone_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "og.yaml"
    config.write_text(
        f"zones:\n  - hostnames: [example.com]\n    pools:\n"
        f"      - origins: [{{address: '{ORIGIN}:443'}}]\n"
    )
    result = CliRunner().invoke(
        dns,
        [
            "audit",
            "--zone-file",
            str(zone_file),
            "--offline",
            "-c",
            str(config),
            "--edge-ip",
            EDGE,
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 1
    rules = {f["rule"] for f in json.loads(result.output)["findings"]}
    assert "proxied-name-bypasses-edge" in rules


def test_audit_command_exits_0_on_a_clean_zone(tmp_path: Path) -> None:
    path = tmp_path / "clean.zone"
    path.write_text(ZONE.split("@       IN A")[0] + f"www IN A {EDGE}\n")
    result = CliRunner().invoke(
        dns,
        [
            "audit",
            "--zone-file",
            str(path),
            "--offline",
            "--origin-ip",
            ORIGIN,
            "--edge-ip",
            EDGE,
            "--proxied",
            "www.example.com",
        ],
    )
    assert (result.exit_code, result.output) == (0, "No origin leaks found.\n")


def test_audit_command_sarif_output_is_json(zone_file: Path) -> None:
    result = CliRunner().invoke(
        dns,
        [
            "audit",
            "--zone-file",
            str(zone_file),
            "--offline",
            "--origin-ip",
            ORIGIN,
            "--format",
            "sarif",
        ],
    )
    assert result.exit_code == 1
    assert json.loads(result.output)["version"] == "2.1.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --zone-file or --names"),
        (["--zone-file", "ZONE"], "no origin addresses"),
        (["--zone-file", "ZONE", "--origin-ip", "not-an-ip"], "not an IP address"),
        (["--zone-file", "ZONE", "--origin-ip", ORIGIN, "--edge-ip", "x"], "--edge-ip"),
        (["--zone-file", "BAD", "--origin-ip", ORIGIN], "bad.zone:2:"),
        (["--zone-file", "ZONE", "--origin-ip", ORIGIN, "--history", "NOPE"], "history"),
        (
            ["--names", "a.example", "--nameserver", "127.0.0.1:x", "--origin-ip", ORIGIN],
            "HOST[:PORT]",
        ),
    ],
)
def test_audit_command_bad_input_exits_2_with_a_message_not_a_traceback(
    zone_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    bad = tmp_path / "bad.zone"
    bad.write_text("$ORIGIN example.com.\nwww IN AX 192.0.2.1\n")
    args = [
        {"ZONE": str(zone_file), "BAD": str(bad), "NOPE": str(tmp_path / "nope")}.get(a, a)
        for a in args
    ]
    result = CliRunner().invoke(
        dns, ["audit", "--offline", *args] if "--names" not in args else ["audit", *args]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_export_command_prints_a_zone_without_the_origin(zone_file: Path) -> None:
    result = CliRunner().invoke(
        dns,
        [
            "export",
            "--zone-file",
            str(zone_file),
            "--offline",
            "--edge-ip",
            EDGE,
            "--proxied",
            "example.com",
            "--origin-ip",
            ORIGIN,
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"example.com.\t300\tIN\tA\t{EDGE}" in result.output
    # mail.example.com stays DNS-only, so the origin still leaks there, and we say so.
    assert "still leaks the origin" in result.output


def test_export_command_needs_an_edge_address_for_proxied_names(zone_file: Path) -> None:
    result = CliRunner().invoke(
        dns,
        ["export", "--zone-file", str(zone_file), "--offline", "--proxied", "example.com"],
    )
    assert result.exit_code == 2
    assert "edge address" in result.output
