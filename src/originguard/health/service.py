"""Origin health inside the edge: one object that is a Service, an Observer and a
ResponseFilter (docs/architecture.md).

As a Service it runs the probe scheduler (pool monitors and standalone checks) and the alert
loop. Each probe result updates the origin's health with hysteresis; a transition refreshes
its zone's pool health (what ``ZoneSteering`` steers on), the metrics, and queues a state-change
alert, which wakes the alert loop at once. As an Observer it feeds every finished origin attempt
to passive outlier detection and to the error-rate / passive-monitoring alert windows. As a
ResponseFilter it sets the affinity cookie. State survives a reload: the new service adopts
the previous one's origin health, ejections, sessions, alert windows and history.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from originguard.health.affinity import HeaderAffinity
from originguard.health.alerts import Alert, AlertEngine
from originguard.health.notify import Delivery, Notifier
from originguard.health.outlier import PoolOutliers
from originguard.health.probe import ProbeResult, ProbeTarget, probe
from originguard.health.scheduler import Scheduler, job_for
from originguard.health.settings import HealthSettings, MonitorSettings
from originguard.health.state import SERVING, Health, OriginHealth, lb_health
from originguard.health.steering import ZoneSteering
from originguard.routing import Router, origin_key

if TYPE_CHECKING:
    from originguard.config import Config
    from originguard.exchange import Exchange
    from originguard.http.messages import Headers
    from originguard.observe.metrics import Metrics

log = logging.getLogger("originguard.health")

CHECKS_ZONE = "checks"  # the zone label of standalone health checks
ALERT_HISTORY = 200
ALERT_FLUSH_SECONDS = 1.0  # how often tallied responses enter the alert windows
RETIRING_DELIVERY_SECONDS = 120.0  # a replaced service's deliveries get this long to finish
_RETIRING: set[asyncio.Task[None]] = set()  # keeps those finishing deliveries referenced
Probe = Callable[[ProbeTarget, MonitorSettings], Awaitable[ProbeResult]]


@dataclass(frozen=True, slots=True)
class Watched:
    """One probed target: an origin of a monitored pool, or a standalone check."""

    key: str
    zone: str
    pool: str  # the pool, or the check's name
    origin: str  # host:port, or the check's address
    target: ProbeTarget
    monitor: MonitorSettings
    notify_on: str = "either"


@dataclass(slots=True)
class AlertRecord:
    alert: Alert
    deliveries: list[Delivery] = field(default_factory=list)
    pending: bool = True

    def to_json(self) -> dict[str, Any]:
        out = self.alert.to_json()
        out["deliveries"] = [
            {"url": d.url, "ok": d.ok, "attempts": d.attempts, "error": d.error}
            for d in self.deliveries
        ]
        out["pending"] = self.pending
        return out


class HealthService:
    def __init__(
        self,
        config: Config,
        router: Router,
        metrics: Metrics,
        previous: HealthService | None = None,
        *,
        clock: Callable[[], float] = time.time,
        probe_fn: Probe = probe,
        notifier: Notifier | None = None,
        rng: random.Random | None = None,
    ) -> None:
        settings = config.health
        self.settings: HealthSettings = settings
        self._metrics = metrics
        self._clock = clock
        self._next_flush = 0.0
        self._probe_fn = probe_fn
        self._rng = rng or random.Random()
        self._watched = {w.key: w for w in _watched(config, router)}
        old_states = previous.states if previous else {}
        self.states: dict[str, OriginHealth] = {}
        for key, watched in self._watched.items():
            state = old_states.get(key) or OriginHealth(history_size=settings.history)
            state.consecutive_up = watched.monitor.consecutive_up
            state.consecutive_down = watched.monitor.consecutive_down
            state.history_size = settings.history
            self.states[key] = state
        self.recovered: dict[str, float] = dict(previous.recovered) if previous else {}
        # One affinity key per process, kept over reloads so cookies stay valid [ours].
        self.secret: bytes = previous.secret if previous else os.urandom(32)
        self.steerings: dict[str, ZoneSteering] = {}
        for zone in router.zones:
            lb = zone.config.load_balancer
            if lb is None:
                continue
            old = previous.steerings.get(zone.name) if previous else None
            sessions: HeaderAffinity | None = None
            outliers: dict[str, PoolOutliers] = {}
            if old is not None:
                outliers = old.outliers
                if old.settings.affinity == lb.affinity:
                    sessions = old.sessions
            self.steerings[zone.name] = ZoneSteering(
                zone,
                lb,
                self.states,
                self.recovered,
                clock=clock,
                secret=self.secret,
                outliers=outliers,
                sessions=sessions,
                rng=self._rng,
            )
        self.engine: AlertEngine
        if previous is not None:
            self.engine = previous.engine
            self.engine.reconfigure(settings.alerts)
            self.history: deque[AlertRecord] = previous.history
        else:
            self.engine = AlertEngine(settings.alerts)
            self.history = deque(maxlen=ALERT_HISTORY)
        self._notifier = notifier or Notifier(
            settings.alerts.webhooks,
            email=settings.alerts.email,
            max_attempts=settings.alerts.max_attempts,
        )
        self._scheduler = Scheduler(
            self._probe,
            self._on_result,
            max_concurrent=settings.max_concurrent_probes,
            jitter=settings.jitter,
            rng=self._rng,
        )
        for key, watched in self._watched.items():
            job = job_for(key, watched.monitor)
            if not self.states[key].history:
                # Never probed: "unknown" counts as down (spec §6.3), so learn quickly, still
                # spread over a short window rather than all at once.
                spread = min(1.0, watched.monitor.interval * max(settings.jitter, 0.05))
                job = replace(job, first_delay=self._rng.uniform(0.0, spread))
            self._scheduler.watch(job)
        self._wake = asyncio.Event()
        self._alert_task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    # -- Service --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._publish_all()
        self._scheduler.start()
        self._alert_task = asyncio.create_task(self._alert_loop(), name="health-alerts")

    async def stop(self) -> None:
        await self._scheduler.stop()
        if self._alert_task is not None:
            self._alert_task.cancel()
            await asyncio.gather(self._alert_task, return_exceptions=True)
            self._alert_task = None
        if not self._sending:
            await self._notifier.close()
            return
        # Alerts still being delivered (a reload replaced this service, whose history the new
        # one adopted) finish their retries with this notifier instead of being lost.
        task = asyncio.create_task(self._finish_sending(), name="health-alerts-retiring")
        _RETIRING.add(task)
        task.add_done_callback(_RETIRING.discard)

    async def _finish_sending(self) -> None:
        sending = list(self._sending)
        _, late = await asyncio.wait(sending, timeout=RETIRING_DELIVERY_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        await self._notifier.close()

    # -- probes ---------------------------------------------------------------------------------

    async def _probe(self, key: str) -> ProbeResult:
        watched = self._watched[key]
        return await self._probe_fn(watched.target, watched.monitor)

    def _on_result(self, key: str, result: ProbeResult, _monotonic: float) -> None:
        watched = self._watched.get(key)
        if watched is None:
            return
        now = self._clock()
        labels = (watched.zone, watched.pool)
        outcome = "ok" if result.ok else str(result.reason or "failed")
        self._metrics.health_checks.labels(*labels, outcome).inc()
        self._metrics.health_check_seconds.labels(*labels).observe(result.latency)
        change = self.states[key].observe(result, now)
        if change is None:
            return
        steering = self.steerings.get(watched.zone)
        if change.old is Health.UNHEALTHY and change.new is Health.HEALTHY:
            self.recovered[key] = now  # slow start ramps from here
            outliers = steering.outliers.get(watched.pool) if steering else None
            if outliers is not None:
                outliers.reinstate(watched.origin, now)
        reason = f": {change.reason}" if change.reason else ""
        log.log(
            logging.INFO if change.new is Health.HEALTHY else logging.WARNING,
            "health %s/%s %s: %s -> %s%s",
            watched.zone,
            watched.pool,
            watched.origin,
            change.old,
            change.new,
            reason,
        )
        self._metrics.origin_healthy.labels(*labels, watched.origin).set(
            1 if change.new is Health.HEALTHY else 0
        )
        if steering is not None:
            steering.refresh()
            self._publish_pools(steering)
        zone = watched.zone if watched.zone != CHECKS_ZONE else f"check/{watched.pool}"
        self.engine.on_health_change(zone, watched.origin, change, watched.notify_on)
        self._wake.set()

    def _publish_all(self) -> None:
        self._metrics.origin_healthy.clear()
        self._metrics.pool_serving.clear()
        for key, watched in self._watched.items():
            healthy = self.states[key].state is Health.HEALTHY
            self._metrics.origin_healthy.labels(watched.zone, watched.pool, watched.origin).set(
                1 if healthy else 0
            )
        for steering in self.steerings.values():
            self._publish_pools(steering)

    def _publish_pools(self, steering: ZoneSteering) -> None:
        for pool, health in steering.pool_states.items():
            serving = 1 if health in SERVING else 0
            self._metrics.pool_serving.labels(steering.zone.name, pool).set(serving)

    # -- Observer and ResponseFilter --------------------------------------------------------------

    def on_complete(self, ex: Exchange) -> None:
        zone = ex.zone
        if zone is None:
            return
        steering = self.steerings.get(zone.name) if self.steerings else None
        if steering is not None:
            steering.forget(ex)
        if not ex.attempts:
            return
        now = self._clock()
        if now >= self._next_flush:
            self.engine.flush(now)
            self._next_flush = now + ALERT_FLUSH_SECONDS
        for attempt in ex.attempts:
            if not attempt.status:
                continue
            self.engine.tally(zone.name, attempt.origin, attempt.status)
            if steering is None:
                continue
            for pool in steering.pools_with(attempt.origin):
                ejection = steering.outliers[pool].record(attempt.origin, attempt.status, now)
                if ejection is not None:
                    self._metrics.outlier_ejections.labels(zone.name, pool, attempt.origin).inc()
                    log.warning(
                        "outlier %s/%s %s ejected for %.0fs (ejection %d) after status %d",
                        zone.name,
                        pool,
                        attempt.origin,
                        ejection.duration,
                        ejection.count,
                        attempt.status,
                    )

    def on_response(self, ex: Exchange, headers: Headers) -> None:
        zone = ex.zone
        if zone is not None:
            steering = self.steerings.get(zone.name)
            if steering is not None:
                steering.on_response(ex, headers)

    # -- alerts ---------------------------------------------------------------------------------

    async def _alert_loop(self) -> None:
        every = self.settings.alerts.evaluate_every
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), every)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                alerts = self.engine.evaluate(self._clock())
            except Exception:
                log.exception("alert evaluation failed")
                continue
            if alerts:
                records = [AlertRecord(alert) for alert in alerts]
                self.history.extend(records)
                task = asyncio.create_task(self._send(records))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, records: Sequence[AlertRecord]) -> None:
        deliveries = await self._notifier.deliver([r.alert for r in records])
        channels = self._notifier.channels
        for index, record in enumerate(records):
            record.deliveries = deliveries[index * channels : (index + 1) * channels]
            record.pending = False
            kind = record.alert.kind.value
            if not record.deliveries:
                self._metrics.alerts.labels(kind, "logged").inc()
            for delivery in record.deliveries:
                self._metrics.alerts.labels(kind, "delivered" if delivery.ok else "failed").inc()

    # -- admin ----------------------------------------------------------------------------------

    def document(self, results: int = 10) -> dict[str, Any]:
        """Current health, pool and balancer states, and the last ``results`` probe results."""
        now = self._clock()
        zones = []
        for name, steering in self.steerings.items():
            pools = []
            for policy in steering.settings.pools:
                pool = next(p for p in steering.zone.pools if p.name == policy.name)
                outliers = steering.outliers[policy.name]
                origins = []
                for origin in pool.origins:
                    key = origin_key(name, pool.name, origin.address)
                    entry = self._origin_json(key, results) if key in self.states else {}
                    until = outliers.ejected_until(origin.address)
                    entry.update(
                        address=origin.address,
                        ejected=outliers.is_ejected(origin.address, now),
                        ejected_until=until if until is not None and until > now else None,
                        weight=round(pool.balancer.weight(origin), 4),
                    )
                    entry.setdefault("health", "unmonitored")
                    origins.append(entry)
                pools.append(
                    {
                        "name": pool.name,
                        "health": steering.pool_states.get(pool.name, "unknown"),
                        "monitor": policy.monitor,
                        "minimum_origins": policy.minimum_origins,
                        "fallback": policy.name == steering.settings.fallback.name,
                        "origins": origins,
                    }
                )
            zones.append(
                {
                    "name": name,
                    "health": lb_health(steering.settings, steering.pool_states),
                    "steering": steering.settings.steering,
                    "affinity": steering.settings.affinity.mode,
                    "pools": pools,
                }
            )
        checks = []
        for check in self.settings.checks:
            key = _check_key(check.name)
            entry = {"name": check.name, "address": check.address}
            if check.suspended:
                entry["health"] = "suspended"
            else:
                entry.update(self._origin_json(key, results))
            checks.append(entry)
        return {"zones": zones, "checks": checks}

    def _origin_json(self, key: str, results: int) -> dict[str, Any]:
        state = self.states[key]
        recent = list(state.history)[-results:] if results > 0 else []
        return {
            "health": state.state.value,
            "changed_at": state.changed_at,
            "failure_reason": state.last_reason.value if state.last_reason else None,
            "results": [
                {
                    "at": r.at,
                    "ok": r.ok,
                    "latency": round(r.latency, 6),
                    "status": r.status,
                    "reason": r.reason.value if r.reason else None,
                }
                for r in reversed(recent)
            ],
        }

    def alerts_document(self, limit: int = 50) -> list[dict[str, Any]]:
        return [record.to_json() for record in list(self.history)[-limit:][::-1]]


def build_health(
    config: Config, router: Router, metrics: Metrics, previous: Iterable[object] = ()
) -> HealthService:
    """The health service for a config, adopting the state of the one it replaces."""
    old = next((s for s in previous if isinstance(s, HealthService)), None)
    return HealthService(config, router, metrics, old)


def find_health(services: Iterable[object]) -> HealthService | None:
    return next((s for s in services if isinstance(s, HealthService)), None)


def _check_key(name: str) -> str:
    return f"check/{name}"


def _watched(config: Config, router: Router) -> Iterable[Watched]:
    monitors = config.health.monitors
    for zone in router.zones:
        lb = zone.config.load_balancer
        if lb is None:
            continue
        pools = {pool.name: pool for pool in zone.pools}
        for policy in lb.pools:
            pool = pools[policy.name]
            # spec §6.3: a disabled pool gets no probes; no monitor = health ignored.
            if policy.monitor is None or not (policy.enabled and pool.enabled):
                continue
            monitor = monitors[policy.monitor]
            has_host = any(name.lower() == "host" for name in monitor.headers)
            for origin in pool.origins:
                key = origin_key(zone.name, pool.name, origin.address)
                # An https probe of a TLS pool uses the pool's context and SNI: a `strict` pool's
                # origin is healthy only if its certificate passes the proxy's own checks.
                tls = origin.tls if monitor.type == "https" else None
                # [ours] monitor port 0 = the origin's own port (origins always name one).
                target = ProbeTarget(
                    origin.host,
                    monitor.port or origin.port,
                    None if has_host or zone.host_header is None else zone.host_header.decode(),
                    key,
                    tls.context if tls is not None else None,
                    tls.server_hostname if tls is not None else None,
                )
                yield Watched(key, zone.name, pool.name, origin.address, target, monitor)
    for check in config.health.checks:
        if check.suspended:
            continue
        key = _check_key(check.name)
        target = ProbeTarget(check.address, 0, None, key)
        yield Watched(
            key, CHECKS_ZONE, check.name, check.address, target, check.monitor, check.notify_on
        )
