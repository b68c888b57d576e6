"""The metric catalogue: every metric the edge exports, declared once with its help text.

Per-request metrics are plain counters updated without locks (one event loop owns them) and
turned into Prometheus families only when scraped; prometheus-client's own metric objects take
a lock on every update, which a profile showed costing several microseconds per request.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # the _created series double the scrape for no use here

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class LatencyHistogram:
    """Bucket counts and a sum; `observe` is a bisect and two additions."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        out = []
        running = 0
        for bound, count in zip(LATENCY_BUCKETS, self.counts, strict=False):
            running += count
            out.append((repr(float(bound)), float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out


class Metrics:
    """One registry per edge instance, so tests and reloads stay isolated."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Hot path: updated per request, exported by _RequestCollector.
        self.requests: dict[tuple[str, str, str], int] = {}
        self.request_seconds: dict[str, LatencyHistogram] = {}
        self.origin_attempts: dict[tuple[str, str, str, str], int] = {}
        self.origin_seconds: dict[str, LatencyHistogram] = {}
        self.in_flight = 0
        r.register(_RequestCollector(self))
        # Rare events: prometheus-client objects are fine here.
        self.failovers = Counter(
            "og_failover_retries",
            "Zero-downtime failover retries on another origin, by zone and the failed code.",
            ["zone", "code"],
            registry=r,
        )
        self.open_connections = Gauge(
            "og_open_connections", "Open connections, by side.", ["side"], registry=r
        )
        self.reloads = Counter(
            "og_config_reloads", "Configuration reloads, by result.", ["result"], registry=r
        )
        self.rejected = Counter(
            "og_rejected_requests",
            "Requests refused before routing (malformed, too large, too slow), by status.",
            ["status"],
            registry=r,
        )
        # Origin health (health/service.py): probes, pool state, ejections, alerts.
        self.origin_healthy = Gauge(
            "og_origin_healthy",
            "1 if the origin's last health state is healthy, 0 if unhealthy or unknown; "
            "standalone checks use zone \"checks\" and the check name as pool.",
            ["zone", "pool", "origin"],
            registry=r,
        )
        self.pool_serving = Gauge(
            "og_pool_serving",
            "1 if the pool may take traffic (healthy, degraded or unmonitored), by zone and pool.",
            ["zone", "pool"],
            registry=r,
        )
        self.health_checks = Counter(
            "og_health_checks",
            "Health probes run, by zone, pool and result (ok or the failure reason).",
            ["zone", "pool", "result"],
            registry=r,
        )
        self.health_check_seconds = Histogram(
            "og_health_check_seconds",
            "Health probe latency (retries included), by zone and pool.",
            ["zone", "pool"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outlier_ejections = Counter(
            "og_outlier_ejections",
            "Origins taken out by passive outlier detection, by zone, pool and origin.",
            ["zone", "pool", "origin"],
            registry=r,
        )
        self.alerts = Counter(
            "og_alerts",
            "Origin alerts raised, by kind and delivery result (delivered, failed, logged).",
            ["kind", "result"],
            registry=r,
        )
        # Block traffic (protect/: IP access, custom rules, rate limits, challenge).
        self.security_events = Counter(
            "og_security_events",
            "Security rule matches, by zone, phase (ip_access, custom, rate_limit, "
            "under_attack), rule and action taken.",
            ["zone", "phase", "rule", "action"],
            registry=r,
        )
        self.challenges = Counter(
            "og_challenge_answers",
            "Posts to the challenge verify path, by zone and result (passed, failed, "
            "bad_request).",
            ["zone", "result"],
            registry=r,
        )
        # Waiting rooms (protect/waiting_room): gauges refreshed from the room state by its
        # monitor service and on admin status reads; counters only off the admitted path.
        room = ["zone", "room"]
        self.waiting_room_active_users = Gauge(
            "og_waiting_room_active_users", "Visitors holding a live session.", room, registry=r
        )
        self.waiting_room_queued_users = Gauge(
            "og_waiting_room_queued_users", "Visitors holding a place in line.", room, registry=r
        )
        self.waiting_room_admission_rate = Gauge(
            "og_waiting_room_admissions_per_minute",
            "New admissions per minute, averaged over the last 5 complete minutes.",
            room,
            registry=r,
        )
        self.waiting_room_estimated_wait = Gauge(
            "og_waiting_room_estimated_wait_seconds",
            "Estimated wait of the last visitor in line; 0 with no queue, -1 when unknown.",
            room,
            registry=r,
        )
        self.waiting_room_admissions = Counter(
            "og_waiting_room_admissions", "New visitors admitted.", room, registry=r
        )
        self.waiting_room_queued_responses = Counter(
            "og_waiting_room_queue_pages",
            "Requests answered with the queue page or JSON status.",
            room,
            registry=r,
        )
        self.waiting_room_turned_away = Counter(
            "og_waiting_room_turned_away",
            "Requests answered with the reject page (queueing_method: reject).",
            room,
            registry=r,
        )

    def count_request(self, zone: str, status: int, outcome: str, seconds: float) -> None:
        key = (zone, _STATUS_CLASS[status // 100] if status < 600 else "other", outcome)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.request_seconds.get(zone)
        if histogram is None:
            histogram = self.request_seconds[zone] = LatencyHistogram()
        histogram.observe(seconds)

    def count_attempt(self, zone: str, pool: str, origin: str, result: str, seconds: float) -> None:
        key = (zone, pool, origin, result)
        self.origin_attempts[key] = self.origin_attempts.get(key, 0) + 1
        if result == "ok":
            histogram = self.origin_seconds.get(zone)
            if histogram is None:
                histogram = self.origin_seconds[zone] = LatencyHistogram()
            histogram.observe(seconds)


_STATUS_CLASS = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"]


class _RequestCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        requests = CounterMetricFamily(
            "og_requests",
            "Requests answered, by zone, status class and outcome.",
            labels=["zone", "status_class", "outcome"],
        )
        for labels, value in list(m.requests.items()):
            requests.add_metric(list(labels), value)
        yield requests
        attempts = CounterMetricFamily(
            "og_origin_attempts",
            "Attempts at origins, by zone, pool, origin and result (ok or the failure kind).",
            labels=["zone", "pool", "origin", "result"],
        )
        for attempt_labels, value in list(m.origin_attempts.items()):
            attempts.add_metric(list(attempt_labels), value)
        yield attempts
        yield _histogram(
            "og_request_duration_seconds",
            "Time from request head to the end of the response, by zone.",
            m.request_seconds,
        )
        yield _histogram(
            "og_origin_response_seconds",
            "Time from sending the request to the origin's response head, by zone.",
            m.origin_seconds,
        )
        yield GaugeMetricFamily(
            "og_in_flight_requests", "Requests being answered right now.", value=m.in_flight
        )


def _histogram(name: str, documentation: str, by_zone: dict[str, LatencyHistogram]) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=["zone"])
    for zone, histogram in list(by_zone.items()):
        family.add_metric([zone], histogram.cumulative(), histogram.total)
    return family
