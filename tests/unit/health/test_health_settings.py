"""Settings validation: defaults from the spec and clear refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from originguard.health.settings import (
    AffinitySettings,
    HealthCheckSettings,
    LoadBalancerSettings,
    MonitorSettings,
    code_matches,
)


def test_monitor_defaults_follow_the_spec() -> None:
    monitor = MonitorSettings()
    assert (monitor.interval, monitor.timeout, monitor.retries) == (60.0, 5.0, 2)
    assert monitor.expected_codes == ["200"] and monitor.effective_port == 80
    assert MonitorSettings(type="https").effective_port == 443


def test_durations_accept_units() -> None:
    assert MonitorSettings.model_validate({"interval": "2m", "timeout": "500ms"}).interval == 120


def test_code_patterns_match_exact_codes_and_ranges() -> None:
    assert code_matches("2xx", 204) and code_matches("52x", 521) and not code_matches("52x", 530)
    with pytest.raises(ValidationError):
        MonitorSettings(expected_codes=["2x0"])


@pytest.mark.parametrize(
    "fields",
    [
        {"headers": {"User-Agent": ["me"]}},
        {"method": "HEAD", "expected_body": "ok"},
        {"timeout": 60, "interval": 60},
        {"path": "no-slash"},
        {"headers": {"X-A": ["bad\r\nInjected: yes"]}},
        {"unknown_field": 1},
    ],
)
def test_monitor_refuses_incoherent_settings(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MonitorSettings.model_validate(fields)


def test_affinity_ttl_defaults_and_ranges_per_mode() -> None:
    assert AffinitySettings(mode="cookie").ttl == 82800
    assert AffinitySettings(mode="header", headers=["x-session"]).ttl == 1800
    with pytest.raises(ValidationError):
        AffinitySettings(mode="cookie", ttl=60)
    with pytest.raises(ValidationError):
        AffinitySettings(mode="header", headers=["x"], ttl=7200)


def test_fallback_defaults_to_the_last_pool_and_must_exist() -> None:
    lb = LoadBalancerSettings.model_validate({"pools": [{"name": "a"}, {"name": "b"}]})
    assert lb.fallback.name == "b"
    with pytest.raises(ValidationError):
        LoadBalancerSettings.model_validate({"pools": [{"name": "a"}], "fallback_pool": "z"})


def test_health_check_name_is_restricted() -> None:
    assert HealthCheckSettings(name="api-1", address="203.0.113.5").monitor.type == "http"
    with pytest.raises(ValidationError):
        HealthCheckSettings(name="api 1", address="203.0.113.5")
