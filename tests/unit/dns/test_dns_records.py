"""Loading records: zone files, history files, nameserver specs; bad input names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from originguard.dns.records import (
    DnsInputError,
    HistoryEntry,
    Record,
    load_history,
    load_zone_file,
    parse_nameserver,
    target_of,
    txt_text,
)

ZONE = """$ORIGIN example.com.
$TTL 600
@        IN SOA ns1 hostmaster 1 7200 900 1209600 300
@        IN NS  ns1
@        IN A   192.0.2.1
ns1      IN A   192.0.2.53
*        IN A   192.0.2.9
www      300 IN CNAME @
@        IN MX  10 mail.example.net.
@        IN TXT "v=spf1 ip4:198.51.100.0/24" " -all"
$ORIGIN sub.example.com.
deep     IN A   192.0.2.77
_sip._tcp IN SRV 10 5 5060 deep
"""


def test_zone_file_names_become_absolute_and_lower_case(tmp_path: Path) -> None:
    path = tmp_path / "zone"
    path.write_text(ZONE)
    origin, records = load_zone_file(path)
    assert origin == "example.com"
    assert Record("example.com", "A", 600, "192.0.2.1") in records
    assert Record("*.example.com", "A", 600, "192.0.2.9") in records
    assert Record("www.example.com", "CNAME", 300, "example.com.") in records
    assert Record("deep.sub.example.com", "A", 600, "192.0.2.77") in records
    srv = next(r for r in records if r.type == "SRV")
    assert (srv.name, target_of(srv)) == ("_sip._tcp.sub.example.com", "deep.sub.example.com")


def test_txt_strings_are_joined_as_spf_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "zone"
    path.write_text(ZONE)
    txt = next(r for r in load_zone_file(path)[1] if r.type == "TXT")
    assert txt_text(txt.value) == "v=spf1 ip4:198.51.100.0/24 -all"


def test_zone_without_origin_directive_takes_the_given_origin(tmp_path: Path) -> None:
    path = tmp_path / "zone"
    path.write_text("@ 300 IN A 192.0.2.1\nwww 300 IN A 192.0.2.2\n")
    origin, records = load_zone_file(path, origin="Example.ORG.")
    assert origin == "example.org"
    assert {r.name for r in records} == {"example.org", "www.example.org"}


def test_malformed_zone_file_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.zone"
    path.write_text("$ORIGIN example.com.\n$TTL 60\nwww IN A 192.0.2.1\nmail IN AX 1.2.3.4\n")
    with pytest.raises(DnsInputError, match=r"bad\.zone:4: .*AX"):
        load_zone_file(path)


@pytest.mark.parametrize(
    "generate",
    ["$GENERATE 1-2000000 h$ A 203.0.113.10", "$GENERATE 1-" + "9" * 40 + " h$ A 1.2.3.4"],
)
def test_a_generate_range_past_the_limit_is_refused_before_expanding(
    tmp_path: Path, generate: str
) -> None:
    path = tmp_path / "gen.zone"
    path.write_text(f"$ORIGIN example.com.\n$TTL 300\n@ IN SOA a. b. 1 2 3 4 5\n{generate}\n")
    with pytest.raises(DnsInputError, match=r"gen\.zone:4: \$GENERATE expands past 65536"):
        load_zone_file(path)


def test_a_zone_without_origin_names_the_option_that_gives_one(tmp_path: Path) -> None:
    path = tmp_path / "bare.zone"
    path.write_text("$TTL 300\n@ IN SOA a. b. 1 2 3 4 5\nwww IN A 192.0.2.1\n")
    with pytest.raises(DnsInputError, match="give --zone-name"):
        load_zone_file(path)


def test_a_bad_zone_name_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "ok.zone"
    path.write_text("$ORIGIN example.com.\n$TTL 300\n@ IN SOA a. b. 1 2 3 4 5\n")
    with pytest.raises(DnsInputError):
        load_zone_file(path, origin="a..b")


def test_missing_zone_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DnsInputError, match="cannot read zone file"):
        load_zone_file(tmp_path / "nope.zone")


def test_history_csv_with_header(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(
        "name,type,value,first_seen,last_seen\n"
        "WWW.example.com.,a,203.0.113.10,2021-01-01,2023-01-01\n"
        "\n"
        "example.com,TXT,v=spf1 -all,,\n"
    )
    assert load_history(path) == [
        HistoryEntry("www.example.com", "A", "203.0.113.10", "2021-01-01", "2023-01-01"),
        HistoryEntry("example.com", "TXT", "v=spf1 -all", "", ""),
    ]


def test_history_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(
        '{"name": "www.example.com", "type": "A", "value": "203.0.113.10",'
        ' "first_seen": "2021-01-01", "last_seen": null}\n\n'
        '{"name": "a.example.com", "type": "AAAA", "value": "2001:db8::1"}\n'
    )
    assert load_history(path) == [
        HistoryEntry("www.example.com", "A", "203.0.113.10", "2021-01-01", ""),
        HistoryEntry("a.example.com", "AAAA", "2001:db8::1", "", ""),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host,kind\nwww,A\n", r"history\.csv:1: .*missing name,type,value"),
        ("name,type,value\nwww,A,\n", r"history\.csv:2: .*needs name, type and value"),
    ],
)
def test_bad_history_csv_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "history.csv"
    path.write_text(text)
    with pytest.raises(DnsInputError, match=message):
        load_history(path)


def test_bad_history_json_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"name": "a", "type": "A", "value": "192.0.2.1"}\n{"name": \n')
    with pytest.raises(DnsInputError, match=r"history\.jsonl:2: invalid JSON"):
        load_history(path)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5300", ("::1", 5300)),
        ("::1", ("::1", 53)),
    ],
)
def test_nameserver_spec(spec: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize("spec", ["127.0.0.1:dns", "127.0.0.1:0", ":53", "[::1]:99999"])
def test_bad_nameserver_spec_is_a_clear_error(spec: str) -> None:
    with pytest.raises(DnsInputError, match="HOST\\[:PORT\\]"):
        parse_nameserver(spec)
