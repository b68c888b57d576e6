"""The waiting room at the edge: a request filter in front of the origin (spec §9).

`RoomGate.on_request` finds the room a request falls in (host, then the longest path prefix),
reads the visitor's ticket cookie, asks `decide`, and either lets the request through or answers
with the queue page, the JSON status or the reject page. The ticket to set rides on the exchange
(`Exchange.waiting_room_cookie`) and `on_response` adds it to whatever response goes out, the
origin's or the edge's own.

An admitted visitor costs one AES-GCM open, one dictionary hit in the room state and, at most
once per `RESEAL_SECONDS`, one AES-GCM seal for a fresh cookie.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING

from originguard.http.messages import Headers, Response, header_value, header_values

from .admission import Admit, Pass, Queue, Reject, decide
from .page import respond
from .registry import RoomKey, RoomRegistry
from .settings import Phase, RoomSettings, phase_at
from .ticket import Keyring, Ticket, cookie_name, find_token, read, set_cookie

if TYPE_CHECKING:
    from originguard.exchange import Exchange
    from originguard.observe.metrics import Metrics

    from .section import WaitingRoomSection

# An admitted visitor's cookie is re-sealed at most this often (and never later than a tenth of
# the session): the state renews the session on every request; the cookie's own last_seen may
# lag by this much, which only shortens an idle visitor's ticket by as long.
RESEAL_SECONDS = 30.0


@dataclass(slots=True)
class Room:
    """One configured room at run time."""

    zone: str
    configured: RoomSettings
    settings: RoomSettings  # configured + admin overrides; swapped whole by the admin API
    keyring: Keyring
    host: bytes
    path: bytes
    cookie: bytes  # cookie name, as bytes
    reseal_after: float

    @property
    def key(self) -> RoomKey:
        return (self.zone, self.configured.name)


def rooms_of(
    zone: str, section: WaitingRoomSection, registry: RoomRegistry
) -> list[Room]:
    """Run-time rooms of one zone, most specific path first (spec §9.1: it wins)."""
    if not section.rooms:
        return []
    keyring = section.keyring()
    rooms = []
    for configured in section.rooms:
        settings = registry.effective((zone, configured.name), configured)
        rooms.append(
            Room(
                zone=zone,
                configured=configured,
                settings=settings,
                keyring=keyring,
                host=configured.host.encode(),
                path=configured.path.encode(),
                cookie=cookie_name(configured).encode(),
                reseal_after=min(RESEAL_SECONDS, configured.session_duration / 10),
            )
        )
    rooms.sort(key=lambda room: len(room.path), reverse=True)
    return rooms


def match(rooms: Sequence[Room], host: bytes, path: bytes) -> Room | None:
    """The room covering host+path: case-sensitive prefix; the longest path wins."""
    for room in rooms:
        if room.host == host and path.startswith(room.path):
            return room
    return None


class RoomGate:
    """RequestFilter and ResponseFilter of the waiting rooms of every zone."""

    def __init__(
        self,
        rooms: dict[str, list[Room]],
        registry: RoomRegistry,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.by_zone = {zone: listed for zone, listed in rooms.items() if listed}
        self.registry = registry
        self.metrics = metrics
        self.clock = clock

    @property
    def rooms(self) -> Iterable[Room]:
        for listed in self.by_zone.values():
            yield from listed

    def find(self, zone: str, name: str) -> Room | None:
        for room in self.by_zone.get(zone, ()):
            if room.configured.name == name:
                return room
        return None

    def change(self, room: Room, changes: dict[str, object]) -> RoomSettings:
        """Admin: change queue_all / limits now; kept in the registry across reloads."""
        room.settings = self.registry.change(room.key, room.configured, dict(changes))
        return room.settings

    # -- RequestFilter ----------------------------------------------------------------------------

    async def on_request(self, ex: Exchange) -> Response | None:
        zone = ex.zone
        if zone is None:
            return None
        rooms = self.by_zone.get(zone.name)
        if rooms is None:
            return None
        head = ex.head
        room = match(rooms, head.host, head.path)
        if room is None:
            return None
        settings = room.settings
        if settings.suspended:
            return None  # spec §9.1: traffic goes to the origin, no cookie set
        path = head.path.decode("latin-1")
        client = None
        if settings.bypass.networks:
            try:
                client = ip_address(ex.client_ip)
            except ValueError:
                client = None
        if settings.bypass.is_bypassed(path, client):
            return None  # spec §9.5: not counted, not queued
        now = self.clock()
        phase = phase_at(settings, now)
        ticket = read(_token(head.headers, room.cookie), room.keyring, settings, phase, now)
        decision = await decide(
            settings, ticket, self.registry.state, now, path=path, client=client
        )
        if isinstance(decision, Pass):
            if decision.ticket is not None:  # passthrough: counted, and the ticket kept fresh
                self._keep(ex, room, ticket, decision.ticket, phase, now)
            return None
        if isinstance(decision, Admit):
            if decision.is_new and self.metrics is not None:
                self.metrics.waiting_room_admissions.labels(room.zone, settings.name).inc()
            self._keep(ex, room, ticket, decision.ticket, phase, now)
            return None
        if isinstance(decision, Queue):
            self._stash(ex, room, decision.ticket, phase, now)
            if self.metrics is not None:
                self.metrics.waiting_room_queued_responses.labels(room.zone, settings.name).inc()
            ex.reason = f"waiting room {settings.name}: queued at {decision.position}"
        else:
            assert isinstance(decision, Reject)
            if self.metrics is not None:
                self.metrics.waiting_room_turned_away.labels(room.zone, settings.name).inc()
            ex.reason = f"waiting room {settings.name}: rejected"
        accept = header_value(head.headers, b"accept")
        page = respond(
            settings, decision, accept.decode("latin-1") if accept is not None else None, now
        )
        return Response(page.status, list(page.headers), page.body)

    # -- ResponseFilter ---------------------------------------------------------------------------

    def on_response(self, ex: Exchange, headers: Headers) -> None:
        if ex.waiting_room_cookie:
            headers.append((b"set-cookie", ex.waiting_room_cookie))

    # -- tickets ----------------------------------------------------------------------------------

    def _keep(
        self,
        ex: Exchange,
        room: Room,
        held: Ticket | None,
        ticket: Ticket,
        phase: Phase,
        now: float,
    ) -> None:
        """Set the admitted ticket unless the visitor's cookie already says as much, recently."""
        if (
            held is not None
            and held.is_admitted
            and held.visitor_id == ticket.visitor_id
            and held.accepted_at == ticket.accepted_at
            and now - held.last_seen < room.reseal_after
        ):
            return
        self._stash(ex, room, ticket, phase, now)

    def _stash(self, ex: Exchange, room: Room, ticket: Ticket, phase: Phase, now: float) -> None:
        token = room.keyring.seal(ticket)
        secure = ex.conn.scheme == b"https"
        cookie = set_cookie(room.settings, token, ticket, phase, now, secure=secure)
        ex.waiting_room_cookie = cookie.encode("latin-1")


def _token(headers: Headers, name: bytes) -> str | None:
    """The ticket in the request's Cookie field(s) (RFC 6265 §5.4: may be split over several)."""
    prefix = name + b"="
    for value in header_values(headers, b"cookie"):
        if prefix in value:  # cheap test before splitting the field
            token = find_token(value.decode("latin-1"), name.decode("latin-1"))
            if token is not None:
                return token
    return None
