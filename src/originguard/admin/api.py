"""The admin listener: /metrics (Prometheus), /status (JSON), /healthz. Token-protected."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from originguard.cache.purge import PurgeError, parse_request, purge, summary
from originguard.config import ListenAddress, host_port
from originguard.health.service import find_health
from originguard.protect.waiting_room.admin import add_routes as add_waiting_room_routes

if TYPE_CHECKING:
    from originguard.app import Edge

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthz"})


class AdminServer:
    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self._runner: web.AppRunner | None = None
        self.address = ""

    async def start(self, listen: ListenAddress) -> None:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_post("/purge", self._purge)
        app.router.add_get("/health", self._health)
        app.router.add_get("/health/alerts", self._health_alerts)
        add_waiting_room_routes(app, lambda: self.edge.runtime, lambda: self.edge.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, listen.host, listen.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            host, port = sockets[0].getsockname()[:2]
            self.address = f"{host}:{port}"
        else:
            self.address = str(listen)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.edge.config.admin.token
        if token is None or request.path in OPEN_PATHS:
            return await handler(request)
        expected = f"Bearer {token.get_secret_value()}".encode()
        # aiohttp decodes field values as UTF-8 with surrogates for invalid bytes: keep them.
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            return web.json_response(
                {"error": "missing or wrong admin token"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        draining = self.edge.pipeline is not None and self.edge.pipeline.draining
        return web.json_response(
            {"status": "draining" if draining else "ok"}, status=503 if draining else 200
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.edge.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _purge(self, request: web.Request) -> web.Response:
        """Spec §8.7: {"files": [...], "prefixes": [...], "hosts": [...], "tags": [...],
        "purge_everything": true}; the whole request is checked before anything is removed."""
        runtime = self.edge.runtime
        if runtime.cache is None:
            return web.json_response({"error": "no cache configured"}, status=409)
        try:
            document = await request.json()
        except (ValueError, LookupError, RecursionError):  # bad JSON or UTF-8, odd charset
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(document, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            wanted = parse_request(document, runtime.cache.settings.max_entries_per_purge)
        except PurgeError as error:
            return web.json_response({"error": str(error)}, status=400)
        removed = purge(runtime.cache, runtime.router, wanted)
        return web.json_response({"removed": removed, "purged": summary(wanted)})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(status_document(self.edge))

    async def _health(self, request: web.Request) -> web.Response:
        """Origin, pool and balancer health with the last N probe results (?results=N)."""
        health = find_health(self.edge.runtime.services)
        results = _int_query(request, "results", 10)
        return web.json_response(health.document(results) if health else {"zones": []})

    async def _health_alerts(self, request: web.Request) -> web.Response:
        """Alert history, newest first (?limit=N), with each delivery's result."""
        health = find_health(self.edge.runtime.services)
        limit = _int_query(request, "limit", 50)
        return web.json_response({"alerts": health.alerts_document(limit) if health else []})


def _int_query(request: web.Request, name: str, default: int) -> int:
    try:
        return max(0, min(1000, int(request.query.get(name, default))))
    except ValueError:
        return default


def status_document(edge: Edge) -> dict[str, Any]:
    runtime = edge.runtime
    zones = []
    for zone in runtime.router.zones:
        pools = []
        for pool in zone.pools:
            pools.append(
                {
                    "name": pool.name,
                    "enabled": pool.enabled,
                    "steering": pool.balancer.steering,
                    "origins": [
                        {
                            "address": origin.address,
                            "weight": origin.weight,
                            "enabled": origin.enabled,
                            "in_flight": origin.in_flight,
                            "open_connections": len(origin.open),
                            "idle_connections": len(origin.idle),
                        }
                        for origin in pool.origins
                    ],
                }
            )
        zones.append(
            {"name": zone.name, "hostnames": list(zone.config.hostnames), "pools": pools}
        )
    return {
        "node_id": runtime.node_id,
        "listen": [host_port(address) for address in edge.bound],
        "config_loaded_at": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(edge.loaded_at)
        ),
        "open_connections": len(edge.connections.connections),
        "in_flight": sum(
            origin.in_flight
            for zone in runtime.router.zones
            for pool in zone.pools
            for origin in pool.origins
        ),
        "zones": zones,
    }
