"""Rate limiting rules (spec §7.3) with an injected clock: throttle, mitigation timeout,
counting expressions on the response, keys per characteristic, and the estimate's accuracy."""

from __future__ import annotations

import asyncio
import random

import pytest
from exchanges import Clock, build, event_count, finish, guard, make_exchange

from originguard.protect.ratelimit import CompiledLimit
from originguard.state.base import WindowSample, seconds_until_below
from originguard.state.memory import MemoryWindowCounter

LOGIN = """
rate_limits:
  - name: login
    expression: 'http.request.uri.path eq "/login"'
    period: 10s
    requests_per_period: 3
"""


def statuses(security: object, clock: Clock, count: int, step: float = 0.0, **kw: object) -> list:
    async def scenario() -> list[int]:
        out = []
        for _ in range(count):
            ex = make_exchange("/login", **kw)  # type: ignore[arg-type]
            answer = await guard(security, ex)  # type: ignore[arg-type]
            out.append(answer.status if answer is not None else 200)
            finish(security, ex, out[-1])  # type: ignore[arg-type]
            clock.advance(step)
        return out

    return asyncio.run(scenario())


def test_the_request_after_n_is_refused_with_429_and_retry_after() -> None:
    clock = Clock(1_700_000_000.0)
    security, metrics = build(LOGIN, clock)
    assert statuses(security, clock, 4) == [200, 200, 200, 429]

    async def one() -> object:
        return await guard(security, make_exchange("/login"))

    answer = asyncio.run(one())
    assert answer.status == 429  # type: ignore[attr-defined]
    retry = dict(answer.headers)[b"retry-after"]  # type: ignore[attr-defined]
    assert 10 < int(retry) <= 14  # the next window, once the last one weighs little enough
    assert b"1015" in answer.body  # type: ignore[attr-defined]
    assert event_count(metrics, "rate_limit", "login", "block") == 2


def test_throttle_refuses_only_the_excess_and_refused_requests_do_not_count() -> None:
    clock = Clock(1_700_000_000.0)
    security, _ = build(LOGIN, clock)
    # One request a second for 40 s against 3 per 10 s: about 3 of every 10 pass.
    result = statuses(security, clock, 40, step=1.0)
    assert 8 <= result.count(200) <= 14


def test_other_paths_and_other_clients_are_not_limited() -> None:
    clock = Clock(1_700_000_000.0)
    security, _ = build(LOGIN, clock)
    statuses(security, clock, 4)
    assert statuses(security, clock, 1, client_ip="203.0.113.8") == [200]

    async def other_path() -> object:
        return await guard(security, make_exchange("/home"))

    assert asyncio.run(other_path()) is None


def test_ipv6_clients_in_one_64_share_a_counter() -> None:
    clock = Clock(1_700_000_000.0)
    security, _ = build(LOGIN, clock)
    assert statuses(security, clock, 3, client_ip="2001:db8:1:2::1") == [200] * 3
    assert statuses(security, clock, 1, client_ip="2001:db8:1:2:ffff::9") == [429]
    assert statuses(security, clock, 1, client_ip="2001:db8:1:3::1") == [200]


def test_a_spoofed_forwarded_for_does_not_change_the_key() -> None:
    clock = Clock(1_700_000_000.0)
    security, _ = build(LOGIN, clock)
    spoofs = [[(b"x-forwarded-for", f"10.0.0.{i}".encode())] for i in range(4)]

    async def scenario() -> list[int]:
        out = []
        for headers in spoofs:
            answer = await guard(security, make_exchange("/login", headers=headers))
            out.append(answer.status if answer else 200)
        return out

    assert asyncio.run(scenario()) == [200, 200, 200, 429]


def test_header_characteristic_keeps_a_missing_header_apart_from_an_empty_one() -> None:
    clock = Clock(1_700_000_000.0)
    security, _ = build(
        """
rate_limits:
  - name: per key
    expression: 'http.request.uri.path eq "/login"'
    characteristics: [cf.colo.id, 'http.request.headers["x-api-key"]']
    period: 10s
    requests_per_period: 1
""",
        clock,
    )
    assert statuses(security, clock, 2) == [200, 429]
    empty = [(b"x-api-key", b"")]
    assert statuses(security, clock, 2, headers=empty) == [200, 429]
    assert statuses(security, clock, 1, headers=[(b"x-api-key", b"k1")]) == [200]
    # The client IP is not a characteristic here: another address shares the counter.
    assert statuses(security, clock, 1, headers=[(b"x-api-key", b"k1")], client_ip="192.0.2.9") == [
        429
    ]


def test_a_long_characteristic_value_is_counted_under_a_digest_of_bounded_size() -> None:
    limit = CompiledLimit(
        "per key", lambda view: True, None,
        (lambda view: "k" * 29_000,), 10.0, 1, 0.0, "block", None,
    )  # fmt: skip
    other = CompiledLimit(
        "per key", lambda view: True, None,
        (lambda view: "k" * 28_999 + "j",), 10.0, 1, 0.0, "block", None,
    )  # fmt: skip
    key = limit.key("site", None)  # type: ignore[arg-type]
    assert len(key) < 64 and key.startswith("site\x1fper key\x1f")
    assert key != other.key("site", None)  # type: ignore[arg-type]
    assert limit.key("site", None) == key  # type: ignore[arg-type]


def test_mitigation_timeout_blocks_every_request_of_the_key_until_it_ends() -> None:
    clock = Clock(1_700_000_000.0)
    security, _ = build(
        """
rate_limits:
  - name: login
    expression: 'http.request.uri.path eq "/login"'
    period: 10s
    requests_per_period: 2
    mitigation_timeout: 1m
""",
        clock,
    )
    assert statuses(security, clock, 3) == [200, 200, 429]
    clock.advance(30)  # the window has long passed, the penalty has not
    assert statuses(security, clock, 1) == [429]

    async def retry_after() -> bytes:
        answer = await guard(security, make_exchange("/login"))
        return dict(answer.headers)[b"retry-after"]

    assert asyncio.run(retry_after()) == b"30"
    clock.advance(31)
    assert statuses(security, clock, 1) == [200]


def test_counting_expression_counts_only_responses_it_accepts() -> None:
    clock = Clock(1_700_000_000.0)
    security, _ = build(
        """
rate_limits:
  - name: failed logins
    expression: 'http.request.uri.path eq "/login"'
    counting_expression: 'http.response.code eq 401'
    period: 60s
    requests_per_period: 2
""",
        clock,
    )

    async def attempt(status: int) -> int:
        ex = make_exchange("/login")
        answer = await guard(security, ex)
        result = answer.status if answer else status
        finish(security, ex, result)
        await asyncio.sleep(0)  # the count is a task of its own
        return result

    async def scenario() -> list[int]:
        return [await attempt(s) for s in (200, 200, 200, 401, 200, 401, 200, 200)]

    assert asyncio.run(scenario()) == [200, 200, 200, 401, 200, 401, 429, 429]


def test_log_action_lets_requests_through_and_records_the_excess() -> None:
    clock = Clock(1_700_000_000.0)
    logged = LOGIN.replace("requests_per_period: 3", "requests_per_period: 3\n    action: log")
    security, metrics = build(logged, clock)
    assert statuses(security, clock, 5) == [200] * 5
    assert event_count(metrics, "rate_limit", "login", "log") == 2


def test_skip_rate_limits_from_a_custom_rule() -> None:
    clock = Clock(1_700_000_000.0)
    security, _ = build(
        LOGIN + "rules:\n  - {name: partners, expression: 'ip.src eq 203.0.113.7', action: skip,"
        " skip: [rate_limits]}\n",
        clock,
    )
    assert statuses(security, clock, 5) == [200] * 5


def test_counters_survive_a_reload() -> None:
    from exchanges import security_yaml

    from originguard.config import loads
    from originguard.observe.metrics import Metrics
    from originguard.protect.guard import build_security

    clock = Clock(1_700_000_000.0)
    first, _ = build(LOGIN, clock)
    statuses(first, clock, 3)
    config = loads(security_yaml(LOGIN))
    second = build_security(config, Metrics(), first.request_filters, clock=clock)
    assert statuses(second, clock, 1) == [429]


# -- the estimate -------------------------------------------------------------------------


def test_estimate_weights_the_previous_window_by_its_overlap() -> None:
    sample = WindowSample(start=100.0, current=2, previous=10)
    assert sample.estimate(10, 100.0) == 12
    assert sample.estimate(10, 102.5) == pytest.approx(9.5)
    assert sample.estimate(10, 109.999) == pytest.approx(2.001, abs=1e-6)


def test_retry_after_is_when_one_more_request_fits() -> None:
    # previous 10, current 0, limit 5: 10 * (1 - f) <= 4 at f = 0.6 -> 6 s into the window.
    assert seconds_until_below(WindowSample(100.0, 0, 10), 10, 5, 100.0) == pytest.approx(6.0)
    # current alone over: wait for the next window and then some.
    assert seconds_until_below(WindowSample(100.0, 8, 0), 10, 5, 101.0) == pytest.approx(9 + 5)
    assert seconds_until_below(WindowSample(100.0, 1, 0), 10, 5, 101.0) == 0.0


@pytest.mark.parametrize("rate", [20, 50, 100])
def test_sliding_estimate_is_within_a_few_percent_of_the_true_count(rate: int) -> None:
    """Poisson arrivals at `rate` per period, sent 50 at a time by concurrent clients on one
    key: the estimate against the exact count in the sliding window after every batch."""
    period = 60.0
    rng = random.Random(rate)
    counter = MemoryWindowCounter()
    times, when = [], 1_700_000_000.0
    for _ in range(rate * 20):
        when += rng.expovariate(rate / period)
        times.append(when)
    errors = []

    async def scenario() -> None:
        for start in range(0, len(times), 50):
            batch = times[start : start + 50]
            await asyncio.gather(*(counter.add("k", period, at) for at in batch))
            now = batch[-1]
            if now - times[0] > 2 * period:
                exact = sum(1 for at in times[: start + 50] if now - period < at <= now)
                estimate = (await counter.sample("k", period, now)).estimate(period, now)
                errors.append(abs(estimate - exact) / exact)

    asyncio.run(scenario())
    assert sum(errors) / len(errors) < 0.06, errors
