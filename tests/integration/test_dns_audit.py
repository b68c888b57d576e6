"""Live mode end to end: a tiny authoritative DNS server on 127.0.0.1 (an ephemeral UDP port)
serves a zone with known leaks, and `dns audit --names ... --nameserver 127.0.0.1:PORT` finds
them through click's CliRunner. Every wait is bounded: socket timeouts, resolver lifetimes and
the server thread's join."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from click.testing import CliRunner

from originguard.dns.commands import dns as dns_group

pytestmark = pytest.mark.integration

ORIGIN = "203.0.113.10"
EDGE = "192.0.2.1"

ZONE = f"""$ORIGIN example.test.
$TTL 300
@          IN SOA ns hostmaster 1 3600 600 86400 60
@          IN NS  ns
ns         IN A   198.51.100.53
@          IN A   {ORIGIN}
www        IN CNAME edge-host
edge-host  IN A   {EDGE}
shop       IN CNAME origin-host
origin-host IN A  {ORIGIN}
@          IN MX  10 mail
mail       IN A   {ORIGIN}
@          IN TXT "v=spf1 include:_spf.example.test -all"
_spf       IN TXT "v=spf1 ip4:203.0.113.0/24 -all"
*.app      IN A   {ORIGIN}
"""


class AuthoritativeServer:
    """Answers UDP queries for one zone like an authoritative server: AA set, in-zone CNAMEs
    chased, wildcards synthesised (one level), NXDOMAIN with the SOA, REFUSED outside."""

    def __init__(self, zone_text: str) -> None:
        self.zone = dns.zone.from_text(zone_text, relativize=False)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # bounded wait so the loop sees the stop flag
        self.port: int = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.queries = 0

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries += 1
            self.sock.sendto(self.answer(wire), peer)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        origin = self.zone.origin
        assert origin is not None
        if not qname.is_subdomain(origin):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        for _ in range(8):
            owner, node = qname, self.zone.get_node(qname)
            if node is None and len(qname) > len(origin):
                node = self.zone.get_node(dns.name.Name(("*",) + qname.labels[1:]))
            if node is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                    soa = self.zone.get_rdataset(origin, dns.rdatatype.SOA)
                    assert soa is not None
                    response.authority.append(dns.rrset.from_rdata_list(origin, 60, list(soa)))
                break
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is not None and qtype != dns.rdatatype.CNAME:
                response.answer.append(dns.rrset.from_rdata_list(owner, cname.ttl, list(cname)))
                qname = next(iter(cname)).target
                if not qname.is_subdomain(origin):
                    break
                continue
            found = node.get_rdataset(dns.rdataclass.IN, qtype)
            if found is not None:
                response.answer.append(dns.rrset.from_rdata_list(owner, found.ttl, list(found)))
            break
        return response.to_wire()

    def __enter__(self) -> AuthoritativeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        self.sock.close()
        assert not self.thread.is_alive()


@pytest.fixture
def server() -> Iterator[AuthoritativeServer]:
    with AuthoritativeServer(ZONE) as running:
        yield running


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(dns_group, list(args))
    return result.exit_code, result.output


def test_live_audit_finds_the_leaks_served_by_a_real_nameserver(
    server: AuthoritativeServer,
) -> None:
    code, output = run(
        "audit",
        "--names",
        "example.test,www.example.test,shop.example.test,x.app.example.test,missing.example.test",
        "--nameserver",
        f"127.0.0.1:{server.port}",
        "--timeout",
        "2",
        "--origin-ip",
        ORIGIN,
        "--edge-ip",
        EDGE,
        "--proxied",
        "www.example.test",
        "--format",
        "json",
    )
    assert code == 1, output
    found = {(f["rule"], f["record"]["name"]) for f in json.loads(output)["findings"]}
    assert found >= {
        ("origin-address-published", "example.test"),  # apex A on the origin
        ("cname-origin", "shop.example.test"),  # CNAME chain ending at the origin
        ("origin-address-published", "origin-host.example.test"),
        ("mx-origin", "example.test"),  # MX host on the origin, resolved live
        ("spf-origin", "_spf.example.test"),  # reached through include: over the wire
        ("origin-address-published", "x.app.example.test"),  # wildcard answer
        ("name-unresolved", "missing.example.test"),
    }
    assert not [name for _, name in found if name.startswith("www")]  # proxied, at the edge
    assert server.queries > 0


def test_live_audit_of_a_clean_proxied_name_exits_0(server: AuthoritativeServer) -> None:
    code, output = run(
        "audit",
        "--names",
        "www.example.test",
        "--nameserver",
        f"127.0.0.1:{server.port}",
        "--timeout",
        "2",
        "--origin-ip",
        ORIGIN,
        "--edge-ip",
        EDGE,
        "--proxied",
        "www.example.test",
    )
    assert (code, output) == (0, "No origin leaks found.\n")


def test_live_export_answers_proxied_names_with_the_edge(server: AuthoritativeServer) -> None:
    code, output = run(
        "export",
        "--names",
        "example.test,shop.example.test",
        "--nameserver",
        f"127.0.0.1:{server.port}",
        "--timeout",
        "2",
        "--zone-name",
        "example.test",
        "--edge-ip",
        EDGE,
        "--proxied",
        "example.test",
        "--proxied",
        "shop.example.test",
    )
    assert code == 0, output
    lines = [line for line in output.splitlines() if not line.startswith(("$", ";"))]
    apex = [line for line in lines if line.startswith("example.test.")]
    shop = [line for line in lines if line.startswith("shop.example.test.")]
    assert [line.split("\t")[3:5] for line in apex if "\tA\t" in line] == [["A", EDGE]]
    assert [line.split("\t")[3:5] for line in shop] == [["A", EDGE]]


def test_a_silent_nameserver_is_a_bounded_error_not_a_hang() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        code, output = run(
            "audit",
            "--names",
            "example.test",
            "--nameserver",
            f"127.0.0.1:{silent.getsockname()[1]}",
            "--timeout",
            "0.3",
            "--origin-ip",
            ORIGIN,
        )
    finally:
        silent.close()
    assert code == 2
    assert "none of the names resolved" in output and "timeout" in output
