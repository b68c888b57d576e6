"""Zero-downtime failover and the edge's own error pages (spec §2.2, §3).

521/522/523 mean nothing reached the origin, so the edge retries once on another origin of the
pool; 520 and 524 mean the origin may have acted on the request, so they are never retried.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from support.client import Client, ClientError, build
from support.edge import Edge, private_resolver, site_config
from support.origin import Blackhole, pattern_bytes, refused_address

from originguard.outcome import OriginError
from originguard.upstream.connection import OriginFailure, connect

pytestmark = pytest.mark.integration

FAST = {"connect": "300ms", "response_head": "500ms"}


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


def attempts(edge: Edge, reply) -> list[tuple[int, str]]:
    """(status, error kind) of each origin attempt, from the access log line of `reply`."""
    entry = edge.log_for_ray(reply.header("og-ray"))
    return [(a["status"], a["error"]) for a in entry["attempts"]]


def assert_edge_page(reply, status: int, *hidden: str) -> None:
    """An edge error page: the code, the ray id, no traceback, none of `hidden`."""
    ray = reply.header("og-ray")
    assert reply.status == status
    assert reply.header("content-type") == "text/html; charset=utf-8"
    assert reply.header("cache-control") == "no-store"
    assert f"Error {status}" in reply.text
    assert ray and f"Ray ID: <code>{ray}</code>" in reply.text
    assert "Your IP: 127.0.0.1" in reply.text
    assert "Traceback" not in reply.text
    for secret in hidden:
        assert secret not in reply.text


# -- 521: connection refused -------------------------------------------------------------------


def test_second_origin_serves_when_first_refuses_connection(start_edge, origin_b) -> None:
    down = refused_address()
    edge = start_edge(site_config(down, origin_b.address))

    replies = [edge.get(f"/r{i}") for i in range(4)]

    assert [r.status for r in replies] == [200] * 4
    assert {r.header("x-origin") for r in replies} == {"b"}
    retried = [r for r in replies if attempts(edge, r) == [(521, "refused"), (200, "")]]
    assert retried
    entry = edge.log_for_ray(retried[0].header("og-ray"))
    assert entry["outcome"] == "retried"
    assert [a["origin"] for a in entry["attempts"]] == [down, origin_b.address]


def test_stopping_an_origin_mid_traffic_causes_no_client_errors(
    start_edge, origin_a, origin_b
) -> None:
    edge = start_edge(site_config(origin_a.address, origin_b.address))
    statuses: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_after = threading.Event()

    def visitor(count: int) -> None:
        with Client(edge.port) as client:
            for i in range(count):
                try:
                    reply = client.request("GET", f"/v{i}")
                except (ClientError, OSError) as error:
                    errors.append(repr(error))
                    return
                with lock:
                    statuses.append(reply.status)
                    if len(statuses) >= 15:
                        stop_after.set()

    threads = [threading.Thread(target=visitor, args=(15,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert stop_after.wait(10)
    origin_a.stop()
    for thread in threads:
        thread.join(20)

    assert errors == []
    assert statuses == [200] * 60
    assert len(origin_a.requests) >= 1
    after = [edge.get(f"/after{i}") for i in range(6)]
    assert {r.header("x-origin") for r in after} == {"b"}


def test_crashed_origin_with_pooled_connections_is_hidden_from_clients(
    start_edge, origin_a, origin_b
) -> None:
    edge = start_edge(site_config(origin_a.address, origin_b.address))
    warm = [edge.get(f"/w{i}") for i in range(6)]
    origin_a.stop(abort=True)

    replies = [edge.get(f"/r{i}") for i in range(10)]

    assert {r.header("x-origin") for r in warm} == {"a", "b"}
    assert [r.status for r in replies] == [200] * 10
    assert {r.header("x-origin") for r in replies} == {"b"}


def test_dead_pooled_connections_are_retried_on_a_new_connection_not_another_pooled_one(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    with Client(edge.port) as first, Client(edge.port) as second:
        first.send(build("GET", "/hold/two"))
        second.send(build("GET", "/hold/two"))
        origin_a.wait_for_requests(2)
        origin_a.release("two")
        assert first.read_reply().status == second.read_reply().status == 200
    # The edge now pools two connections; each drops whatever request comes next on it.

    reply = edge.get("/first-per-connection")

    assert reply.status == 200
    assert reply.body == b"first on connection 3"


def test_every_origin_refused_gives_521_page_without_internal_addresses(start_edge) -> None:
    first, second, third = refused_address(), refused_address(), refused_address()
    edge = start_edge(site_config(first, second, third))

    reply = edge.get("/")

    assert_edge_page(reply, 521, first, second, third, "127.0.0.1:", "connection refused")
    assert reply.header("og-error-type") == "52x"
    assert "The web server is down." in reply.text
    # Exactly one retry, never a third try.
    assert attempts(edge, reply) == [(521, "refused"), (521, "refused")]
    entry = edge.log_for_ray(reply.header("og-ray"))
    assert entry["outcome"] == "edge_error"


def test_single_refusing_origin_is_tried_once(start_edge) -> None:
    edge = start_edge(site_config(refused_address()))

    reply = edge.get("/")

    assert reply.status == 521
    assert attempts(edge, reply) == [(521, "refused")]


def test_error_page_is_json_when_the_client_accepts_json(start_edge) -> None:
    edge = start_edge(site_config(refused_address()))

    reply = edge.get("/api", headers=[("Accept", "application/json")])

    document = json.loads(reply.body)
    assert reply.status == 521
    assert reply.header("content-type") == "application/json"
    assert document["status"] == 521
    assert document["title"] == "Web Server Is Down"
    assert document["ray_id"] == reply.header("og-ray")
    assert document["client_ip"] == "127.0.0.1"
    assert "127.0.0.1:" not in reply.text


def test_post_is_retried_on_refusal_because_nothing_reached_the_origin(
    start_edge, origin_b
) -> None:
    edge = start_edge(site_config(refused_address(), origin_b.address))

    replies = [edge.request("POST", "/echo", body=f"order {i}".encode()) for i in range(4)]

    assert [r.status for r in replies] == [200] * 4
    assert [r.body for r in replies] == [f"order {i}".encode() for i in range(4)]
    assert [r.body for r in origin_b.requests] == [f"order {i}".encode() for i in range(4)]


def test_streamed_upload_is_retried_on_refusal(start_edge, origin_b) -> None:
    edge = start_edge(site_config(refused_address(), origin_b.address))
    body = pattern_bytes(400 * 1024)

    replies = [edge.request("PUT", "/upload", body=body) for _ in range(2)]

    assert [r.status for r in replies] == [200, 200]
    assert [r.body_size for r in origin_b.requests] == [len(body)] * 2
    assert all(r.body == body for r in origin_b.requests)


def test_refusal_outside_failover_codes_is_not_retried(start_edge, origin_b) -> None:
    down = refused_address()
    edge = start_edge(site_config(down, origin_b.address, zone={"failover_codes": [522]}))

    replies = [edge.get(f"/r{i}") for i in range(2)]

    assert sorted(r.status for r in replies) == [200, 521]
    refused = next(r for r in replies if r.status == 521)
    assert attempts(edge, refused) == [(521, "refused")]


# -- 522: connect timeout ----------------------------------------------------------------------


def test_connect_timeout_gives_522(start_edge, blackhole: Blackhole) -> None:
    edge = start_edge(site_config(blackhole.address, zone={"timeouts": FAST}))
    started = time.monotonic()

    reply = edge.get("/")

    assert_edge_page(reply, 522, blackhole.address)
    assert time.monotonic() - started < 3
    assert attempts(edge, reply) == [(522, "connect_timeout")]


def test_second_origin_serves_when_first_times_out_connecting(
    start_edge, blackhole: Blackhole, origin_b
) -> None:
    edge = start_edge(
        site_config(blackhole.address, origin_b.address, zone={"timeouts": FAST})
    )

    replies = [edge.get(f"/r{i}") for i in range(2)]

    assert [r.status for r in replies] == [200, 200]
    assert [(522, "connect_timeout"), (200, "")] in [attempts(edge, r) for r in replies]


# -- 523: unreachable / name does not resolve --------------------------------------------------


def _resolver_or_skip(tmp_path) -> list[str]:
    wrapper = private_resolver(tmp_path)
    if wrapper is None:
        pytest.skip("needs a mount namespace (root) to give the edge a loopback-only resolver")
    return wrapper


def test_origin_name_that_does_not_resolve_gives_523(start_edge, tmp_path) -> None:
    wrapper = _resolver_or_skip(tmp_path)
    edge = start_edge(site_config("origin.invalid:8080"), wrapper=wrapper)

    reply = edge.get("/")

    assert_edge_page(reply, 523, "origin.invalid", "name lookup", "resolution")
    assert attempts(edge, reply) == [(523, "unreachable")]


def test_second_origin_serves_when_first_name_does_not_resolve(
    start_edge, tmp_path, origin_b
) -> None:
    wrapper = _resolver_or_skip(tmp_path)
    edge = start_edge(site_config("origin.invalid:8080", origin_b.address), wrapper=wrapper)

    replies = [edge.get(f"/r{i}") for i in range(2)]

    assert [r.status for r in replies] == [200, 200]
    assert [(523, "unreachable"), (200, "")] in [attempts(edge, r) for r in replies]


def test_name_lookup_failure_is_classified_as_unreachable(monkeypatch) -> None:
    """The classification behind 523, without any DNS traffic: getaddrinfo fails."""

    async def failing_getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def attempt() -> OriginFailure:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "getaddrinfo", failing_getaddrinfo)
        result = await connect("origin.invalid", 80, 1.0, lambda conn: None)
        assert isinstance(result, OriginFailure)
        return result

    failure = asyncio.run(attempt())

    assert failure.code is OriginError.UNREACHABLE
    assert failure.sent is False


# -- 520 and 524: never retried ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/drop", "/garbage"])
def test_broken_reply_gives_520_and_is_not_retried(
    start_edge, origin_a, origin_b, path: str
) -> None:
    edge = start_edge(site_config(origin_a.address, origin_b.address))

    # A POST: the origin may have acted on it, so it must never be sent a second time.
    reply = edge.request("POST", path, body=b"charge card")

    assert_edge_page(reply, 520, origin_a.address, origin_b.address, "THIS IS NOT HTTP")
    assert len(origin_a.requests) + len(origin_b.requests) == 1
    assert attempts(edge, reply) == [(520, "invalid_response")]


def test_slow_response_head_gives_524_and_is_not_retried(
    start_edge, origin_a, origin_b
) -> None:
    edge = start_edge(
        site_config(origin_a.address, origin_b.address, zone={"timeouts": FAST})
    )
    started = time.monotonic()

    reply = edge.request("POST", "/hold/never", body=b"charge card")

    assert_edge_page(reply, 524, origin_a.address, origin_b.address)
    assert 0.5 <= time.monotonic() - started < 3
    assert len(origin_a.requests) + len(origin_b.requests) == 1
    assert attempts(edge, reply) == [(524, "response_timeout")]


def test_response_cut_short_by_the_origin_breaks_the_client_connection(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))

    with Client(edge.port) as client:
        client.send(build("GET", "/truncated/10000"))
        with pytest.raises(ClientError, match="body bytes missing"):
            client.read_reply()

    entry = edge.wait_for_log(lambda e: e.get("path") == "/truncated/10000")
    assert entry["outcome"] == "origin_abort"


# -- no zone, no origin --------------------------------------------------------------------


def test_unknown_host_gets_421_page_and_reaches_no_origin(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))

    reply = edge.get("/", host="other.test")

    assert_edge_page(reply, 421, origin_a.address)
    assert "This site is not served here." in reply.text
    assert origin_a.requests == []
    assert edge.log_for_ray(reply.header("og-ray"))["outcome"] == "no_zone"


def test_wildcard_hostname_routes_subdomains(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address, hostnames=["*.site.test"]))

    deep = edge.get("/", host="a.b.site.test")
    apex = edge.get("/", host="site.test")

    assert deep.status == 200
    assert apex.status == 421


def test_every_pool_disabled_gives_530(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address, pool={"enabled": False}))

    reply = edge.get("/")

    assert_edge_page(reply, 530, origin_a.address)
    assert reply.header("og-error-type") == "530"
    assert origin_a.requests == []
    assert edge.log_for_ray(reply.header("og-ray"))["outcome"] == "no_origin"


def test_every_origin_disabled_or_weightless_gives_530(start_edge, origin_a, origin_b) -> None:
    config = site_config(origin_a.address, origin_b.address)
    config["zones"][0]["pools"][0]["origins"] = [
        {"address": origin_a.address, "enabled": False},
        {"address": origin_b.address, "weight": 0},
    ]
    edge = start_edge(config)

    reply = edge.get("/")

    assert reply.status == 530
    assert origin_a.requests == origin_b.requests == []


def test_backup_pool_serves_when_first_pool_is_disabled(start_edge, origin_a, origin_b) -> None:
    config = site_config(origin_a.address, pool={"enabled": False})
    config["zones"][0]["pools"].append(
        {"name": "backup", "origins": [{"address": origin_b.address}]}
    )
    edge = start_edge(config)

    reply = edge.get("/")

    assert reply.status == 200
    assert reply.header("x-origin") == "b"
