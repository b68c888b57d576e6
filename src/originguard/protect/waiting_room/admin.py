"""Admin API routes for the waiting rooms (mounted by `admin/api.py`).

    GET  /waiting-rooms                   every room: settings in force, overrides, live counts
    GET  /waiting-rooms/{zone}/{room}     one room
    POST /waiting-rooms/{zone}/{room}     JSON {"queue_all": true, "total_active_users": 50, ...}
                                          changes now, no restart; kept across reloads;
                                          a field set to null drops that override
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from .gate import RoomGate
from .monitor import RoomMonitor
from .runtime import gate_of

if TYPE_CHECKING:
    from originguard.observe.metrics import Metrics
    from originguard.pipeline import Runtime


def add_routes(
    app: web.Application, runtime: Callable[[], Runtime], metrics: Callable[[], Metrics]
) -> None:
    routes = _Routes(runtime, metrics)
    app.router.add_get("/waiting-rooms", routes.list_rooms)
    app.router.add_get("/waiting-rooms/{zone}/{room}", routes.show)
    app.router.add_post("/waiting-rooms/{zone}/{room}", routes.change)


class _Routes:
    def __init__(self, runtime: Callable[[], Runtime], metrics: Callable[[], Metrics]) -> None:
        self.runtime = runtime
        self.metrics = metrics

    def _monitor(self) -> RoomMonitor | None:
        gate = gate_of(self.runtime())
        return RoomMonitor(gate, self.metrics()) if gate is not None else None

    async def list_rooms(self, request: web.Request) -> web.Response:
        monitor = self._monitor()
        rooms = await monitor.refresh() if monitor is not None else []
        return web.json_response({"rooms": rooms})

    async def show(self, request: web.Request) -> web.Response:
        found = await self._room_document(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(found)

    async def change(self, request: web.Request) -> web.Response:
        gate = gate_of(self.runtime())
        room = gate.find(request.match_info["zone"], request.match_info["room"]) if gate else None
        if gate is None or room is None:
            return _error(404, "no such waiting room")
        try:
            changes = await request.json()
        except (ValueError, LookupError, RecursionError):  # bad JSON or UTF-8, odd charset
            return _error(400, "the body must be a JSON object")
        if not isinstance(changes, dict):
            return _error(400, "the body must be a JSON object")
        try:
            gate.change(room, changes)
        except ValidationError as error:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'room'}: {e['msg']}"
                for e in error.errors()
            )
            return _error(400, details)
        except ValueError as error:
            return _error(400, str(error))
        found = await self._room_document(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(found)

    async def _room_document(self, request: web.Request) -> dict[str, Any] | web.Response:
        gate: RoomGate | None = gate_of(self.runtime())
        zone, name = request.match_info["zone"], request.match_info["room"]
        if gate is None or gate.find(zone, name) is None:
            return _error(404, "no such waiting room")
        monitor = RoomMonitor(gate, self.metrics())
        for document in await monitor.refresh():
            if document["zone"] == zone and document["name"] == name:
                return document
        return _error(404, "no such waiting room")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
