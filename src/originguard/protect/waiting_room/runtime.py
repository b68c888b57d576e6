"""Wiring of the waiting rooms into an edge runtime (called from `app.build_runtime`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from originguard.protect.guard import open_geo
from originguard.protect.verdict import GeoLookup, Verdicts, request_view

from .gate import Room, RoomGate, rooms_of
from .monitor import RoomMonitor
from .registry import RoomRegistry

if TYPE_CHECKING:
    from originguard.config import Config
    from originguard.exchange import Exchange
    from originguard.observe.metrics import Metrics
    from originguard.pipeline import Runtime
    from originguard.protect.rules import RequestView


def attach(
    runtime: Runtime, config: Config, metrics: Metrics, previous: Runtime | None = None
) -> RoomGate | None:
    """Add the rooms' gate (request and response filter) and monitor to `runtime`.

    The room state and admin overrides come from the previous runtime's gate, so a reload keeps
    every visitor's seat or place. Zones without rooms cost nothing: with no room anywhere no
    filter is added at all. Call it after the security filters: room expressions then read the
    request view the firewall already built.
    """
    old = gate_of(previous) if previous is not None else None
    registry = old.registry if old is not None else RoomRegistry()
    rooms = {
        zone.name: rooms_of(zone.name, zone.waiting_room, registry, config.lists)
        for zone in config.zones
    }
    if not any(rooms.values()):
        return None
    verdicts = next((o for o in runtime.observers if isinstance(o, Verdicts)), None)
    geo = {
        zone.name: found
        for zone in config.zones
        if _has_expressions(rooms[zone.name])
        and (found := open_geo(zone.security.geoip)) is not None
    }
    gate = RoomGate(rooms, registry, metrics, views=SharedViews(verdicts, geo))
    runtime.request_filters.append(gate)
    runtime.response_filters.append(gate)
    runtime.services.append(RoomMonitor(gate, metrics))
    return gate


class SharedViews:
    """The request as rules see it: the firewall's view when its filters made one for this
    exchange (built once per request), else one built the same way, with the zone's GeoIP."""

    def __init__(self, verdicts: Verdicts | None, geo: dict[str, GeoLookup]) -> None:
        self.verdicts = verdicts
        self.geo = geo

    def __call__(self, ex: Exchange) -> RequestView:
        if self.verdicts is not None:
            verdict = self.verdicts.peek(ex)
            if verdict is not None:
                return verdict.view
        return request_view(ex, self.geo.get(ex.zone.name) if ex.zone is not None else None)


def _has_expressions(rooms: list[Room]) -> bool:
    return any(r.condition is not None or r.bypass_condition is not None for r in rooms)


def gate_of(runtime: Runtime) -> RoomGate | None:
    for request_filter in runtime.request_filters:
        if isinstance(request_filter, RoomGate):
            return request_filter
    return None
