"""Origin health through the real edge: active checks move traffic, pools fail over to the
fallback, 530 when nothing may serve, cookie affinity, passive outlier ejection, and the
webhook that hears about it (spec §3-§6).

Origins here answer `/health` with whatever the test sets, so a check fails or passes on cue.
Monitors probe every second; every wait is a bounded poll of the admin API, never a sleep.
"""

from __future__ import annotations

import asyncio
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
        self.delay = 0.0  # seconds before any answer: a slowed origin

    def restart(self) -> None:
        """Listen again on the same port after `stop()` (a crashed origin coming back)."""
        self._stopping = False
        self.start()

    async def _answer(self, conn: Any, request: SeenRequest) -> bool:
        if self.delay:
            await asyncio.sleep(self.delay)  # the origin is slow; the test does not wait on it
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
        self.refuse_first = 0  # answer this many posts with 503 (the sender retries)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.received.append((dict(self.headers.items()), body))
                    refused = len(receiver.received) <= receiver.refuse_first
                self.send_response(503 if refused else 204)
                self.send_header("content-length", "0")
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


def test_an_alert_being_retried_across_a_reload_is_still_delivered(
    start_edge, origins, webhook
) -> None:
    webhook.refuse_first = 1
    a = origins("a")
    config = balanced_config(
        [("main", [a])],
        {"pools": [{"name": "main", "monitor": "web"}]},
        health={"alerts": {"webhooks": [{"url": webhook.url}]}},
    )
    edge = start_edge(config)
    wait_state(edge, a, "healthy")
    a.health_status = 500
    eventually(lambda: len(webhook.received) >= 1, what="the refused first delivery")
    edge.reload(config)  # during the 1 s backoff before the retry

    eventually(lambda: len(webhook.received) >= 2, what="the retried delivery")
    assert [x["details"]["to"] for x in webhook.alerts()] == ["unhealthy", "unhealthy"]


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


# -- a slowed origin ----------------------------------------------------------------------------


def test_slowed_origin_times_out_its_check_and_traffic_moves_until_it_is_fast_again(
    start_edge, origins
) -> None:
    a, b = origins("a"), origins("b")
    edge = start_edge(
        balanced_config([("main", [a, b])], {"pools": [{"name": "main", "monitor": "web"}]})
    )
    wait_state(edge, a, "healthy")
    wait_state(edge, b, "healthy")

    b.delay = 1.5  # longer than the monitor's 500 ms timeout
    wait_state(edge, b, "unhealthy")
    entry = health(edge)["zones"][0]["pools"][0]["origins"][1]
    assert entry["failure_reason"] == "HTTP timeout occurred"
    assert served_by(edge, 6) == ["a"] * 6

    b.delay = 0.0
    wait_state(edge, b, "healthy")
    assert "b" in served_by(edge, 4)


# -- zero-downtime failover with affinity (spec §3) ----------------------------------------------


def pinned_pair(
    start_edge: Callable[..., Edge], origins: Callable[[str], HealthOrigin], zdf: str
) -> tuple[Edge, HealthOrigin, HealthOrigin, list[tuple[str, str]]]:
    """An edge with cookie affinity over a and b; the pinned origin, the other, the cookie."""
    a, b = origins("a"), origins("b")
    affinity = {"mode": "cookie", "zero_downtime_failover": zdf}
    lb = {"pools": [{"name": "main", "monitor": "web"}], "affinity": affinity}
    edge = start_edge(balanced_config([("main", [a, b])], lb))
    wait_state(edge, a, "healthy")
    wait_state(edge, b, "healthy")
    first = edge.get("/page")
    cookie = [("Cookie", (first.header("set-cookie") or "").split(";", 1)[0])]
    pinned, other = (a, b) if first.header("x-origin") == "a" else (b, a)
    return edge, pinned, other, cookie


def test_zdf_temporary_serves_elsewhere_while_the_pin_is_down_and_returns_to_it(
    start_edge, origins
) -> None:
    edge, pinned, other, cookie = pinned_pair(start_edge, origins, "temporary")

    pinned.stop()  # refused at once: the failover retry serves it, before any check notices
    retried = edge.get("/page", headers=cookie)
    assert retried.status == 200 and retried.header("x-origin") == other.name
    assert retried.header("set-cookie") is None  # the pin is kept

    wait_state(edge, pinned, "unhealthy")
    while_down = edge.get("/page", headers=cookie)
    assert while_down.header("x-origin") == other.name
    assert while_down.header("set-cookie") is None

    pinned.restart()
    wait_state(edge, pinned, "healthy")
    assert served_by(edge, 4, headers=cookie) == [pinned.name] * 4


def test_zdf_sticky_moves_the_cookie_to_the_origin_that_served(start_edge, origins) -> None:
    edge, pinned, other, cookie = pinned_pair(start_edge, origins, "sticky")

    pinned.stop()
    moved = edge.get("/page", headers=cookie)
    assert moved.status == 200 and moved.header("x-origin") == other.name
    set_cookie = moved.header("set-cookie") or ""
    assert set_cookie.startswith("__oglb=")  # re-pinned to the origin that served
    new_cookie = [("Cookie", set_cookie.split(";", 1)[0])]

    wait_state(edge, pinned, "unhealthy")
    pinned.restart()
    wait_state(edge, pinned, "healthy")
    assert served_by(edge, 4, headers=new_cookie) == [other.name] * 4  # the new pin holds


# -- error-rate and passive-monitoring alerts through the edge (spec §4.1, §4.2) ------------------


def test_refused_origin_raises_one_passive_monitoring_and_one_error_rate_alert_then_a_recovery(
    start_edge, origins, webhook
) -> None:
    a, b = origins("a"), origins("b")
    alerts = {
        "webhooks": [{"url": webhook.url}],
        # drill-sized windows; the rules are the spec's. SLO 80 % and burn 3: origin a at 100 %
        # errors burns 5x, the zone (at most half of its attempts are a's) at most 2.5x.
        "short_window": "2s",
        "long_window": "6s",
        "passive_window": "2s",
        "min_requests": 5,
        "slo": 80,
        "burn_threshold": 3,
        "evaluate_every": "200ms",
    }
    lb = {"pools": [{"name": "main"}], "outlier": {"enabled": False}}
    edge = start_edge(balanced_config([("main", [a, b])], lb, health={"alerts": alerts}))
    assert served_by(edge, 4) == ["a", "b", "a", "b"]  # a served: it was reachable (spec §4.2)

    def kinds() -> list[str]:
        return sorted(f"{x['kind']} {x['origin']}" for x in webhook.alerts())

    def traffic_until(condition: Callable[[], bool], what: str) -> None:
        def step() -> bool:
            assert edge.get("/page").status == 200  # the failover retry hides every 521
            return condition()

        eventually(step, timeout=15.0, what=what)

    a.stop()
    expected_down = [f"origin_error_rate {a.address}", f"passive_origin_monitoring {a.address}"]
    traffic_until(lambda: kinds() == expected_down, "error-rate and passive alerts for a")
    passive = next(x for x in webhook.alerts() if x["kind"] == "passive_origin_monitoring")
    assert passive["details"]["window"] == 2.0 and "got 521" in passive["summary"]

    a.restart()
    recovered = f"origin_error_rate_recovered {a.address}"
    traffic_until(lambda: recovered in kinds(), "recovery notice for a")
    settled = time.monotonic() + 6.0  # one long window more of healthy traffic: nothing new
    traffic_until(lambda: time.monotonic() > settled, "a quiet long window")
    assert kinds() == sorted([*expected_down, recovered])


# -- email ----------------------------------------------------------------------------------------


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 (ephemeral port) in its own thread; keeps each message."""

    def __init__(self) -> None:
        smtp = pytest.importorskip("aiosmtpd.smtp")
        self.messages: list[tuple[str, list[str], bytes]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                with receiver._lock:
                    receiver.messages.append(
                        (envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
                    )
                return "250 OK"

        self._server = self._loop.run_until_complete(
            self._loop.create_server(
                lambda: smtp.SMTP(Handler(), hostname="inbox.test"), "127.0.0.1", 0
            )
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def subjects(self) -> list[str]:
        from email.parser import BytesParser
        from email.policy import default

        with self._lock:
            return [
                str(BytesParser(policy=default).parsebytes(content)["Subject"])
                for _, _, content in self.messages
            ]

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def test_health_change_is_emailed_once_and_so_is_the_recovery(start_edge, origins) -> None:
    inbox = SmtpReceiver()
    try:
        a = origins("a")
        email = {
            "server": f"127.0.0.1:{inbox.port}",
            "sender": "edge@example.test",
            "to": ["ops@example.test", "oncall@example.test"],
        }
        edge = start_edge(
            balanced_config(
                [("main", [a])],
                {"pools": [{"name": "main", "monitor": "web"}]},
                health={"alerts": {"email": email}},
            )
        )
        wait_state(edge, a, "healthy")
        a.health_status = 500
        wait_state(edge, a, "unhealthy")
        eventually(lambda: len(inbox.messages) >= 1, what="the down email")

        a.health_status = 200
        wait_state(edge, a, "healthy")
        eventually(lambda: len(inbox.messages) >= 2, what="the recovery email")
        eventually(lambda: len(health(edge)["zones"][0]["pools"][0]["origins"][0]["results"]) >= 5)

        assert inbox.subjects() == [
            f"[originguard] {a.address} is unhealthy (Response code mismatch error)",
            f"[originguard] {a.address} is healthy",
        ]
        sender, recipients, _ = inbox.messages[0]
        assert sender == "edge@example.test"
        assert recipients == ["ops@example.test", "oncall@example.test"]
        history = json.loads(edge.admin("/health/alerts").body)["alerts"]
        deliveries = [d for x in history for d in x["deliveries"]]
        assert [(d["url"], d["ok"]) for d in deliveries] == [
            (f"smtp://{email['server']}", True)
        ] * 2
    finally:
        inbox.close()
