"""Composition root: build an edge from a config; start, reload (atomic swap), drain, stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from originguard.admin.api import AdminServer
from originguard.cache.layer import SharedCache, ZoneCache
from originguard.config import Config, ConfigError, ListenAddress, host_port, load
from originguard.health.service import build_health
from originguard.http.server import ClientConnection, ConnectionRegistry
from originguard.native import HOT_MODULES, compiled_in_use, stale_extensions
from originguard.observe.access_log import AccessLog
from originguard.observe.metrics import Metrics
from originguard.pipeline import Pipeline, Runtime
from originguard.protect.guard import build_security
from originguard.protect.waiting_room.runtime import attach as attach_waiting_rooms
from originguard.routing import all_origins, build_zones
from originguard.tls import EdgeTlsListener, HttpsPolicy, TlsSetupError, build_store
from originguard.upstream.pool import Origin

log = logging.getLogger("originguard")

SWEEP_SECONDS = 0.25


class ListenError(OSError):
    """An address the edge cannot listen on (taken, not local, not resolvable)."""

    def __init__(self, address: object, cause: OSError) -> None:
        errno = cause.errno
        if isinstance(errno, int) and errno > 0:
            reason = os.strerror(errno)  # not uvloop's long text, which repeats the address
        else:
            reason = cause.strerror or str(cause)
        super().__init__(errno, f"cannot listen on {address}: {reason}")

    def __str__(self) -> str:
        return str(self.strerror)


@contextmanager
def _listening(address: object) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise ListenError(address, error) from error


def build_runtime(config: Config, metrics: Metrics, previous: Runtime | None = None) -> Runtime:
    """Everything one config decides. A feature adds its filters, observers and services here,
    one line each; `previous` lets it carry state (counters, health, queues) across reloads."""
    router = build_zones(config, all_origins(previous.router) if previous else None)
    runtime = Runtime(
        router=router,
        trusted_proxies=tuple(config.trusted_proxies),
        node_id=config.node_id,
    )
    shared_cache = previous.cache if previous is not None else None
    if shared_cache is None or shared_cache.settings != config.cache:
        shared_cache = SharedCache(config.cache)
    runtime.cache = shared_cache
    for zone in router.zones:
        if zone.config.cache.enabled:
            zone.cache = ZoneCache(zone.config.cache, shared_cache, lists=config.lists)
    # "Always use HTTPS" answers before any guard; HSTS marks HTTPS responses (tls.py).
    https = HttpsPolicy({zone.name: zone.https for zone in config.zones})
    if https.is_active:
        runtime.request_filters.append(https)
        runtime.response_filters.append(https)
    # Request filters run in this order (spec §0): IP access rules, custom firewall rules,
    # rate limiting rules, challenge, then the waiting room; the cache sits behind them all.
    security = build_security(config, metrics, previous.request_filters if previous else ())
    runtime.request_filters += security.request_filters
    runtime.response_filters += security.response_filters
    runtime.observers += security.observers
    # Waiting room: last of the guards; keeps its room state and admin overrides over reloads.
    attach_waiting_rooms(runtime, config, metrics, previous)
    # Origin health: probes and alert delivery (service), passive outlier detection and alert
    # windows (observer), the __oglb affinity cookie (response filter).
    health = build_health(config, router, metrics, previous.services if previous else ())
    runtime.services.append(health)
    runtime.observers.append(health)
    if health.steerings:
        runtime.response_filters.append(health)
    return runtime


class Edge:
    """One edge process: listeners, the pipeline, the admin API and the sweeper."""

    def __init__(self, config: Config, config_path: str | Path | None = None) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self.metrics = Metrics()
        self.access_log = AccessLog(config.access_log.path, config.access_log.enabled)
        self.connections = ConnectionRegistry()
        self.pipeline: Pipeline | None = None
        self.loaded_at = time.time()
        self._servers: dict[ListenAddress, asyncio.Server] = {}
        self._tls_servers: dict[ListenAddress, asyncio.Server] = {}
        self._tls: EdgeTlsListener | None = None
        self._admin: AdminServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._retired: list[Origin] = []
        self._stopped = asyncio.Event()

    @property
    def runtime(self) -> Runtime:
        assert self.pipeline is not None
        return self.pipeline.runtime

    @property
    def bound(self) -> list[tuple[str, int]]:
        """The addresses actually listened on (port 0 resolved)."""
        out = []
        for server in self._servers.values():
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                out.append((host, port))
        return out

    async def start(self, signals: bool = False) -> None:
        """Listen and serve. With `signals`, SIGHUP/SIGTERM/SIGINT are handled from before the
        "listening" line is logged, so a supervisor that waits for it can signal at once."""
        self.access_log.open()
        runtime = build_runtime(self.config, self.metrics)
        self.pipeline = Pipeline(runtime, self.metrics, self.access_log)
        for service in runtime.services:
            await service.start()
        await self._listen(self.config.listen)
        await self._listen_tls(self.config)
        self._admin = AdminServer(self)
        with _listening(self.config.admin.listen):
            await self._admin.start(self.config.admin.listen)
        self._sweeper = asyncio.create_task(self._sweep())
        # Long-lived start-up objects need no cycle scans; per-request garbage is mostly freed
        # by reference counting, so collect young cycles less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        if signals:
            self.install_signals()
        _log_hot_path()
        if self._tls_servers:
            tls_bound = [s.getsockname()[:2] for v in self._tls_servers.values() for s in v.sockets]
            log.info("originguard TLS listening on %s", ", ".join(map(host_port, tls_bound)))
        log.info(
            "originguard listening on %s, admin on %s",
            ", ".join(map(host_port, self.bound)),
            self._admin.address,
        )

    def _new_connection(self) -> ClientConnection:
        assert self.pipeline is not None
        return ClientConnection(
            self.pipeline.handle, self.pipeline.reject, self.config.limits, self.connections
        )

    def _new_tls_connection(self) -> ClientConnection:
        conn = self._new_connection()
        conn.scheme = b"https"
        return conn

    async def _listen_tls(self, config: Config) -> None:
        """Load the certificates (raises TlsSetupError) and open new TLS listeners. Listeners
        share one context whose SNI callback reads the store, so a reload swaps certificates
        without reopening a socket."""
        store = build_store(config.tls)
        if store is None:
            return
        if self._tls is None:
            self._tls = EdgeTlsListener(store, config.tls.min_version)
        else:
            self._tls.store = store
            self._tls.set_min_version(config.tls.min_version)
        loop = asyncio.get_running_loop()
        for address in config.tls.listen:
            if address in self._tls_servers:
                continue
            with _listening(address):
                self._tls_servers[address] = await loop.create_server(
                    self._new_tls_connection,
                    address.host,
                    address.port,
                    ssl=self._tls.context,
                    ssl_handshake_timeout=config.tls.handshake_timeout,
                    backlog=2048,
                    reuse_address=True,
                )

    async def _listen(self, addresses: tuple[ListenAddress, ...]) -> None:
        loop = asyncio.get_running_loop()
        for address in addresses:
            if address in self._servers:
                continue
            with _listening(address):
                self._servers[address] = await loop.create_server(
                    self._new_connection,
                    address.host,
                    address.port,
                    backlog=2048,
                    reuse_address=True,
                )

    # -- reload ---------------------------------------------------------------------------------

    async def reload(self, config: Config | None = None) -> bool:
        """Swap in a new config atomically; a bad one is logged and changes nothing."""
        assert self.pipeline is not None
        if config is None:
            if self.config_path is None:
                return False
            try:
                config = load(self.config_path)
            except ConfigError as error:
                for message in error.messages:
                    log.error("reload rejected: %s", message)
                self.metrics.reloads.labels("rejected").inc()
                return False
            except OSError as error:
                log.error("reload rejected: %s", error)
                self.metrics.reloads.labels("rejected").inc()
                return False
            except Exception:  # a bug in a validator must not kill the running edge
                log.exception("reload rejected: %s could not be read", self.config_path)
                self.metrics.reloads.labels("rejected").inc()
                return False
        if config.admin.listen != self.config.admin.listen:
            # The admin API stays where it was bound, so its token rule must stay too: a config
            # that moves it (say public with a token -> loopback without) would open it.
            log.error(
                "reload rejected: admin.listen changed (%s -> %s); restart to move the admin API",
                self.config.admin.listen,
                config.admin.listen,
            )
            self.metrics.reloads.labels("rejected").inc()
            return False
        old_runtime = self.pipeline.runtime
        old_origins = all_origins(old_runtime.router)
        try:
            await self._listen(config.listen)
        except OSError as error:
            log.error("reload rejected: %s", error)
            self.metrics.reloads.labels("rejected").inc()
            return False
        try:
            await self._listen_tls(config)  # certificates are read again: SIGHUP rotates them
        except (TlsSetupError, OSError) as error:
            log.error("reload rejected: TLS: %s", error)
            self.metrics.reloads.labels("rejected").inc()
            return False
        try:
            runtime = build_runtime(config, self.metrics, old_runtime)
            for service in runtime.services:
                await service.start()
        except Exception:
            # Validation should catch every bad config; this is the net for what it missed.
            log.exception("reload rejected: the new configuration could not be built")
            for origin in old_origins.values():
                origin.successor = None
            for address in list(self._servers):
                if address not in self.config.listen:
                    self._servers.pop(address).close()
            self.metrics.reloads.labels("rejected").inc()
            return False
        self.config = config
        self.pipeline.runtime = runtime  # the swap: new exchanges see only the new config
        for service in old_runtime.services:
            await service.stop()
        for address in list(self._servers):
            if address not in config.listen:
                self._servers.pop(address).close()
        for address in list(self._tls_servers):
            if address not in config.tls.listen:
                self._tls_servers.pop(address).close()
        kept = set(all_origins(runtime.router))
        for key, origin in old_origins.items():
            if key not in kept:
                origin.max_idle = 0
                for conn in list(origin.idle):
                    conn.close()
                origin.idle.clear()
                self._retired.append(origin)
        self.loaded_at = time.time()
        self.metrics.reloads.labels("ok").inc()
        log.info("configuration reloaded")
        return True

    # -- shutdown ---------------------------------------------------------------------------------

    async def drain(self) -> None:
        """Stop accepting, let in-flight exchanges finish up to the drain deadline, then close."""
        assert self.pipeline is not None
        self.pipeline.draining = True
        for server in [*self._servers.values(), *self._tls_servers.values()]:
            server.close()
        log.info(
            "draining: %d client connections, at most %gs",
            len(self.connections.connections),
            self.config.limits.drain_timeout,
        )
        deadline = asyncio.get_running_loop().time() + self.config.limits.drain_timeout
        while asyncio.get_running_loop().time() < deadline:
            self.connections.close_idle()
            if not self.connections.connections:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections.connections):
            conn.abort()
        await self.stop()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in [*self._servers.values(), *self._tls_servers.values()]:
            server.close()
        if self._admin is not None:
            await self._admin.stop()
        if self.pipeline is not None:
            for service in self.pipeline.runtime.services:
                await service.stop()
            for origin in all_origins(self.pipeline.runtime.router).values():
                origin.close_all()
        self.access_log.close()
        log.info("stopped")
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(self.drain()))
        loop.add_signal_handler(signal.SIGINT, lambda: asyncio.ensure_future(self.drain()))

    # -- deadlines --------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """One timer for every deadline: client head/body/idle/send, origin head/read/idle."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = loop.time()
            try:
                self.connections.sweep(now)
                upstream = 0
                for zone in self.runtime.router.zones:
                    for pool in zone.pools:
                        for origin in pool.origins:
                            origin.sweep(now, zone.timeouts.idle)
                            upstream += len(origin.open)
                for origin in self._retired:
                    origin.sweep(now, 0.0)
                self._retired = [o for o in self._retired if o.open]
                self.metrics.open_connections.labels("downstream").set(
                    len(self.connections.connections)
                )
                self.metrics.open_connections.labels("upstream").set(upstream)
            except Exception:
                log.exception("sweeper error")


async def serve(config: Config, config_path: str | Path | None) -> int:
    edge = Edge(config, config_path)
    try:
        await edge.start(signals=True)
    except (ListenError, TlsSetupError) as error:
        log.error("cannot start: %s", error)
        await edge.stop()
        return 1
    await edge.wait_stopped()
    return 0


def _log_hot_path() -> None:
    """Say whether the hot path runs compiled (see native.py): it is a 1.5-1.9x difference."""
    compiled = compiled_in_use()
    log.info("hot path: %d of %d modules compiled", len(compiled), len(HOT_MODULES))
    stale = stale_extensions()
    if stale:
        log.warning(
            "hot path: %d compiled modules are older than their sources and run old code; "
            "rebuild with `make native` or remove them with `make pure`",
            len(stale),
        )
