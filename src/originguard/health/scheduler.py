"""Runs probes for many origins: bounded concurrency, jitter, and a hard cap per probe.

Each watched key gets one task. Its first probe lands at a random point of its first interval
and later ones at ``interval x (1 +/- jitter)``, so 500 origins do not probe in lock-step. A
semaphore bounds probes in flight, and a probe that outlives its cap is abandoned (cancelled)
and reported as a timeout, so a stuck origin never holds others back. The clock, the sleep and
the probe function are injected: tests drive hours of probing with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from originguard.health.probe import FailureReason, ProbeResult
from originguard.health.settings import MonitorSettings

log = logging.getLogger("originguard.health.scheduler")

ProbeFn = Callable[[str], Awaitable[ProbeResult]]
OnResult = Callable[[str, ProbeResult, float], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Job:
    key: str
    interval: float
    cap: float  # hard limit on one probe run, retries included
    timeout_reason: FailureReason = FailureReason.HTTP_TIMEOUT
    first_delay: float | None = None  # None: a random point of the first interval


def job_for(key: str, monitor: MonitorSettings) -> Job:
    """A job whose cap lets every attempt use its full timeout, plus one second of slack."""
    reason = FailureReason.TCP_TIMEOUT if monitor.type == "tcp" else FailureReason.HTTP_TIMEOUT
    return Job(key, monitor.interval, monitor.timeout * (monitor.retries + 1) + 1.0, reason)


class Scheduler:
    def __init__(
        self,
        probe: ProbeFn,
        on_result: OnResult,
        *,
        max_concurrent: int = 64,
        jitter: float = 0.1,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._probe = probe
        self._on_result = on_result
        self._slots = asyncio.Semaphore(max_concurrent)
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._jobs: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self._jobs)

    def watch(self, job: Job) -> None:
        """Probe ``job.key`` from now on (replacing any earlier job for that key)."""
        self.unwatch(job.key)
        self._jobs[job.key] = job
        if self._running:
            self._tasks[job.key] = asyncio.create_task(self._run(job), name=f"probe:{job.key}")

    def unwatch(self, key: str) -> None:
        self._jobs.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        for job in self._jobs.values():
            self._tasks[job.key] = asyncio.create_task(self._run(job), name=f"probe:{job.key}")

    async def stop(self) -> None:
        self._running = False
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: Job) -> None:
        first = job.first_delay
        await self._sleep(self._rng.uniform(0.0, job.interval) if first is None else first)
        while True:
            started = self._clock()
            result = await self._bounded(job)
            try:
                self._on_result(job.key, result, self._clock())
            except Exception:
                log.exception("health result handler failed for %s", job.key)
            spread = 1.0 + self._rng.uniform(-self._jitter, self._jitter)
            await self._sleep(max(0.0, started + job.interval * spread - self._clock()))

    async def _bounded(self, job: Job) -> ProbeResult:
        async with self._slots:
            started = self._clock()
            probe = asyncio.ensure_future(self._probe(job.key))
            timer = asyncio.ensure_future(self._sleep(job.cap))
            try:
                await asyncio.wait({probe, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
                if not probe.done():
                    probe.cancel()  # abandoned, not awaited: a stuck probe cannot hold a slot
            if probe.cancelled() or not probe.done():
                return ProbeResult(False, self._clock() - started, reason=job.timeout_reason)
            error = probe.exception()
            if error is not None:
                log.warning("probe for %s raised %r", job.key, error)
                return ProbeResult(False, self._clock() - started, reason=FailureReason.OTHER)
            return probe.result()
