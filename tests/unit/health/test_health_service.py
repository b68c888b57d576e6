"""The health service without sockets: probe results fed by hand, alerts captured from the
notifier, exchanges completed by hand; state carried over a reload."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from originguard.config import Config
from originguard.exchange import Attempt, Exchange
from originguard.health.notify import Notifier
from originguard.health.probe import FailureReason, ProbeResult, ProbeTarget
from originguard.health.service import HealthService
from originguard.health.settings import MonitorSettings
from originguard.http.messages import RequestHead
from originguard.observe.metrics import Metrics
from originguard.routing import Router, build_zones

UP = ProbeResult(True, 0.01, 200)
DOWN = ProbeResult(False, 0.5, None, FailureReason.TCP_CONNECTION_FAILED)
KEY = "site/main/127.0.0.1:1"


def config(**lb: Any) -> Config:
    return Config.model_validate(
        {
            "health": {
                "monitors": {"web": {"interval": 10}},
                "checks": [{"name": "api", "address": "127.0.0.1"}],
                "alerts": {"webhooks": [{"url": "http://127.0.0.1:9/hook"}]},
            },
            "zones": [
                {
                    "name": "site",
                    "hostnames": ["site.test"],
                    "pools": [
                        {
                            "name": "main",
                            "origins": [
                                {"address": "127.0.0.1:1"},
                                {"address": "127.0.0.1:2"},
                            ],
                        }
                    ],
                    "load_balancer": {"pools": [{"name": "main", "monitor": "web"}], **lb},
                }
            ],
        }
    )


class Posts:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.bodies.append(body)
        return 204


async def idle(target: ProbeTarget, monitor: MonitorSettings) -> ProbeResult:
    """A probe that never answers: these tests feed results by hand."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def service(
    cfg: Config, previous: HealthService | None = None
) -> tuple[HealthService, Router, Posts]:
    router = build_zones(cfg)
    posts = Posts()
    notifier = Notifier(cfg.health.alerts.webhooks, post=posts)
    return (
        HealthService(
            cfg, router, Metrics(), previous, clock=lambda: 5000.0, notifier=notifier, probe_fn=idle
        ),
        router,
        posts,
    )


def completed(router: Router, *statuses: tuple[str, int]) -> Exchange:
    head = RequestHead(b"GET", b"/", b"/", b"", b"1.1", [], b"site.test")
    conn: Any = SimpleNamespace(scheme=b"http")
    ex = Exchange(conn, head, None, "ray", 0.0, client_ip="192.0.2.1", zone=router.zones[0])
    ex.attempts = [Attempt(origin, status) for origin, status in statuses]
    return ex


def test_a_probe_result_flips_health_refreshes_the_pool_and_queues_one_alert() -> None:
    health, router, _ = service(config())
    health._on_result(KEY, UP, 0.0)
    health._on_result("site/main/127.0.0.1:2", UP, 0.0)
    assert health.steerings["site"].pool_states["main"] == "healthy"
    health._on_result(KEY, DOWN, 0.0)
    health._on_result(KEY, DOWN, 0.0)  # no second transition, no second alert
    assert health.steerings["site"].pool_states["main"] == "degraded"
    alerts = health.engine.evaluate(5000.0)
    assert [(a.kind.value, a.origin, a.details["to"]) for a in alerts] == [
        ("health_check_status", "127.0.0.1:1", "unhealthy")
    ]
    document = health.document(results=1)
    origin = document["zones"][0]["pools"][0]["origins"][0]
    assert origin["health"] == "unhealthy"
    assert origin["failure_reason"] == "TCP connection failed"
    assert len(origin["results"]) == 1


def test_standalone_check_alerts_under_its_own_name() -> None:
    health, _, _ = service(config())
    health._on_result("check/api", UP, 0.0)
    health._on_result("check/api", DOWN, 0.0)
    (alert,) = health.engine.evaluate(5000.0)
    assert alert.zone == "check/api" and alert.details["reason"] == "TCP connection failed"
    assert health.document()["checks"][0]["health"] == "unhealthy"


def test_completed_exchanges_feed_outlier_detection() -> None:
    health, router, _ = service(config(outlier={"consecutive_failures": 3}))
    for _ in range(3):
        health.on_complete(completed(router, ("127.0.0.1:2", 502)))
    assert health.steerings["site"].outliers["main"].is_ejected("127.0.0.1:2", 5000.0)


def test_health_and_ejections_survive_a_reload() -> None:
    old, router, _ = service(config(outlier={"consecutive_failures": 1}))
    old._on_result(KEY, UP, 0.0)
    old.on_complete(completed(router, ("127.0.0.1:2", 500)))
    new, _, _ = service(config(outlier={"consecutive_failures": 1}), previous=old)
    assert new.states[KEY].state == "healthy"
    assert new.steerings["site"].outliers["main"].is_ejected("127.0.0.1:2", 5000.0)
    assert new.secret == old.secret and new.engine is old.engine


def test_alert_loop_delivers_a_health_change_at_once() -> None:
    async def run() -> list[bytes]:
        health, _, posts = service(config())
        await health.start()
        try:
            health._on_result(KEY, UP, 0.0)
            health._on_result(KEY, DOWN, 0.0)
            for _ in range(100):
                if posts.bodies:
                    break
                await asyncio.sleep(0)
            return posts.bodies
        finally:
            await health.stop()

    bodies = asyncio.run(run())
    assert len(bodies) == 1 and b'"to": "unhealthy"' in bodies[0]


def test_an_active_recovery_ends_an_ejection_and_starts_slow_start() -> None:
    health, router, _ = service(config(outlier={"consecutive_failures": 1}))
    health._on_result(KEY, UP, 0.0)
    health.on_complete(completed(router, ("127.0.0.1:1", 521)))
    outliers = health.steerings["site"].outliers["main"]
    assert outliers.is_ejected("127.0.0.1:1", 5000.0)
    health._on_result(KEY, DOWN, 0.0)
    health._on_result(KEY, UP, 0.0)
    assert not outliers.is_ejected("127.0.0.1:1", 5000.0)
    assert health.recovered[KEY] == 5000.0
