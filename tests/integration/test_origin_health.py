"""Origin health through the real edge: active checks move traffic, pools fail over to the
fallback, 530 when nothing may serve, cookie affinity, passive outlier ejection, and the
webhook that hears about it (spec §3-§6).

Origins here answer `/health` with whatever the test sets, so a check fails or passes on cue.
Monitors probe every second; every wait is a bounded poll of the admin API, never a sleep.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support.edge import Edge
from support.origin import Origin, SeenRequest

pytestmark = pytest.mark.integration

MONITOR = {"interval": "1s", "timeout": "500ms", "retries": 0, "path": "/health"}
WAIT = 8.0  # a flip needs one interval (1 s, +-10 % jitter) plus the probe


class HealthOrigin(Origin):
    """A test origin whose `/health` answer and whose other answers the test can change."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.health_status = 200
        self.health_body = "ok"
        self.serve_status = 200  # 500: every non-health request fails

    async def _answer(self, conn: Any, request: SeenRequest) -> bool:
        path = request.target.split("?", 1)[0]
        if path == "/health":
            return self._raw(conn, self.health_status, self.health_body.encode())
        if self.serve_status != 200:
            return self._raw(conn, self.serve_status, b"origin failure")
        return await super()._answer(conn, request)

    def _raw(self, conn: Any, status: int, body: bytes) -> bool:
        conn.writer.write(
            b"HTTP/1.1 %d X\r\nx-origin: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (status, self.name.encode(), len(body), body)
        )
        return True


@pytest.fixture
def origins() -> Iterator[Callable[[str], HealthOrigin]]:
    started: list[HealthOrigin] = []

    def start(name: str) -> HealthOrigin:
        origin = HealthOrigin(name)
        origin.start()
        started.append(origin)
        return origin

    yield start
    for origin in started:
        origin.stop()


class WebhookReceiver:
    """A loopback HTTP server that keeps every POST body and its headers."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.received.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def balanced_config(
    pools: list[tuple[str, list[HealthOrigin]]], lb: dict[str, Any], **top: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "admin": {"listen": "127.0.0.1:0"},
        "health": {"monitors": {"web": MONITOR}},
        "zones": [
            {
                "name": "site",
                "hostnames": ["site.test"],
                "pools": [
                    {
                        "name": name,
                        "steering": "round_robin",
                        "origins": [{"address": o.address} for o in members],
                    }
                    for name, members in pools
                ],
                "load_balancer": lb,
            }
        ],
    }
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def eventually(check: Callable[[], Any], timeout: float = WAIT, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def health(edge: Edge) -> dict[str, Any]:
    reply = edge.admin("/health?results=5")
    assert reply.status == 200
    document: dict[str, Any] = json.loads(reply.body)
    return document


def origin_state(edge: Edge, origin: HealthOrigin) -> str:
    for zone in health(edge)["zones"]:
        for pool in zone["pools"]:
            for entry in pool["origins"]:
                if entry["address"] == origin.address:
                    return str(entry["health"])
    raise AssertionError(f"{origin.address} not in /health")


def wait_state(edge: Edge, origin: HealthOrigin, state: str) -> None:
    eventually(lambda: origin_state(edge, origin) == state, what=f"{origin.name} {state}")


def served_by(edge: Edge, count: int, **kwargs: Any) -> list[str]:
    names = []
    for _ in range(count):
        reply = edge.get("/page", **kwargs)
        assert reply.status == 200, reply.text
        names.append(reply.header("x-origin") or "?")
    return names


# -- active checks ------------------------------------------------------------------------------


def test_origin_failing_its_health_check_gets_no_traffic_until_it_recovers(
    start_edge, origins
) -> None:
    a, b = origins("a"), origins("b")
    edge = start_edge(
        balanced_config([("main", [a, b])], {"pools": [{"name": "main", "monitor": "web"}]})
    )
    wait_state(edge, a, "healthy")
    wait_state(edge, b, "healthy")
    assert set(served_by(edge, 4)) == {"a", "b"}

    b.health_status = 503
    wait_state(edge, b, "unhealthy")
    assert served_by(edge, 10) == ["a"] * 10

    b.health_status = 200
    wait_state(edge, b, "healthy")
    assert "b" in served_by(edge, 4)


def test_health_api_records_each_result_with_latency_and_failure_reason(
    start_edge, origins
) -> None:
    a = origins("a")
    a.health_body = "maintenance"
    monitor = {**MONITOR, "expected_body": "OK"}
    edge = start_edge(
        balanced_config(
            [("main", [a])],
            {"pools": [{"name": "main", "monitor": "web"}]},
            health={"monitors": {"web": monitor}},
        )
    )
    wait_state(edge, a, "unhealthy")
    entry = health(edge)["zones"][0]["pools"][0]["origins"][0]
    assert entry["failure_reason"] == "Response body mismatch error"
    latest = entry["results"][0]
    assert latest["ok"] is False and latest["status"] == 200 and latest["latency"] >= 0

    a.health_body = "all OK here"  # expected_body is a case-insensitive substring
    wait_state(edge, a, "healthy")
    metrics = edge.admin("/metrics").text
    assert f'og_origin_healthy{{origin="{a.address}",pool="main",zone="site"}} 1.0' in metrics
    assert 'og_health_check_seconds_count{pool="main",zone="site"}' in metrics
    assert 'result="Response body mismatch error"' in metrics


# -- pools, fallback, 530 -----------------------------------------------------------------------


def test_traffic_fails_over_pool_by_pool_to_the_fallback_and_back(start_edge, origins) -> None:
    a, b, c = origins("a"), origins("b"), origins("c")
    lb = {
        "pools": [
            {"name": "primary", "monitor": "web"},
            {"name": "secondary", "monitor": "web"},
            {"name": "last", "monitor": "web"},
        ],
        "fallback_pool": "last",
    }
    edge = start_edge(balanced_config([("primary", [a]), ("secondary", [b]), ("last", [c])], lb))
    for origin in (a, b, c):
        wait_state(edge, origin, "healthy")
    assert served_by(edge, 3) == ["a"] * 3

    a.health_status = 500
    wait_state(edge, a, "unhealthy")
    assert served_by(edge, 3) == ["b"] * 3

    b.health_status = 500
    c.health_status = 500  # the fallback's own health is never considered (spec §6.3)
    wait_state(edge, b, "unhealthy")
    wait_state(edge, c, "unhealthy")
    assert served_by(edge, 3) == ["c"] * 3
    assert health(edge)["zones"][0]["health"] == "critical"

    a.health_status = 200
    wait_state(edge, a, "healthy")
    assert served_by(edge, 3) == ["a"] * 3


def test_edge_answers_530_when_no_pool_is_healthy_and_the_fallback_is_disabled(
    start_edge, origins
) -> None:
    a, b = origins("a"), origins("b")
    lb = {
        "pools": [{"name": "primary", "monitor": "web"}, {"name": "spare", "enabled": False}],
    }
    edge = start_edge(balanced_config([("primary", [a]), ("spare", [b])], lb))
    wait_state(edge, a, "healthy")
    a.health_status = 500
    wait_state(edge, a, "unhealthy")

    reply = edge.get("/page")

    assert reply.status == 530
    assert "Error 530" in reply.text and a.address not in reply.text
    assert not [r for r in b.requests if r.target == "/page"]


# -- session affinity ---------------------------------------------------------------------------


def test_cookie_affinity_keeps_a_visitor_on_one_origin_and_moves_it_when_that_one_fails(
    start_edge, origins
) -> None:
    a, b = origins("a"), origins("b")
    lb = {"pools": [{"name": "main", "monitor": "web"}], "affinity": {"mode": "cookie"}}
    edge = start_edge(balanced_config([("main", [a, b])], lb))
    wait_state(edge, a, "healthy")
    wait_state(edge, b, "healthy")

    first = edge.get("/page")
    set_cookie = first.header("set-cookie") or ""
    assert set_cookie.startswith("__oglb=") and "HttpOnly" in set_cookie
    assert "Max-Age=82800" in set_cookie  # 23 h default (spec §6.6)
    assert a.address not in set_cookie and b.address not in set_cookie
    pinned = first.header("x-origin")
    cookie = [("Cookie", set_cookie.split(";", 1)[0])]
    assert served_by(edge, 8, headers=cookie) == [pinned] * 8
    assert set(served_by(edge, 4)) == {"a", "b"}  # without the cookie: round robin

    (a if pinned == "a" else b).health_status = 500
    other = "b" if pinned == "a" else "a"
    wait_state(edge, a if pinned == "a" else b, "unhealthy")
    moved = edge.get("/page", headers=cookie)
    assert moved.header("x-origin") == other
    assert (moved.header("set-cookie") or "").startswith("__oglb=")  # re-pinned


# -- passive outlier detection -------------------------------------------------------------------


def test_origin_answering_5xx_in_a_row_is_ejected_while_the_other_serves(
    start_edge, origins
) -> None:
    a, b = origins("a"), origins("b")
    lb = {
        "pools": [{"name": "main"}],  # no monitor: only real traffic judges the origins
        "outlier": {"consecutive_failures": 3, "base_ejection": "60s"},
    }
    edge = start_edge(balanced_config([("main", [a, b])], lb))
    b.serve_status = 500

    statuses = [edge.get("/page").status for _ in range(6)]  # round robin: b fails 3 times
    assert statuses.count(500) == 3

    def b_ejected() -> bool:
        pool = health(edge)["zones"][0]["pools"][0]
        return any(o["address"] == b.address and o["ejected"] for o in pool["origins"])

    eventually(b_ejected, what="b ejected")
    assert served_by(edge, 10) == ["a"] * 10
    assert f'og_outlier_ejections_total{{origin="{b.address}"' in edge.admin("/metrics").text


def test_panic_mode_sends_traffic_to_an_ejected_pool_rather_than_to_none(
    start_edge, origins
) -> None:
    a = origins("a")
    lb = {"pools": [{"name": "main"}], "outlier": {"consecutive_failures": 2}}
    edge = start_edge(balanced_config([("main", [a])], lb))
    a.serve_status = 500
    assert [edge.get("/page").status for _ in range(2)] == [500, 500]
    eventually(lambda: health(edge)["zones"][0]["pools"][0]["origins"][0]["ejected"])

    a.serve_status = 200
    assert edge.get("/page").status == 200  # the only origin is ejected, yet still used


# -- alerts ---------------------------------------------------------------------------------


def test_webhook_gets_one_signed_alert_per_health_change_and_a_recovery_notice(
    start_edge, origins, webhook
) -> None:
    a = origins("a")
    alerts = {"webhooks": [{"url": webhook.url, "secret_env": "OG_TEST_HOOK_KEY"}]}
    edge = start_edge(
        balanced_config(
            [("main", [a])],
            {"pools": [{"name": "main", "monitor": "web"}]},
            health={"alerts": alerts},
        ),
        env={"OG_TEST_HOOK_KEY": "hook-secret"},
    )
    wait_state(edge, a, "healthy")
    a.health_status = 500
    wait_state(edge, a, "unhealthy")
    eventually(lambda: len(webhook.alerts()) >= 1, what="down alert")

    a.health_status = 200
    wait_state(edge, a, "healthy")
    eventually(lambda: len(webhook.alerts()) >= 2, what="recovery alert")
    # a few more healthy probes: no duplicate notices may follow
    eventually(lambda: len(health(edge)["zones"][0]["pools"][0]["origins"][0]["results"]) >= 5)

    received = webhook.alerts()
    assert [(x["kind"], x["details"]["to"]) for x in received] == [
        ("health_check_status", "unhealthy"),
        ("health_check_status", "healthy"),
    ]
    assert received[0]["origin"] == a.address
    assert received[0]["details"]["reason"] == "Response code mismatch error"
    headers, body = webhook.received[0]
    stamp = headers["X-Originguard-Timestamp"]
    mac = hmac.new(b"hook-secret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Originguard-Signature"] == f"sha256={mac}"

    history = json.loads(edge.admin("/health/alerts").body)["alerts"]
    assert [x["details"]["to"] for x in history] == ["healthy", "unhealthy"]  # newest first
    assert all(d["ok"] for x in history for d in x["deliveries"])


def test_standalone_check_is_probed_and_alerted_on_without_a_pool(
    start_edge, origins, webhook
) -> None:
    a, watched = origins("a"), origins("watched")
    host, port = watched.address.split(":")
    checks = [{"name": "api", "address": host, "monitor": {**MONITOR, "port": int(port)}}]
    config = balanced_config(
        [("main", [a])],
        {"pools": [{"name": "main"}]},
        health={"checks": checks, "alerts": {"webhooks": [{"url": webhook.url}]}},
    )
    edge = start_edge(config)

    def check_state() -> str:
        return str(health(edge)["checks"][0].get("health"))

    eventually(lambda: check_state() == "healthy", what="check healthy")
    watched.stop()
    eventually(lambda: check_state() == "unhealthy", what="check unhealthy")
    eventually(lambda: webhook.alerts(), what="check alert")
    alert = webhook.alerts()[0]
    assert alert["zone"] == "check/api"
    assert alert["details"]["reason"] == "TCP connection failed"
