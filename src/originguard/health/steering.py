"""A zone's load balancer at run time: pools by health, origins by health and ejection, session
affinity and the failover retry (spec §3, §6.3-§6.6).

The core asks two questions (``upstream/health_view.py``): which pool takes a new request
(``active_pool``) and which origin takes the next attempt (``select``). Both are answered from
state kept current by the health service: origin health (probes), pool health (recomputed on
each transition, not per request), outlier ejections and slow-start recovery times. The
affinity decision of a request is kept as a ``Pin`` until its response goes out, when the
``__oglb`` cookie is set if the pin is new.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from originguard.exchange import Exchange
from originguard.health.affinity import (
    CookieAffinity,
    HeaderAffinity,
    cookie_flags,
    failover_plan,
    pick_by_ip,
    session_key,
)
from originguard.health.outlier import PoolOutliers, effective_weight
from originguard.health.settings import LoadBalancerSettings, PoolPolicy
from originguard.health.state import (
    SERVING,
    Health,
    OriginHealth,
    PoolHealth,
    pool_health,
    select_pool,
)
from originguard.http.messages import Headers, header_values
from originguard.routing import PoolRuntime, ZoneRuntime, origin_key
from originguard.upstream.pool import Origin

Clock = Callable[[], float]
_COOKIE_PREFIX = b"__oglb="


@dataclass(slots=True)
class Pin:
    """One request's affinity: whether it came pinned, and what to pin it to afterwards."""

    pinned: bool = False
    issue: str | None = None  # origin id for a new cookie / header binding
    session: str | None = None  # header affinity: the session key
    keep: bool = False  # zdf temporary: served elsewhere while the pinned origin is down


class PoolView:
    """Health as one pool's balancer sees it (the core's ``OriginView``)."""

    def __init__(self, steering: ZoneSteering, pool: PoolRuntime, policy: PoolPolicy) -> None:
        self._steering = steering
        self._pool = pool
        self._monitored = policy.monitor is not None
        self._keys = {
            o.address: origin_key(steering.zone.name, pool.name, o.address) for o in pool.origins
        }
        self.outliers = steering.outliers[pool.name]

    def usable(self, origins: Sequence[Origin]) -> Sequence[Origin]:
        states = self._steering.states
        kept: Sequence[Origin] = origins
        if self._monitored:
            healthy = [o for o in origins if _is_healthy(states.get(self._keys[o.address]))]
            # None healthy happens only when this pool serves as the fallback, whose health is
            # ignored (spec §6.3): then every enabled origin may take traffic.
            kept = healthy or origins
        if not kept:
            return kept
        now = self._steering.clock()
        if self.outliers.ejected_count(now) == 0:
            return kept
        usable = self.outliers.usable([o.address for o in kept], now)
        allowed = set(usable.origins)
        return [o for o in kept if o.address in allowed]

    def weight(self, origin: Origin) -> float:
        steering = self._steering
        window = steering.settings.slow_start.window
        if window <= 0:
            return origin.weight
        now = steering.clock()
        ejected = self.outliers.recovered_at(origin.address, now)
        probed = steering.recovered.get(self._keys[origin.address])
        marks = [t for t in (ejected, probed) if t is not None]
        fraction = steering.settings.slow_start.min_weight_percent / 100.0
        return effective_weight(origin.weight, max(marks, default=None), window, now, fraction)


class ZoneSteering:
    """The core's ``Steering`` for one zone with a ``load_balancer`` section."""

    def __init__(
        self,
        zone: ZoneRuntime,
        settings: LoadBalancerSettings,
        states: Mapping[str, OriginHealth],
        recovered: Mapping[str, float],
        *,
        clock: Clock,
        secret: bytes | None = None,
        outliers: Mapping[str, PoolOutliers] | None = None,
        sessions: HeaderAffinity | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.zone = zone
        self.settings = settings
        self.states = states
        self.recovered = recovered
        self.clock = clock
        self.secret = secret or os.urandom(32)
        self._rng = rng or random.Random()
        self._pools = {pool.name: pool for pool in zone.pools}
        self._policies = [p for p in settings.pools if p.name in self._pools]
        self.outliers: dict[str, PoolOutliers] = {}
        for policy in self._policies:
            pool = self._pools[policy.name]
            old = (outliers or {}).get(policy.name)
            addresses = [o.address for o in pool.origins]
            if old is not None and old.settings == settings.outlier and old.origins == addresses:
                self.outliers[policy.name] = old
            else:
                self.outliers[policy.name] = PoolOutliers(addresses, settings.outlier)
        self._holders: dict[str, list[str]] = {}
        for policy in self._policies:
            for origin in self._pools[policy.name].origins:
                self._holders.setdefault(origin.address, []).append(policy.name)
        self.pool_states: dict[str, PoolHealth] = {}
        affinity = settings.affinity
        self._cookie = (
            CookieAffinity(self.secret, affinity.effective_ttl, zone.name)
            if affinity.mode in ("cookie", "ip_cookie")
            else None
        )
        self.sessions: HeaderAffinity | None = None
        if affinity.mode == "header":
            self.sessions = sessions or HeaderAffinity(affinity.effective_ttl)
        self._pins: dict[int, Pin] = {}
        for policy in self._policies:
            pool = self._pools[policy.name]
            pool.balancer.view = PoolView(self, pool, policy)
        self.zone.steering = self
        self.refresh()

    # -- pool health --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute every pool's health (spec §6.3); called after each origin transition."""
        states: dict[str, PoolHealth] = {}
        for policy in self._policies:
            pool = self._pools[policy.name]
            # Only origins that can take traffic count: a pool drained by weight 0 (or with
            # every origin disabled) must not be chosen over a healthy fallback.
            usable = [o for o in pool.origins if o.is_usable]
            zone = self.zone.name
            health = [self._health(origin_key(zone, pool.name, o.address)) for o in usable]
            states[policy.name] = pool_health(
                health,
                policy.minimum_origins,
                monitored=policy.monitor is not None,
                enabled=policy.enabled and pool.enabled and bool(usable),
            )
        self.pool_states = states

    def _health(self, key: str) -> Health:
        state = self.states.get(key)
        return Health.UNKNOWN if state is None else state.state

    def is_serving(self, pool: str) -> bool:
        return self.pool_states.get(pool) in SERVING

    # -- the core's questions ---------------------------------------------------------------------

    def active_pool(self) -> PoolRuntime | None:
        """Spec §6.4 steering over the healthy pools, else the fallback, else None (530)."""
        in_flight: dict[str, int] = {}
        if self.settings.steering == "least_outstanding_requests":
            in_flight = {
                name: sum(o.in_flight for o in pool.origins) for name, pool in self._pools.items()
            }
        choice = select_pool(self.settings, self.pool_states, in_flight, self._rng)
        if choice.pool is None:
            return None
        pool = self._pools[choice.pool]
        return pool if pool.enabled else None

    def select(
        self, ex: Exchange, pool: PoolRuntime, exclude: Collection[Origin]
    ) -> tuple[PoolRuntime, Origin] | None:
        mode = self.settings.affinity.mode
        if not exclude:
            if mode == "none":
                return self._pick(ex, pool, exclude)
            return self._first(ex, pool)
        pin = self._pins.get(id(ex))
        if mode != "none":
            plan = failover_plan(
                self.settings.affinity.zero_downtime_failover, pin is not None and pin.pinned
            )
            if not plan.may_retry:
                return None  # spec §3: zdf none, a pinned session gets no failover
        picked = self._pick(ex, pool, exclude)
        if picked is None and self.settings.failover_across_pools:
            picked = self._across_pools(ex, pool, exclude)
        if picked is not None and pin is not None and mode != "none":
            pin.issue = _origin_id(*picked) if plan.repin and not pin.keep else None
        return picked

    def _pick(
        self, ex: Exchange, pool: PoolRuntime, exclude: Collection[Origin]
    ) -> tuple[PoolRuntime, Origin] | None:
        origin = pool.balancer.select(ex.client_ip, exclude)
        return None if origin is None else (pool, origin)

    def _across_pools(
        self, ex: Exchange, current: PoolRuntime, exclude: Collection[Origin]
    ) -> tuple[PoolRuntime, Origin] | None:
        """Spec §3 ``failover_across_pools``: healthy origins of the other pools, in order."""
        for policy in self._policies:
            pool = self._pools[policy.name]
            if pool is current or not self.is_serving(policy.name):
                continue
            picked = self._pick(ex, pool, exclude)
            if picked is not None:
                return picked
        return None

    # -- affinity -----------------------------------------------------------------------------

    def _first(self, ex: Exchange, pool: PoolRuntime) -> tuple[PoolRuntime, Origin] | None:
        affinity = self.settings.affinity
        now = self.clock()
        pin = self._pins[id(ex)] = Pin()
        if self.sessions is not None:
            pin.session = session_key(
                affinity.headers,
                _named_headers(ex.head.headers, affinity.headers),
                affinity.require_all_headers,
            )
            if pin.session is not None:
                usable = self._usable_ids(pool)
                bound = self.sessions.lookup(pin.session, list(usable), now)
                if bound is not None:
                    pin.pinned = True
                    return usable[bound]
            picked = self._pick(ex, pool, ())
            if picked is not None and pin.session is not None:
                pin.issue = _origin_id(*picked)
            return picked
        assert self._cookie is not None
        token = _cookie(ex.head.headers)
        if token is not None:
            named = self._cookie.resolve(token, list(self._all_ids()), now)
            if named is not None:
                usable = self._usable_ids(pool)
                if named in usable:
                    pin.pinned = True
                    return usable[named]
                if affinity.zero_downtime_failover == "temporary":
                    # spec §3: serve elsewhere until the pinned origin recovers; keep the cookie
                    # (a failover retry too).
                    pin.keep = True
                    return self._pick(ex, pool, ())
        picked = self._initial(ex, pool)
        if picked is not None:
            pin.issue = _origin_id(*picked)
        return picked

    def _initial(self, ex: Exchange, pool: PoolRuntime) -> tuple[PoolRuntime, Origin] | None:
        if self.settings.affinity.mode != "ip_cookie":
            return self._pick(ex, pool, ())
        # spec §6.6 ip_cookie: the first pick is stable, hashed from the client IP.
        candidates: Sequence[Origin] = [o for o in pool.origins if o.is_usable]
        if pool.balancer.view is not None:
            candidates = pool.balancer.view.usable(candidates)
        chosen = pick_by_ip(
            ex.client_ip, [(o.address, pool.balancer.weight(o)) for o in candidates]
        )
        origin = next((o for o in candidates if o.address == chosen), None)
        return None if origin is None else (pool, origin)

    def _all_ids(self) -> dict[str, tuple[PoolRuntime, Origin]]:
        return {
            _origin_id(pool, origin): (pool, origin)
            for policy in self._policies
            for pool in (self._pools[policy.name],)
            for origin in pool.origins
        }

    def _usable_ids(self, active: PoolRuntime) -> dict[str, tuple[PoolRuntime, Origin]]:
        """Origins a pin may still use: usable origins of serving pools and the active one."""
        out: dict[str, tuple[PoolRuntime, Origin]] = {}
        for policy in self._policies:
            pool = self._pools[policy.name]
            if pool is not active and not self.is_serving(policy.name):
                continue
            origins = [o for o in pool.origins if o.is_usable]
            view = pool.balancer.view
            for origin in view.usable(origins) if view is not None else origins:
                out[_origin_id(pool, origin)] = (pool, origin)
        return out

    def on_response(self, ex: Exchange, headers: Headers) -> None:
        """Set the ``__oglb`` cookie (or bind the header session) once an origin served."""
        pin = self._pins.get(id(ex))
        if pin is None or pin.issue is None:
            return
        if not ex.attempts or ex.attempts[-1].error:
            return  # the edge answered with a 52x page: nothing to pin to
        now = self.clock()
        if self.sessions is not None and pin.session is not None:
            self.sessions.bind(pin.session, pin.issue, now)
            return
        if self._cookie is None:
            return
        secure, samesite = cookie_flags(self.settings.affinity, ex.conn.scheme == b"https")
        token = self._cookie.issue(pin.issue, now)
        value = self._cookie.set_cookie(token, secure=secure, samesite=samesite)
        headers.append((b"set-cookie", value.encode("latin-1")))

    def forget(self, ex: Exchange) -> None:
        self._pins.pop(id(ex), None)

    # -- passive outlier detection ------------------------------------------------------------

    def pools_with(self, address: str) -> Sequence[str]:
        """The balanced pools that hold ``address`` (outlier state is kept per pool)."""
        return self._holders.get(address, ())


def _is_healthy(state: OriginHealth | None) -> bool:
    return state is not None and state.state is Health.HEALTHY


def _origin_id(pool: PoolRuntime, origin: Origin) -> str:
    return f"{pool.name}/{origin.address}"


def _cookie(headers: Headers) -> str | None:
    for value in header_values(headers, b"cookie"):
        for part in value.split(b";"):
            part = part.strip()
            if part.startswith(_COOKIE_PREFIX):
                return part[len(_COOKIE_PREFIX) :].decode("latin-1")
    return None


def _named_headers(headers: Headers, names: Sequence[str]) -> dict[str, str]:
    wanted = {n.lower().split(":", 1)[0].encode() for n in names}
    return {
        name.decode("latin-1"): value.decode("latin-1") for name, value in headers if name in wanted
    }
