"""The rooms' counters: one status document per room (admin API), and the Prometheus gauges.

Counts come from `AdmissionQueue.stats`, which may be a network round-trip (Redis), so gauges are
refreshed by a background service every `REFRESH_SECONDS` rather than computed at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from originguard.state.base import AdmissionStats

from .admission import MAX_KNOWN_WAIT_MINUTES
from .gate import Room, RoomGate
from .settings import MINUTE, phase_at

if TYPE_CHECKING:
    from originguard.observe.metrics import Metrics

log = logging.getLogger("originguard.waiting_room")

REFRESH_SECONDS = 5.0


def wait_minutes(stats: AdmissionStats, new_users_per_minute: int) -> int | None:
    """Minutes until the last visitor in line gets in (spec §9.3); 0 with no queue, None unknown.

    Departures stand in for admissions until admissions were measured, as in `estimate_wait`.
    """
    if stats.queued == 0:
        return 0
    rate = stats.admission_rate
    if rate <= 0:
        rate = min(stats.departure_rate, float(new_users_per_minute))
    if rate <= 0:
        return None
    minutes = math.ceil(stats.queued / rate)
    return minutes if minutes <= MAX_KNOWN_WAIT_MINUTES else None


def room_status(gate: RoomGate, room: Room, stats: AdmissionStats, now: float) -> dict[str, Any]:
    """One room for the admin API: its settings in force, overrides and live counts."""
    settings = room.settings
    phase = phase_at(settings, now)
    if settings.suspended:
        status = "suspended"
    elif phase.queue_all:
        status = "queue_all"
    elif phase.is_prequeueing:
        status = "event_prequeueing"
    elif stats.queued > 0 or (
        phase.queueing_method != "passthrough"
        and (
            stats.active >= phase.total_active_users
            or stats.admitted_this_minute >= phase.new_users_per_minute
        )
    ):
        status = "queueing"
    else:
        status = "not_queueing"
    wait = None if not phase.may_admit else wait_minutes(stats, phase.new_users_per_minute)
    return {
        "zone": room.zone,
        "name": settings.name,
        "host": settings.host,
        "path": settings.path,
        "status": status,
        "event": phase.event.name if phase.event is not None else None,
        "queueing_method": phase.queueing_method,
        "queue_all": phase.queue_all,
        "suspended": settings.suspended,
        "total_active_users": phase.total_active_users,
        "new_users_per_minute": phase.new_users_per_minute,
        "session_duration_seconds": phase.session_duration,
        "overrides": gate.registry.overrides(room.key),
        "active_users": stats.active,
        "queued_users": stats.queued,
        "admitted_this_minute": stats.admitted_this_minute,
        "admissions_per_minute": round(stats.admission_rate, 3),
        "departures_per_minute": round(stats.departure_rate, 3),
        "estimated_wait_minutes": wait,
    }


class RoomMonitor:
    """Service: keeps the waiting-room gauges current while its runtime is live."""

    def __init__(
        self,
        gate: RoomGate,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        interval: float = REFRESH_SECONDS,
    ) -> None:
        self.gate = gate
        self.metrics = metrics
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def refresh(self) -> list[dict[str, Any]]:
        """Read every room's counts, set the gauges in one step, return the status documents."""
        now = self.clock()
        documents = []
        for room in list(self.gate.rooms):
            stats = await self.gate.registry.state.stats(room.settings.room_id, now)
            documents.append(room_status(self.gate, room, stats, now))
        self.publish(documents)
        return documents

    def publish(self, documents: list[dict[str, Any]]) -> None:
        """Replace the gauges with these rooms (a room gone after a reload disappears)."""
        m = self.metrics
        gauges = (
            m.waiting_room_active_users,
            m.waiting_room_queued_users,
            m.waiting_room_admission_rate,
            m.waiting_room_estimated_wait,
        )
        for gauge in gauges:
            gauge.clear()
        for doc in documents:
            labels = (doc["zone"], doc["name"])
            wait = doc["estimated_wait_minutes"]
            m.waiting_room_active_users.labels(*labels).set(doc["active_users"])
            m.waiting_room_queued_users.labels(*labels).set(doc["queued_users"])
            m.waiting_room_admission_rate.labels(*labels).set(doc["admissions_per_minute"])
            m.waiting_room_estimated_wait.labels(*labels).set(
                -1 if wait is None else wait * MINUTE
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("waiting room monitor error")
