"""Origin alerts with an injected clock (spec §4.1-§4.3)."""

from __future__ import annotations

from originguard.health.alerts import Alert, AlertEngine, AlertKind
from originguard.health.probe import FailureReason
from originguard.health.settings import AlertSettings
from originguard.health.state import Health, Transition

HOUR = 3600.0


def engine(**fields: object) -> AlertEngine:
    return AlertEngine(AlertSettings.model_validate({"min_requests": 10, **fields}))


def traffic(
    alerts: AlertEngine, start: float, end: float, error_share: float, origin: str = "o1"
) -> None:
    """Ten requests a second from ``start`` to ``end``; ``error_share`` of them 502."""
    now = start
    tick = 0
    while now < end:
        for n in range(10):
            status = 502 if (tick * 10 + n) % 100 < error_share * 100 else 200
            alerts.record("shop", origin, status, now)
        tick += 1
        now += 1.0


def kinds(alerts: list[Alert]) -> list[AlertKind]:
    return [alert.kind for alert in alerts]


def test_error_rate_alert_fires_when_both_windows_burn_past_the_threshold() -> None:
    alerts = engine(per_origin=False)
    traffic(alerts, 0, HOUR, error_share=0.05)  # 5 % errors = burn 50 on a 99.9 % SLO
    fired = alerts.evaluate(HOUR)
    assert kinds(fired) == [AlertKind.ERROR_RATE]
    assert fired[0].zone == "shop" and fired[0].origin is None
    assert fired[0].details["burn_short"] == 50.0


def test_short_spike_alone_does_not_fire() -> None:
    alerts = engine(per_origin=False)
    traffic(alerts, 0, HOUR - 300, error_share=0.0)
    traffic(alerts, HOUR - 300, HOUR, error_share=0.05)  # 1 h burn ~ 4.2 < 14.4
    assert alerts.evaluate(HOUR) == []


def test_old_errors_alone_do_not_fire() -> None:
    alerts = engine(per_origin=False)
    traffic(alerts, 0, HOUR - 300, error_share=0.05)
    traffic(alerts, HOUR - 300, HOUR, error_share=0.0)
    assert alerts.evaluate(HOUR) == []


def test_error_rate_alert_fires_once_then_sends_a_recovery_notice() -> None:
    alerts = engine(per_origin=False)
    traffic(alerts, 0, HOUR, error_share=0.05)
    assert kinds(alerts.evaluate(HOUR)) == [AlertKind.ERROR_RATE]
    traffic(alerts, HOUR, HOUR + 60, error_share=0.05)
    assert alerts.evaluate(HOUR + 60) == []  # still firing: no duplicate
    traffic(alerts, HOUR + 60, HOUR + 400, error_share=0.0)
    recovered = alerts.evaluate(HOUR + 400)
    assert kinds(recovered) == [AlertKind.ERROR_RATE_RECOVERED]
    assert alerts.evaluate(HOUR + 460) == []


def test_quiet_zone_below_the_request_floor_does_not_alert() -> None:
    alerts = engine(per_origin=False, min_requests=5000)  # 10 rps x 300 s = 3000 < 5000
    traffic(alerts, 0, HOUR, error_share=0.5)
    assert alerts.evaluate(HOUR) == []


def test_error_rate_is_also_judged_per_origin() -> None:
    alerts = engine()
    traffic(alerts, 0, HOUR, error_share=0.0, origin="good")
    traffic(alerts, 0, HOUR, error_share=0.05, origin="bad")  # zone share 2.5 %: burn 25
    fired = alerts.evaluate(HOUR)
    assert sorted((a.kind, a.origin or "") for a in fired) == [
        (AlertKind.ERROR_RATE, ""),
        (AlertKind.ERROR_RATE, "bad"),
    ]


def test_edge_connect_failures_count_as_origin_errors() -> None:
    alerts = engine(per_origin=False)
    for second in range(int(HOUR)):
        alerts.record("shop", "o1", 522 if second % 20 == 0 else 200, float(second))
    assert kinds(alerts.evaluate(HOUR)) == [AlertKind.ERROR_RATE]


def outage(alerts: AlertEngine, start: float, minutes: float, origin: str = "o1") -> float:
    """``origin`` answers every request with 521 for ``minutes``, one request a second."""
    now = start
    while now < start + minutes * 60:
        alerts.record("shop", origin, 521, now)
        now += 1.0
    return now


def test_passive_monitoring_alerts_when_a_recently_good_origin_is_all_521() -> None:
    alerts = engine(passive_monitoring=True, per_origin=False, min_requests=10**6)
    alerts.record("shop", "o1", 200, 0.0)
    now = outage(alerts, 1.0, minutes=5)
    fired = alerts.evaluate(now)
    assert kinds(fired) == [AlertKind.PASSIVE_MONITORING] and fired[0].origin == "o1"


def test_passive_monitoring_needs_a_success_in_the_last_24_hours() -> None:
    alerts = engine(per_origin=False, min_requests=10**6)
    alerts.record("shop", "o1", 200, 0.0)
    now = outage(alerts, 25 * HOUR, minutes=5)
    assert alerts.evaluate(now) == []


def test_passive_monitoring_needs_every_request_to_be_521() -> None:
    alerts = engine(per_origin=False, min_requests=10**6)
    alerts.record("shop", "o1", 200, 0.0)
    now = outage(alerts, 1.0, minutes=5)
    alerts.record("shop", "o1", 200, now - 10)
    assert alerts.evaluate(now) == []


def test_passive_monitoring_ignores_an_origin_with_a_small_share_of_the_zone() -> None:
    alerts = engine(per_origin=False, min_requests=10**6)
    alerts.record("shop", "o1", 200, 0.0)
    traffic(alerts, 1.0, 301.0, error_share=0.0, origin="big")  # 3000 requests
    now = outage(alerts, 1.0, minutes=5)  # 300 x 521 = 9 % of the zone
    assert alerts.evaluate(now) == []


def test_passive_monitoring_sends_at_most_once_per_origin_per_8_hours() -> None:
    alerts = engine(per_origin=False, min_requests=10**6)
    sent = 0
    start = 0.0
    for _flap in range(12):  # flaps every hour for 12 hours
        alerts.record("shop", "o1", 200, start)
        now = outage(alerts, start + 1, minutes=6)
        sent += len(alerts.evaluate(now))
        start += HOUR
    assert sent == 2  # hours 0 and 8


def test_passive_monitoring_sends_no_more_than_3_alerts_for_one_issue() -> None:
    alerts = engine(per_origin=False, min_requests=10**6)
    sent = 0
    start = 0.0
    for _flap in range(48):  # flapping for two days
        alerts.record("shop", "o1", 200, start)
        now = outage(alerts, start + 1, minutes=6)
        sent += len(alerts.evaluate(now))
        start += HOUR
    assert sent == 3


def test_health_change_alert_carries_the_failure_reason() -> None:
    alerts = engine()
    down = Transition(Health.HEALTHY, Health.UNHEALTHY, 5.0, FailureReason.HTTP_TIMEOUT)
    alerts.on_health_change("shop", "o1", down)
    fired = alerts.evaluate(6.0)
    assert kinds(fired) == [AlertKind.HEALTH_CHANGE]
    assert fired[0].details["reason"] == "HTTP timeout occurred"
    assert "unhealthy" in fired[0].summary and alerts.evaluate(7.0) == []


def test_health_change_alert_respects_notify_on_and_skips_startup() -> None:
    alerts = engine()
    up = Transition(Health.UNHEALTHY, Health.HEALTHY, 5.0, None)
    alerts.on_health_change("shop", "o1", up, notify_on="unhealthy")
    alerts.on_health_change("shop", "o1", Transition(Health.UNKNOWN, Health.HEALTHY, 1.0, None))
    assert alerts.evaluate(6.0) == []
    alerts.on_health_change("shop", "o1", up, notify_on="healthy")
    assert kinds(alerts.evaluate(7.0)) == [AlertKind.HEALTH_CHANGE]


def test_alert_serialises_to_json_friendly_values() -> None:
    alerts = engine()
    alerts.on_health_change(
        "shop", "o1", Transition(Health.HEALTHY, Health.UNHEALTHY, 5.0, FailureReason.OTHER)
    )
    body = alerts.evaluate(5.0)[0].to_json()
    assert body["kind"] == "health_check_status" and body["origin"] == "o1"


def test_short_windows_count_in_fine_buckets_so_a_drill_alert_fires_and_recovers() -> None:
    alerts = engine(short_window=2, long_window=6, min_requests=5, per_origin=False)
    assert AlertSettings(short_window=2, long_window=6).bucket == 0.2
    for n in range(10):
        alerts.record("shop", "o1", 500, 100.0 + n * 0.1)
    assert kinds(alerts.evaluate(101.0)) == [AlertKind.ERROR_RATE]
    assert alerts.evaluate(101.5) == []  # still burning: no duplicate
    assert kinds(alerts.evaluate(103.2)) == [AlertKind.ERROR_RATE_RECOVERED]
    assert alerts.evaluate(110.0) == []


def test_spec_windows_keep_ten_second_buckets() -> None:
    assert AlertSettings().bucket == 10.0


def test_passive_monitoring_window_is_a_setting_with_the_spec_default() -> None:
    assert AlertSettings().passive_window == 300.0
    alerts = engine(passive_window=3, short_window=2, long_window=6)
    alerts.record("shop", "o1", 200, 100.0)
    for n in range(6):
        alerts.record("shop", "o1", 521, 101.0 + n * 0.5)
    assert alerts.evaluate(102.9) == []  # the 3 s sample still holds the 200
    (alert,) = alerts.evaluate(104.2)
    assert alert.kind is AlertKind.PASSIVE_MONITORING and alert.details["window"] == 3.0
    assert "in the last 3 seconds got 521" in alert.summary
    assert alerts.evaluate(104.5) == []  # at most once per origin per 8 h
