"""The WindowCounter contract (state/base.py). Every implementation must pass it: add a
factory to IMPLEMENTATIONS (a Redis one will take a live server from a fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from originguard.state.base import WindowCounter, WindowSample
from originguard.state.memory import MemoryWindowCounter

IMPLEMENTATIONS: dict[str, Callable[[], WindowCounter]] = {"memory": MemoryWindowCounter}
T0 = 1_700_000_000.0  # a multiple of 10 and of 60


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def counter(request: pytest.FixtureRequest) -> WindowCounter:
    return IMPLEMENTATIONS[request.param]()


def test_a_new_key_samples_empty(counter: WindowCounter) -> None:
    sample = asyncio.run(counter.sample("k", 10, T0 + 3))
    assert sample == WindowSample(T0, 0, 0)


def test_hits_in_one_window_add_up(counter: WindowCounter) -> None:
    async def scenario() -> WindowSample:
        for offset in (0.0, 1.0, 9.9):
            await counter.add("k", 10, T0 + offset)
        return await counter.add("k", 10, T0 + 9.95, amount=2)

    assert asyncio.run(scenario()) == WindowSample(T0, 5, 0)


def test_the_next_window_sees_the_last_as_previous(counter: WindowCounter) -> None:
    async def scenario() -> WindowSample:
        for _ in range(4):
            await counter.add("k", 10, T0 + 5)
        await counter.add("k", 10, T0 + 12)
        return await counter.sample("k", 10, T0 + 12.5)

    sample = asyncio.run(scenario())
    assert sample == WindowSample(T0 + 10, 1, 4)
    assert sample.estimate(10, T0 + 12.5) == pytest.approx(4 * 0.75 + 1)


def test_two_idle_windows_forget_everything(counter: WindowCounter) -> None:
    async def scenario() -> WindowSample:
        await counter.add("k", 10, T0 + 1, amount=7)
        return await counter.sample("k", 10, T0 + 25)

    assert asyncio.run(scenario()) == WindowSample(T0 + 20, 0, 0)


def test_keys_are_independent(counter: WindowCounter) -> None:
    async def scenario() -> tuple[WindowSample, WindowSample]:
        await counter.add("a", 10, T0, amount=3)
        return await counter.sample("a", 10, T0), await counter.sample("b", 10, T0)

    a, b = asyncio.run(scenario())
    assert (a.current, b.current) == (3, 0)


def test_add_within_counts_up_to_the_limit_and_no_further(counter: WindowCounter) -> None:
    async def scenario() -> list[bool]:
        return [(await counter.add_within("k", 60, 3, T0 + i))[0] for i in range(5)]

    assert asyncio.run(scenario()) == [True, True, True, False, False]
    assert asyncio.run(counter.sample("k", 60, T0 + 5)).current == 3


def test_add_within_is_atomic_under_concurrent_callers(counter: WindowCounter) -> None:
    async def scenario() -> int:
        results = await asyncio.gather(
            *(counter.add_within("k", 60, 50, T0 + 1) for _ in range(200))
        )
        return sum(1 for counted, _ in results if counted)

    assert asyncio.run(scenario()) == 50


def test_mitigation_lasts_until_its_deadline(counter: WindowCounter) -> None:
    async def scenario() -> list[float | None]:
        await counter.mitigate("k", T0 + 60)
        await counter.mitigate("k", T0 + 30)  # an earlier deadline does not shorten it
        return [
            await counter.mitigated_until("k", T0 + 59),
            await counter.mitigated_until("other", T0),
            await counter.mitigated_until("k", T0 + 60),
        ]

    assert asyncio.run(scenario()) == [T0 + 60, None, None]
