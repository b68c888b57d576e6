"""Which zone owns a request's host, and the zone's run-time pools."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from originguard.tls import pool_tls
from originguard.upstream.balancer import Balancer
from originguard.upstream.pool import Origin

if TYPE_CHECKING:
    from originguard.cache.layer import ZoneCache
    from originguard.config import Config, PoolConfig, ZoneConfig
    from originguard.exchange import Exchange
    from originguard.upstream.health_view import Steering


class PoolRuntime:
    def __init__(self, config: PoolConfig, origins: list[Origin]) -> None:
        self.name = config.name
        self.enabled = config.enabled
        self.origins = origins
        self.balancer = Balancer(origins, config.steering)
        self.is_usable = self.enabled and any(o.is_usable for o in origins)


class ZoneRuntime:
    def __init__(self, config: ZoneConfig, pools: list[PoolRuntime]) -> None:
        self.config = config
        self.name = config.name
        self.pools = pools
        self.failover_codes = frozenset(config.failover_codes)
        self.host_header = config.host_header.encode() if config.host_header else None
        self.timeouts = config.timeouts
        # Header lines every request to this zone's origins carries (the shared secret).
        self.origin_headers = b""
        self._origin_header_start = b""
        if config.origin_auth is not None:
            name = config.origin_auth.header.encode()
            secret = config.origin_auth.secret.get_secret_value().encode()
            self.origin_headers = name + b": " + secret + b"\r\n"
            self._origin_header_start = b"\r\n" + name + b":"
        self.cache: ZoneCache | None = None  # set by app.build_runtime when the zone caches
        self.steering: Steering | None = None  # the zone's load balancer (health/service.py)

    def with_origin_headers(self, request_head: bytes) -> bytes:
        """`request_head` (ending in the blank line) with the zone's origin header lines."""
        if not self.origin_headers:
            return request_head
        if self._origin_header_start in request_head:
            # A client's copy of the secret header never reaches the origin (names on the
            # upstream head are lower-case, as parsed).
            prefix = self._origin_header_start[2:]
            lines = request_head[:-4].split(b"\r\n")
            kept = [line for line in lines if not line.startswith(prefix)]
            request_head = b"\r\n".join(kept) + b"\r\n\r\n"
        return request_head[:-2] + self.origin_headers + b"\r\n"

    def active_pool(self) -> PoolRuntime | None:
        """The pool for a new request: the load balancer's pick, else the first usable pool."""
        if self.steering is not None:
            return self.steering.active_pool()
        for pool in self.pools:
            if pool.is_usable:
                return pool
        return None

    def select(
        self, ex: Exchange, pool: PoolRuntime, exclude: Collection[Origin]
    ) -> tuple[PoolRuntime, Origin] | None:
        """The pool and origin for the next attempt (affinity and cross-pool failover live in
        the load balancer); None when no (further) attempt may be made."""
        if self.steering is not None:
            return self.steering.select(ex, pool, exclude)
        origin = pool.balancer.select(ex.client_ip, exclude)
        return None if origin is None else (pool, origin)


class Router:
    """Exact host names first, then the most specific `*.` wildcard, at any depth."""

    def __init__(self, zones: list[ZoneRuntime]) -> None:
        self.zones = zones
        self._exact: dict[bytes, ZoneRuntime] = {}
        self._wildcard: dict[bytes, ZoneRuntime] = {}
        for zone in zones:
            for name in zone.config.hostnames:
                if name.startswith("*."):
                    self._wildcard[name[2:].encode()] = zone
                else:
                    self._exact[name.encode()] = zone

    def route(self, host: bytes) -> ZoneRuntime | None:
        zone = self._exact.get(host)
        if zone is not None or not self._wildcard:
            return zone
        dot = host.find(b".")
        while dot >= 0:
            host = host[dot + 1 :]
            zone = self._wildcard.get(host)
            if zone is not None:
                return zone
            dot = host.find(b".")
        return None


def build_zones(config: Config, previous: Mapping[str, Origin] | None = None) -> Router:
    """Run-time zones for a config. Origins that existed before keep their idle connections."""
    zones = []
    for zone_config in config.zones:
        pools = []
        for pool_config in zone_config.pools:
            origins = []
            tls_for = pool_tls(pool_config.tls, zone_config.host_header, zone_config.hostnames)
            for origin_config in pool_config.origins:
                origin = Origin(
                    origin_config.address,
                    origin_config.host,
                    origin_config.port,
                    float(origin_config.weight),
                    origin_config.enabled,
                    pool_config.max_idle_connections,
                    tls_for(origin_config.host),
                )
                key = _pooled_key(zone_config.name, pool_config.name, origin)
                old = previous.get(key) if previous else None
                if old is not None:
                    origin.adopt(old)
                origins.append(origin)
            pools.append(PoolRuntime(pool_config, origins))
        zones.append(ZoneRuntime(zone_config, pools))
    return Router(zones)


def origin_key(zone: str, pool: str, address: str) -> str:
    return f"{zone}/{pool}/{address}"


def _pooled_key(zone: str, pool: str, origin: Origin) -> str:
    """Which origins may hand idle connections to their successor on reload: the same origin
    with the same TLS settings (a plain connection must never serve a TLS pool)."""
    key = origin_key(zone, pool, origin.address)
    return key if origin.tls is None else f"{key}|{origin.tls.identity}"


def all_origins(router: Router) -> dict[str, Origin]:
    return {
        _pooled_key(zone.name, pool.name, origin): origin
        for zone in router.zones
        for pool in zone.pools
        for origin in pool.origins
    }
