"""The probe scheduler driven by a fake clock: no test sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from originguard.health.probe import FailureReason, ProbeResult
from originguard.health.scheduler import Job, Scheduler, job_for
from originguard.health.settings import MonitorSettings

OK = ProbeResult(True, 0.0, 200)


class FakeClock:
    """Virtual time: ``sleep`` parks until ``advance`` moves the clock past its deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, delay), next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        end = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= end:
            at, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, at)
            if not future.done():
                future.set_result(None)
            await settle()
        self.now = end


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def drive(scenario: Callable[[FakeClock], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario(FakeClock()))


def test_first_probes_of_500_origins_spread_over_the_first_interval() -> None:
    first: dict[str, float] = {}

    async def scenario(clock: FakeClock) -> None:
        async def probe(key: str) -> ProbeResult:
            first.setdefault(key, clock())
            return OK

        scheduler = Scheduler(
            probe, lambda *_: None, rng=random.Random(5), clock=clock, sleep=clock.sleep
        )
        for n in range(500):
            scheduler.watch(Job(f"origin-{n}", interval=60.0, cap=10.0))
        scheduler.start()
        await clock.advance(59.999)
        await scheduler.stop()

    drive(scenario)
    starts = list(first.values())
    assert len(starts) == 500 and max(starts) < 60.0
    per_second = Counter(int(start) for start in starts)
    assert len(per_second) == 60  # every second of the interval is used
    assert max(per_second.values()) <= 25  # ~8 expected; lock-step would put 500 in one


def test_later_probes_keep_the_interval_within_the_jitter() -> None:
    starts: list[float] = []

    async def scenario(clock: FakeClock) -> None:
        async def probe(key: str) -> ProbeResult:
            starts.append(clock())
            return OK

        scheduler = Scheduler(
            probe, lambda *_: None, jitter=0.1, rng=random.Random(1), clock=clock, sleep=clock.sleep
        )
        scheduler.watch(Job("a", interval=60.0, cap=10.0))
        scheduler.start()
        await clock.advance(3600)
        await scheduler.stop()

    drive(scenario)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) >= 50 and all(54.0 <= gap <= 66.0 for gap in gaps)


def test_a_stuck_probe_is_abandoned_at_its_cap_and_does_not_block_others() -> None:
    results: list[tuple[str, ProbeResult, float]] = []

    async def scenario(clock: FakeClock) -> None:
        async def probe(key: str) -> ProbeResult:
            if key == "stuck":
                await asyncio.Event().wait()  # never answers
            return OK

        scheduler = Scheduler(
            probe,
            lambda key, result, now: results.append((key, result, now)),
            max_concurrent=2,
            rng=random.Random(2),
            clock=clock,
            sleep=clock.sleep,
        )
        for key in ("stuck", "b", "c"):
            scheduler.watch(Job(key, interval=10.0, cap=3.0))
        scheduler.start()
        await clock.advance(100)
        await scheduler.stop()

    drive(scenario)
    by_key = Counter(key for key, _, _ in results)
    assert by_key["b"] >= 9 and by_key["c"] >= 9
    stuck = [result for key, result, _ in results if key == "stuck"]
    assert stuck and all(r.reason is FailureReason.HTTP_TIMEOUT and not r.ok for r in stuck)
    assert all(abs(r.latency - 3.0) < 1e-9 for r in stuck)


def test_probes_in_flight_never_exceed_the_concurrency_bound() -> None:
    in_flight = 0
    peak = 0

    async def scenario(clock: FakeClock) -> None:
        async def probe(key: str) -> ProbeResult:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await clock.sleep(2.0)
            finally:
                in_flight -= 1
            return OK

        scheduler = Scheduler(
            probe, lambda *_: None, max_concurrent=3, clock=clock, sleep=clock.sleep
        )
        for n in range(20):
            scheduler.watch(Job(f"o{n}", interval=1.5, cap=5.0))
        scheduler.start()
        await clock.advance(30)
        await scheduler.stop()

    drive(scenario)
    assert peak == 3


def test_a_probe_that_raises_is_reported_as_other_failure_and_probing_goes_on() -> None:
    results: list[ProbeResult] = []

    async def scenario(clock: FakeClock) -> None:
        async def probe(key: str) -> ProbeResult:
            raise RuntimeError("bug in a probe")

        def on_result(key: str, result: ProbeResult, now: float) -> None:
            results.append(result)
            raise ValueError("a broken handler must not stop probing either")

        scheduler = Scheduler(probe, on_result, clock=clock, sleep=clock.sleep)
        scheduler.watch(Job("a", interval=10.0, cap=1.0))
        scheduler.start()
        await clock.advance(50)
        await scheduler.stop()

    drive(scenario)
    assert len(results) >= 4 and all(r.reason is FailureReason.OTHER for r in results)


def test_unwatch_stops_probing_that_origin() -> None:
    probed: list[str] = []

    async def scenario(clock: FakeClock) -> None:
        async def probe(key: str) -> ProbeResult:
            probed.append(key)
            return OK

        scheduler = Scheduler(probe, lambda *_: None, clock=clock, sleep=clock.sleep)
        scheduler.watch(Job("a", interval=10.0, cap=1.0))
        scheduler.start()
        await clock.advance(20)
        scheduler.unwatch("a")
        count = len(probed)
        await clock.advance(100)
        assert len(probed) == count and scheduler.keys == frozenset()
        await scheduler.stop()

    drive(scenario)


def test_job_cap_covers_every_retry_at_full_timeout() -> None:
    job = job_for("a", MonitorSettings(type="tcp", timeout=5, retries=2))
    assert job.cap == 16.0 and job.timeout_reason is FailureReason.TCP_TIMEOUT
