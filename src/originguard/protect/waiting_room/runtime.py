"""Wiring of the waiting rooms into an edge runtime (called from `app.build_runtime`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .gate import RoomGate, rooms_of
from .monitor import RoomMonitor
from .registry import RoomRegistry

if TYPE_CHECKING:
    from originguard.config import Config
    from originguard.observe.metrics import Metrics
    from originguard.pipeline import Runtime


def attach(
    runtime: Runtime, config: Config, metrics: Metrics, previous: Runtime | None = None
) -> RoomGate | None:
    """Add the rooms' gate (request and response filter) and monitor to `runtime`.

    The room state and admin overrides come from the previous runtime's gate, so a reload keeps
    every visitor's seat or place. Zones without rooms cost nothing: with no room anywhere no
    filter is added at all.
    """
    old = gate_of(previous) if previous is not None else None
    registry = old.registry if old is not None else RoomRegistry()
    rooms = {zone.name: rooms_of(zone.name, zone.waiting_room, registry) for zone in config.zones}
    if not any(rooms.values()):
        return None
    gate = RoomGate(rooms, registry, metrics)
    runtime.request_filters.append(gate)
    runtime.response_filters.append(gate)
    runtime.services.append(RoomMonitor(gate, metrics))
    return gate


def gate_of(runtime: Runtime) -> RoomGate | None:
    for request_filter in runtime.request_filters:
        if isinstance(request_filter, RoomGate):
            return request_filter
    return None
