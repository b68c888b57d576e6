"""Origin alerts as pure state + ``now``: error-rate burn (spec §4.1), Passive Origin
Monitoring (spec §4.2) and health state changes (spec §4.3).

``record`` is called for every proxied response (never awaits); ``evaluate`` is called
periodically and returns the alerts to deliver. Counters live in time buckets, so memory is
bounded by the long window, not by traffic.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from originguard.health.settings import AlertSettings
from originguard.health.state import Health, Transition

PASSIVE_LOOKBACK = 86400.0  # the origin served non-5xx in the past 24 h
PASSIVE_SHARE = 0.10  # those 521s are > 10 % of the zone's traffic
PASSIVE_REPEAT = 8 * 3600.0  # at most once per origin per 8 h
PASSIVE_MAX_PER_ISSUE = 3
PASSIVE_ISSUE_CLEARS = 86400.0  # [ours] an issue ends after 24 h without the condition


class AlertKind(StrEnum):
    ERROR_RATE = "origin_error_rate"
    ERROR_RATE_RECOVERED = "origin_error_rate_recovered"
    PASSIVE_MONITORING = "passive_origin_monitoring"
    HEALTH_CHANGE = "health_check_status"


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    zone: str
    origin: str | None
    at: float
    summary: str
    details: dict[str, float | int | str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "zone": self.zone,
            "origin": self.origin,
            "at": self.at,
            "summary": self.summary,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Counts:
    total: int = 0
    errors: int = 0  # 5xx, edge 521/522/523 included
    refused: int = 0  # 521


class Window:
    """Request counts in fixed time buckets, covering the last ``span`` seconds."""

    def __init__(self, bucket: float, span: float) -> None:
        self._bucket = bucket
        self._span = span
        self._slots: deque[tuple[int, list[int]]] = deque()
        self._newest = -1  # index of the newest bucket, whose counts are `_newest_counts`
        self._newest_counts: list[int] = []

    def add(self, now: float, status: int, count: int = 1) -> None:
        index = math.floor(now / self._bucket)
        if index == self._newest:
            # Every request in the same bucket: no search, and nothing can have expired.
            counts = self._newest_counts
        else:
            counts = self._slot(index)
            self._expire(now)
            if index > self._newest:
                self._newest, self._newest_counts = index, counts
        counts[0] += count
        if 500 <= status <= 599:
            counts[1] += count
            if status == 521:
                counts[2] += count

    def _slot(self, index: int) -> list[int]:
        # responses finish slightly out of order: search back from the newest bucket
        position = len(self._slots)
        while position and self._slots[position - 1][0] > index:
            position -= 1
        if position and self._slots[position - 1][0] == index:
            return self._slots[position - 1][1]
        counts = [0, 0, 0]
        self._slots.insert(position, (index, counts))
        return counts

    def counts(self, seconds: float, now: float) -> Counts:
        """Counts of the buckets that started within the last ``seconds``."""
        first = math.floor((now - seconds) / self._bucket) + 1
        total = errors = refused = 0
        for index, (t, e, r) in reversed(self._slots):
            if index < first:
                break
            total, errors, refused = total + t, errors + e, refused + r
        return Counts(total, errors, refused)

    def _expire(self, now: float) -> None:
        oldest = math.floor((now - self._span) / self._bucket)
        while self._slots and self._slots[0][0] <= oldest:
            self._slots.popleft()

    def is_empty(self, now: float) -> bool:
        self._expire(now)
        return not self._slots


@dataclass(slots=True)
class _Passive:
    last_sent: float = -math.inf
    sent_in_issue: int = 0
    last_seen: float = -math.inf


Key = tuple[str, str | None]  # (zone, origin); origin None = the whole zone


class AlertEngine:
    def __init__(self, settings: AlertSettings, bucket: float | None = None) -> None:
        self._settings = settings
        self._fixed_bucket = bucket
        self._bucket = settings.bucket if bucket is None else bucket
        self._windows: dict[Key, Window] = {}
        self._last_ok: dict[Key, float] = {}
        self._firing: dict[Key, float] = {}
        self._passive: dict[Key, _Passive] = {}
        self._pending: list[Alert] = []
        # Responses counted by `tally` since the last `flush`: (zone, origin, status) -> n.
        self._tally: dict[tuple[str, str, int], int] = {}

    def reconfigure(self, settings: AlertSettings) -> None:
        """New thresholds after a reload; the counted traffic and firing alerts stay (windows
        already counting keep their bucket width; new ones use the new width)."""
        self._settings = settings
        if self._fixed_bucket is None:
            self._bucket = settings.bucket

    def record(self, zone: str, origin: str, status: int, now: float, count: int = 1) -> None:
        """Count proxied responses (status 521/522/523 for edge connect failures)."""
        for key in ((zone, None), (zone, origin)):
            window = self._windows.get(key)
            if window is None:
                span = max(self._settings.long_window, self._settings.passive_window)
                window = self._windows[key] = Window(self._bucket, span)
            window.add(now, status, count)
        if status < 500:
            self._last_ok[(zone, origin)] = now

    def tally(self, zone: str, origin: str, status: int) -> None:
        """Count one response now and `record` it at the next `flush`: a dict increment per
        request instead of two window updates (flushing each second keeps buckets right)."""
        key = (zone, origin, status)
        tally = self._tally
        tally[key] = tally.get(key, 0) + 1

    def flush(self, now: float) -> None:
        tally, self._tally = self._tally, {}
        for (zone, origin, status), count in tally.items():
            self.record(zone, origin, status, now, count)

    def on_health_change(
        self, zone: str, origin: str, change: Transition, notify_on: str = "either"
    ) -> None:
        """Queue a state-change alert (spec §4.3). unknown -> healthy is start-up, not news."""
        if change.old is Health.UNKNOWN and change.new is Health.HEALTHY:
            return
        if notify_on != "either" and notify_on != change.new.value:
            return
        reason = f" ({change.reason})" if change.reason else ""
        details: dict[str, float | int | str] = {"from": change.old.value, "to": change.new.value}
        if change.reason:
            details["reason"] = change.reason.value
        summary = f"{origin} is {change.new.value}{reason}"
        self._pending.append(
            Alert(AlertKind.HEALTH_CHANGE, zone, origin, change.at, summary, details)
        )

    def evaluate(self, now: float) -> list[Alert]:
        self.flush(now)
        alerts, self._pending = self._pending, []
        for key, window in list(self._windows.items()):
            if key[1] is None or self._settings.per_origin:
                alerts.extend(self._error_rate(key, window, now))
            if key[1] is not None and self._settings.passive_monitoring:
                alerts.extend(self._passive_check(key, window, now))
        self._forget(now)
        return alerts

    def _burn(self, counts: Counts) -> float:
        if counts.total == 0:
            return 0.0
        budget = 1.0 - self._settings.slo / 100.0
        return (counts.errors / counts.total) / budget

    def _error_rate(self, key: Key, window: Window, now: float) -> Iterable[Alert]:
        s = self._settings
        short, long = window.counts(s.short_window, now), window.counts(s.long_window, now)
        burn_short, burn_long = self._burn(short), self._burn(long)
        details: dict[str, float | int | str] = {
            "burn_short": round(burn_short, 2),
            "burn_long": round(burn_long, 2),
            "requests_short": short.total,
            "errors_short": short.errors,
            "slo": s.slo,
        }
        zone, origin = key
        subject = origin or f"zone {zone}"
        # spec §4.1: multi-window: fire only if both windows burn faster than the threshold.
        firing = (
            short.total >= s.min_requests
            and burn_short > s.burn_threshold
            and burn_long > s.burn_threshold
        )
        if firing and key not in self._firing:
            self._firing[key] = now
            summary = f"origin error rate for {subject}: burning the {s.slo}% SLO budget "
            summary += f"{burn_short:.1f}x ({_span(s.short_window)}) and {burn_long:.1f}x "
            summary += f"({_span(s.long_window)})"
            yield Alert(AlertKind.ERROR_RATE, zone, origin, now, summary, details)
        elif key in self._firing and burn_short <= s.burn_threshold:
            since = self._firing.pop(key)
            details["firing_for"] = now - since
            summary = f"origin error rate for {subject} is back within the SLO budget"
            yield Alert(AlertKind.ERROR_RATE_RECOVERED, zone, origin, now, summary, details)

    def _passive_check(self, key: Key, window: Window, now: float) -> Iterable[Alert]:
        zone, origin = key
        sample = self._settings.passive_window  # spec §4.2: 5 minutes by default
        ours = window.counts(sample, now)
        zone_window = self._windows.get((zone, None))
        zone_total = zone_window.counts(sample, now).total if zone_window else 0
        last_ok = self._last_ok.get(key, -math.inf)
        met = (
            ours.total > 0
            and ours.refused == ours.total
            and now - last_ok <= PASSIVE_LOOKBACK
            and ours.refused > PASSIVE_SHARE * zone_total
        )
        state = self._passive.get(key)
        if not met:
            if state is not None and now - state.last_seen >= PASSIVE_ISSUE_CLEARS:
                del self._passive[key]
            return
        if state is None:
            state = self._passive[key] = _Passive()
        state.last_seen = now
        if state.sent_in_issue >= PASSIVE_MAX_PER_ISSUE or now - state.last_sent < PASSIVE_REPEAT:
            return
        state.last_sent = now
        state.sent_in_issue += 1
        details: dict[str, float | int | str] = {
            "requests_in_window": ours.total,
            "zone_requests_in_window": zone_total,
            "window": sample,
            "last_success_age": now - last_ok,
            "alert_in_issue": state.sent_in_issue,
        }
        summary = f"{origin} is unreachable: every request in the last {_span(sample)} got 521"
        yield Alert(AlertKind.PASSIVE_MONITORING, zone, origin, now, summary, details)

    def _forget(self, now: float) -> None:
        """Drop idle keys so memory follows live traffic, not history."""
        for key in [k for k, w in self._windows.items() if w.is_empty(now)]:
            if key not in self._firing:
                del self._windows[key]
        stale = [k for k, at in self._last_ok.items() if now - at > PASSIVE_LOOKBACK]
        for key in stale:
            del self._last_ok[key]
        cleared = [k for k, p in self._passive.items() if now - p.last_seen >= PASSIVE_ISSUE_CLEARS]
        for key in cleared:
            del self._passive[key]


def _span(seconds: float) -> str:
    """300 -> "5 minutes", 3600 -> "1 hour", 2.5 -> "2.5 seconds"."""
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"
