"""Headers the edge writes, regenerates and strips (spec: forwarding headers; rule G5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.client import Client, build
from support.edge import Edge, edge_config, site_config, zone_config
from support.origin import Origin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    origin = Origin("a").start()
    yield origin
    origin.stop()


@pytest.fixture(scope="module")
def edge(module_edges, origin: Origin) -> Edge:
    """No trusted proxies: the TCP peer is the visitor. Zone `override` rewrites Host."""
    return module_edges(
        edge_config(
            zone_config("site", origin.address),
            zone_config("override", origin.address, host_header="internal.example:8443"),
        )
    )


@pytest.fixture(scope="module")
def edge_behind_proxy(module_edges, origin: Origin) -> Edge:
    """The test client on 127.0.0.1 plays a trusted proxy in front of the edge."""
    return module_edges(site_config(origin.address, trusted_proxies=["127.0.0.0/8"]))


@pytest.fixture(autouse=True)
def fresh_record(origin: Origin) -> None:
    origin.forget()


def test_untrusted_x_forwarded_for_is_replaced_by_the_peer_address(
    edge: Edge, origin: Origin
) -> None:
    reply = edge.get("/", headers=[("X-Forwarded-For", "203.0.113.9")])

    seen = origin.requests[0]
    assert reply.status == 200
    assert seen.header_values("x-forwarded-for") == ["127.0.0.1"]
    assert seen.header_values("og-connecting-ip") == ["127.0.0.1"]
    assert edge.log_for_ray(reply.header("og-ray"))["client_ip"] == "127.0.0.1"


def test_trusted_proxy_x_forwarded_for_is_appended_and_names_the_visitor(
    edge_behind_proxy: Edge, origin: Origin
) -> None:
    reply = edge_behind_proxy.get("/", headers=[("X-Forwarded-For", "203.0.113.9")])

    seen = origin.requests[0]
    assert seen.header_values("x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
    assert seen.header_values("og-connecting-ip") == ["203.0.113.9"]
    assert edge_behind_proxy.log_for_ray(reply.header("og-ray"))["client_ip"] == "203.0.113.9"


def test_visitor_is_the_rightmost_address_that_is_not_a_trusted_proxy(
    edge_behind_proxy: Edge, origin: Origin
) -> None:
    edge_behind_proxy.get(
        "/", headers=[("X-Forwarded-For", "198.51.100.1, 203.0.113.9"),
                      ("X-Forwarded-For", "127.0.0.5")]
    )

    seen = origin.requests[0]
    assert seen.header("og-connecting-ip") == "203.0.113.9"
    assert seen.header_values("x-forwarded-for") == [
        "198.51.100.1, 203.0.113.9, 127.0.0.5, 127.0.0.1"
    ]


def test_garbage_in_trusted_x_forwarded_for_falls_back_to_the_peer(
    edge_behind_proxy: Edge, origin: Origin
) -> None:
    edge_behind_proxy.get("/", headers=[("X-Forwarded-For", "not-an-ip")])

    assert origin.requests[0].header("og-connecting-ip") == "127.0.0.1"


def test_proto_host_and_via_are_set_for_the_origin(edge: Edge, origin: Origin) -> None:
    edge.get(
        "/",
        host="Site.Test:8080",
        headers=[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test"),
                 ("Via", "1.0 corporate-proxy")],
    )

    seen = origin.requests[0]
    assert seen.header_values("x-forwarded-proto") == ["http"]
    # The canonical host that routing, rules and the cache key saw (rule G6), never the raw
    # field: a port or upper case there would let one client poison another's cache entry.
    assert seen.header_values("x-forwarded-host") == ["site.test"]
    assert seen.header_values("host") == ["site.test"]
    assert seen.header_values("via") == ["1.0 corporate-proxy, 1.1 originguard"]


def test_client_sent_identity_headers_never_reach_the_origin(
    edge: Edge, origin: Origin
) -> None:
    edge.get(
        "/",
        headers=[
            ("OG-Connecting-IP", "6.6.6.6"),
            ("og-connecting-ip", "7.7.7.7"),
            ("X-Real-IP", "6.6.6.6"),
            ("True-Client-IP", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("OG-Ray", "forged-ray"),
        ],
    )

    seen = origin.requests[0]
    assert seen.header_values("og-connecting-ip") == ["127.0.0.1"]
    for name in ("x-real-ip", "true-client-ip", "forwarded", "x-original-url", "x-rewrite-url"):
        assert seen.header(name) is None, name
    assert seen.header_values("og-ray") != ["forged-ray"]
    assert len(seen.header_values("og-ray")) == 1


def test_every_response_carries_a_unique_ray_that_the_origin_and_log_share(
    edge: Edge, origin: Origin
) -> None:
    with Client(edge.port) as client:
        replies = [client.request("GET", f"/r{i}") for i in range(5)]
    not_found = edge.get("/", host="nowhere.test")

    rays = [r.header("og-ray") for r in replies]
    assert all(rays) and len(set(rays)) == 5
    assert [r.header("og-ray") for r in origin.requests] == rays
    assert rays[0].endswith("-og1")
    assert edge.log_for_ray(rays[3])["path"] == "/r3"
    assert not_found.status == 421
    assert not_found.header("og-ray") not in rays
    assert edge.log_for_ray(not_found.header("og-ray"))["status"] == 421


def test_hop_by_hop_request_headers_are_stripped_including_connection_options(
    edge: Edge, origin: Origin
) -> None:
    edge.get(
        "/",
        headers=[
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "edge-to-edge secret"),
            ("Keep-Alive", "timeout=300"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("Proxy-Connection", "keep-alive"),
            ("X-Kept", "yes"),
        ],
    )

    names = {name for name, _ in origin.requests[0].headers}
    assert names.isdisjoint(
        {"connection", "x-private", "keep-alive", "te", "trailer", "proxy-authorization",
         "proxy-connection"}
    ), names
    assert origin.requests[0].header("x-kept") == "yes"


def test_hop_by_hop_response_headers_are_stripped_including_connection_options(
    edge: Edge,
) -> None:
    with Client(edge.port) as client:
        reply = client.request("GET", "/hop")
        after = client.request("GET", "/after")

    names = {name for name, _ in reply.headers}
    assert names.isdisjoint(
        {"connection", "keep-alive", "x-secret", "proxy-authenticate", "upgrade", "trailer"}
    ), names
    assert reply.header("x-kept") == "yes"
    assert reply.body == b"hop"
    assert after.status == 200  # the client connection stayed open


def test_request_that_names_a_regenerated_header_in_connection_keeps_the_edge_copy(
    edge: Edge, origin: Origin
) -> None:
    edge.get("/", headers=[("Connection", "X-Forwarded-For, Via")])

    seen = origin.requests[0]
    assert seen.header_values("x-forwarded-for") == ["127.0.0.1"]
    assert seen.header_values("via") == ["1.1 originguard"]


def test_host_header_override_replaces_the_host_sent_to_the_origin(
    edge: Edge, origin: Origin
) -> None:
    reply = edge.get("/", host="override.test")

    seen = origin.requests[0]
    assert reply.status == 200
    assert seen.header_values("host") == ["internal.example:8443"]
    assert seen.header("x-forwarded-host") == "override.test"


def test_response_from_http10_request_keeps_alive_only_when_asked(edge: Edge) -> None:
    with Client(edge.port) as client:
        client.send(build("GET", "/", version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
        kept = client.read_reply()
        client.send(build("GET", "/", version="HTTP/1.0"))
        closed = client.read_reply()
        assert client.is_closed()

    assert kept.header("connection") == "keep-alive"
    assert closed.header("connection") == "close"
