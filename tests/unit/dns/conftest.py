"""Zone fixtures for the DNS tests: each test writes the few records it is about."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from originguard.dns.records import Record, load_zone_file

ORIGIN = "203.0.113.10"
ORIGIN6 = "2001:db8:0:1::10"
EDGE = "192.0.2.1"
EDGE6 = "2001:db8:e::1"

HEADER = """$ORIGIN example.com.
$TTL 3600
@       IN SOA ns1.dns-host.net. hostmaster 1 7200 900 1209600 300
@       IN NS  ns1.dns-host.net.
"""


@pytest.fixture
def zone(tmp_path: Path) -> Callable[[str], list[Record]]:
    """Write HEADER + body to a zone file and load it the way the CLI does."""

    def load(body: str) -> list[Record]:
        path = tmp_path / "example.com.zone"
        path.write_text(HEADER + body, encoding="utf-8")
        return load_zone_file(path)[1]

    return load
