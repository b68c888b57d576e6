"""The metric catalogue: every metric the edge exports, declared once with its help text."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # the _created series double the scrape for no use here

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per edge instance, so tests and reloads stay isolated."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "og_requests",
            "Requests answered, by zone, status class and outcome.",
            ["zone", "status_class", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "og_request_duration_seconds",
            "Time from request head to the end of the response, by zone.",
            ["zone"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.origin_attempts = Counter(
            "og_origin_attempts",
            "Attempts at origins, by zone, pool, origin and result (ok or the failure kind).",
            ["zone", "pool", "origin", "result"],
            registry=r,
        )
        self.origin_seconds = Histogram(
            "og_origin_response_seconds",
            "Time from sending the request to the origin's response head, by zone.",
            ["zone"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.failovers = Counter(
            "og_failover_retries",
            "Zero-downtime failover retries on another origin, by zone and the failed code.",
            ["zone", "code"],
            registry=r,
        )
        self.open_connections = Gauge(
            "og_open_connections", "Open connections, by side.", ["side"], registry=r
        )
        self.in_flight = Gauge(
            "og_in_flight_requests", "Requests being answered right now.", registry=r
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
        self._children: dict[tuple[str, ...], Callable[..., None]] = {}

    def count_request(self, zone: str, status: int, outcome: str, seconds: float) -> None:
        key = ("r", zone, str(status // 100), outcome)
        inc = self._children.get(key)
        if inc is None:
            inc = self.requests.labels(zone, f"{status // 100}xx", outcome).inc
            self._children[key] = inc
        inc()
        key = ("t", zone)
        observe = self._children.get(key)
        if observe is None:
            observe = self.request_seconds.labels(zone).observe
            self._children[key] = observe
        observe(seconds)

    def count_attempt(self, zone: str, pool: str, origin: str, result: str, seconds: float) -> None:
        key = ("a", zone, pool, origin, result)
        inc = self._children.get(key)
        if inc is None:
            inc = self.origin_attempts.labels(zone, pool, origin, result).inc
            self._children[key] = inc
        inc()
        if result == "ok":
            key = ("o", zone)
            observe = self._children.get(key)
            if observe is None:
                observe = self.origin_seconds.labels(zone).observe
                self._children[key] = observe
            observe(seconds)
