"""The waiting room at the edge: a request filter in front of the origin (spec §9).

`RoomGate.on_request` finds the room a request falls in (host, then the longest path prefix, and
the room's rules-language `expression` if it has one), skips it for bypassed traffic (paths,
networks, `bypass.expression`), reads the visitor's ticket cookie, asks `decide`, and either lets
the request through or answers with the queue page, the JSON status or the reject page. The
ticket to set rides on the exchange (`Exchange.waiting_room_cookie`) and `on_response` adds it to
whatever response goes out, the origin's or the edge's own.

An admitted visitor's request (the hot path) costs: the room match, a look-up of its token among
tokens already opened (else one AES-GCM open), the ticket's expiry check and `AdmissionQueue.touch`
(renew the session, no round-trip); at most once per `RESEAL_SECONDS`, one AES-GCM seal for a
fresh cookie. Everyone else goes through `decide`. Expressions see the request as the firewall
does (`protect.verdict.request_view`), built once per request and only when a room needs it.

The access log names what the room did: outcome `queued` for the queue page or JSON status,
`local` with reason "waiting room <name>: turned away" for the reject page.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING

from originguard.http.messages import Headers, Response, header_value
from originguard.outcome import Outcome
from originguard.protect.rules import Expression, RequestView, compile_expression
from originguard.protect.verdict import request_view
from originguard.state.base import AdmissionLimits

from .admission import Admit, Pass, Queue, Reject, decide, limits_of
from .page import respond
from .registry import RoomKey, RoomRegistry
from .settings import Phase, RoomSettings, phase_at
from .ticket import Keyring, Ticket, cookie_name, is_valid, set_cookie

if TYPE_CHECKING:
    from originguard.exchange import Exchange
    from originguard.observe.metrics import Metrics

    from .section import WaitingRoomSection

# An admitted visitor's cookie is re-sealed at most this often (and never later than a tenth of
# the session): the state renews the session on every request; the cookie's own last_seen may
# lag by this much, which only shortens an idle visitor's ticket by as long.
RESEAL_SECONDS = 30.0
# Tokens opened and authenticated before, per room: the same bytes open to the same ticket, so a
# repeat visitor skips base64 and AES-GCM. Validity (expiry, room) is still checked every time.
OPENED_TOKENS_MAX = 65_536


@dataclass(slots=True)
class Room:
    """One configured room at run time."""

    zone: str
    configured: RoomSettings
    keyring: Keyring
    host: bytes
    path: bytes
    cookie: bytes  # b"<cookie name>="
    reseal_after: float
    condition: Expression | None = None  # the room's `expression`, compiled
    bypass_condition: Expression | None = None  # `bypass.expression`, compiled
    settings: RoomSettings = field(init=False)  # configured + admin overrides
    bypass_paths: tuple[bytes, ...] = field(init=False)
    # The phase and limits when the room has no events (they cannot change with time).
    fixed: tuple[Phase, AdmissionLimits] | None = field(init=False)
    opened: dict[str, Ticket] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.use(self.configured)

    @property
    def key(self) -> RoomKey:
        return (self.zone, self.configured.name)

    def use(self, settings: RoomSettings) -> None:
        """Put `settings` in force (at build, and when the admin API changes the room)."""
        self.settings = settings
        self.bypass_paths = tuple(prefix.encode() for prefix in settings.bypass.paths)
        self.fixed = None
        if not settings.events:
            phase = phase_at(settings, 0.0)
            self.fixed = (phase, limits_of(phase, 0.0))

    def phase(self, now: float) -> tuple[Phase, AdmissionLimits]:
        if self.fixed is not None:
            return self.fixed
        phase = phase_at(self.settings, now)
        return phase, limits_of(phase, now)

    def open(self, token: str) -> Ticket | None:
        ticket = self.opened.get(token)
        if ticket is None:
            ticket = self.keyring.open(token)
            if ticket is not None:
                if len(self.opened) >= OPENED_TOKENS_MAX:
                    self.opened.clear()
                self.opened[token] = ticket
        return ticket


def rooms_of(
    zone: str,
    section: WaitingRoomSection,
    registry: RoomRegistry,
    lists: Mapping[str, Sequence[str | int]] | None = None,
) -> list[Room]:
    """Run-time rooms of one zone, most specific path first (spec §9.1: it wins), rooms on
    one path in config order. Expressions compile with the config's named `lists` (the loader
    has already reported any error)."""
    lists = lists if lists is not None else {}
    if not section.rooms:
        return []
    keyring = section.keyring()
    rooms = []
    for configured in section.rooms:
        room = Room(
            zone=zone,
            configured=configured,
            keyring=keyring,
            host=configured.host.encode(),
            path=configured.path.encode(),
            cookie=cookie_name(configured).encode() + b"=",
            reseal_after=min(RESEAL_SECONDS, configured.session_duration / 10),
            condition=_compiled(configured.expression, lists),
            bypass_condition=_compiled(configured.bypass.expression, lists),
        )
        room.use(registry.effective(room.key, configured))
        rooms.append(room)
    rooms.sort(key=lambda room: len(room.path), reverse=True)
    return rooms


def _compiled(
    text: str | None, lists: Mapping[str, Sequence[str | int]]
) -> Expression | None:
    return compile_expression(text, lists) if text is not None else None


def match(
    rooms: Sequence[Room],
    host: bytes,
    path: bytes,
    view: Callable[[], RequestView] | None = None,
) -> Room | None:
    """The room covering host+path (case-sensitive prefix; the longest path wins) whose
    expression, if it has one, matches `view()`; without a view such rooms never match."""
    for room in rooms:
        if room.host == host and path.startswith(room.path):
            condition = room.condition
            if condition is None or (view is not None and condition.evaluate(view())):
                return room
    return None


Views = Callable[["Exchange"], RequestView]


def own_view(ex: Exchange) -> RequestView:
    """The exchange as rules see it, without GeoIP (`runtime.attach` passes a better one)."""
    return request_view(ex, None)


class _LazyView:
    """The request's view, built on first use: a room without expressions never builds it."""

    __slots__ = ("ex", "views", "view")

    def __init__(self, ex: Exchange, views: Views) -> None:
        self.ex = ex
        self.views = views
        self.view: RequestView | None = None

    def __call__(self) -> RequestView:
        if self.view is None:
            self.view = self.views(self.ex)
        return self.view


class RoomGate:
    """RequestFilter and ResponseFilter of the waiting rooms of every zone."""

    def __init__(
        self,
        rooms: dict[str, list[Room]],
        registry: RoomRegistry,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        views: Views = own_view,
    ) -> None:
        self.by_zone = {zone: listed for zone, listed in rooms.items() if listed}
        self.registry = registry
        self.metrics = metrics
        self.clock = clock
        self.views = views
        # Rays of the exchanges answered with the queue page, until on_response marks them.

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
        room.use(self.registry.change(room.key, room.configured, dict(changes)))
        return room.settings

    # -- RequestFilter ----------------------------------------------------------------------------

    def on_request(self, ex: Exchange) -> Response | None | Awaitable[Response | None]:
        zone = ex.zone
        if zone is None:
            return None
        rooms = self.by_zone.get(zone.name)
        if rooms is None:
            return None
        head = ex.head
        view = _LazyView(ex, self.views)
        room = match(rooms, head.host, head.path, view)
        if room is None:
            return None
        settings = room.settings
        if settings.suspended:
            return None  # spec §9.1: traffic goes to the origin, no cookie set
        # spec §9.5: bypassed traffic is not counted and never queued.
        if room.bypass_paths and head.path.startswith(room.bypass_paths):
            return None
        client = None
        if settings.bypass.networks:
            client = _address(ex.client_ip)
            if client is not None and any(client in net for net in settings.bypass.networks):
                return None
        if room.bypass_condition is not None and room.bypass_condition.evaluate(view()):
            return None
        now = self.clock()
        phase, limits = room.phase(now)
        token = _token(head.headers, room.cookie)
        ticket = room.open(token) if token is not None else None
        if ticket is not None and not is_valid(ticket, settings, phase, now):
            ticket = None  # expired, or another room's: a new visitor
        state = self.registry.state
        if (
            ticket is not None
            and ticket.is_admitted
            and phase.queueing_method != "reject"
            and state.touch(settings.room_id, ticket.visitor_id, limits, now)
        ):
            # The hot path: a seated visitor; their session is renewed, nothing else to decide.
            if now - ticket.last_seen >= room.reseal_after:
                self._stash(ex, room, replace(ticket, last_seen=now), phase, now)
            return None
        return self._decide(ex, room, ticket, phase, now, client)

    async def _decide(
        self,
        ex: Exchange,
        room: Room,
        ticket: Ticket | None,
        phase: Phase,
        now: float,
        client: IPv4Address | IPv6Address | None,
    ) -> Response | None:
        """A visitor who is not seated: admit, pass, queue or turn away (shared state)."""
        head, settings = ex.head, room.settings
        state = self.registry.state
        path = head.path.decode("latin-1")
        decision = await decide(settings, ticket, state, now, path=path, client=client)
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
            ex.reason = (
                f"waiting room {settings.name}: queued at {decision.position} "
                f"of {decision.queued}"
            )
            ex.outcome = Outcome.QUEUED
        else:
            assert isinstance(decision, Reject)
            if self.metrics is not None:
                self.metrics.waiting_room_turned_away.labels(room.zone, settings.name).inc()
            ex.reason = f"waiting room {settings.name}: turned away (reject page)"
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
    """The value of cookie `name` (given as b"name=") in the request's Cookie field(s).

    RFC 6265 §5.4: pairs are separated by "; ", and a request may carry several Cookie fields.
    Works on bytes; the name must start a pair (``x__ogwaitingroom=`` is another cookie).
    """
    for key, value in headers:
        if key != b"cookie":
            continue
        start = value.find(name)
        while start >= 0:
            if start == 0 or value[start - 1] in b"; \t":
                end = value.find(b";", start)
                token = value[start + len(name) : end if end >= 0 else len(value)]
                return token.strip().strip(b'"').decode("latin-1")
            start = value.find(name, start + 1)
    return None


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None
