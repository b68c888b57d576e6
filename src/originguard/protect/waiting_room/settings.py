"""Room settings: the typed, validated configuration of one waiting room (spec §9.1, §9.5).

Durations are float seconds in code. In YAML they may be written as a number of seconds or as a
string such as ``30s``, ``5m`` or ``1h``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    field_validator,
    model_validator,
)

from originguard.units import TypeLabel

from . import template

_T = TypeVar("_T")

QueueingMethod = Literal["fifo", "random", "passthrough", "reject"]

MINUTE = 60.0
# spec §9.5: a pre-queue opens at least 5 minutes before the event starts.
MIN_PREQUEUE_LEAD = 5 * MINUTE
# spec §9.5: an event starts at least 1 minute before it ends.
MIN_EVENT_LENGTH = 1 * MINUTE
MAX_EVENTS = 5
# spec §9.1: custom page upload ≤ 1 MB.
MAX_PAGE_BYTES = 1_000_000
MAX_USERS = 2**31 - 1

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_NAME = r"^[A-Za-z0-9_-]+$"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def parse_duration(value: object) -> object:
    """Turn ``"5m"`` / ``"30s"`` / ``300`` into float seconds; leave anything else to pydantic."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h)")
        return float(match.group(1)) * _UNIT[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), TypeLabel("duration")]
# spec §9.1: session_duration is 1–30 minutes.
SessionDuration = Annotated[Seconds, Field(ge=1 * MINUTE, le=30 * MINUTE)]
# spec §9.1 requires ≥ 200 for both limits. Cloudflare needs that floor because every data centre
# decides on a local budget of the global limit (§9.3); a self-hosted edge keeps one exact count,
# and small origins (an admin panel, a checkout behind one worker) need limits well below 200.
UserCount = Annotated[int, Field(ge=1, le=MAX_USERS)]


def _check_template(source: str) -> str:
    if len(source.encode()) > MAX_PAGE_BYTES:
        raise ValueError("custom page is larger than 1 MB")
    template.parse(source)  # a TemplateError (a ValueError) names the bad tag and its offset
    return source


PageHtml = Annotated[str, AfterValidator(_check_template)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bypass(_Model):
    """Traffic that gets no room treatment at all: not counted, never queued (spec §9.5)."""

    paths: tuple[str, ...] = Field(
        default=(), description="Case-sensitive path prefixes that skip the room, e.g. /api/."
    )
    networks: tuple[IPvAnyNetwork, ...] = Field(
        default=(), description="Client networks (CIDR) that skip the room, e.g. monitoring."
    )
    expression: str | None = Field(
        default=None,
        description=(
            "Rules-language expression (docs/rules.md); a request it matches skips the room, "
            'e.g. `http.request.headers["user-agent"][0] contains "monitor"`.'
        ),
    )

    @field_validator("paths")
    @classmethod
    def _paths_are_absolute(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"bypass path must start with '/': {path!r}")
        return paths

    def is_bypassed(
        self, path: str, client: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    ) -> bool:
        """True when the path starts with a bypass prefix or the client is in a bypass network.

        The expression needs the whole request: the gate evaluates it (compiled at load).
        """
        if any(path.startswith(prefix) for prefix in self.paths):
            return True
        if client is None:
            return False
        return any(client in network for network in self.networks)


class Event(_Model):
    """A scheduled event: its own limits for a time window, optionally with a pre-queue."""

    name: str = Field(pattern=_NAME, description="Event name, unique within the room.")
    start: AwareDatetime = Field(description="When the event's limits take effect.")
    end: AwareDatetime = Field(description="When the room returns to its own settings.")
    prequeue_start: AwareDatetime | None = Field(
        default=None,
        description="From here until start every new visitor is queued (≥ 5 min before start).",
    )
    shuffle_at_event_start: bool = Field(
        default=False, description="Shuffle the pre-queue at start: a lottery, not FIFO."
    )
    suspended: bool = Field(default=False, description="A suspended event never activates.")
    # Overrides; None = inherit from the room (spec §9.5).
    total_active_users: UserCount | None = Field(
        default=None, description="Override during the event (set with new_users_per_minute)."
    )
    new_users_per_minute: UserCount | None = Field(
        default=None, description="Override during the event (set with total_active_users)."
    )
    session_duration: SessionDuration | None = Field(
        default=None, description="Override during the event."
    )
    disable_session_renewal: bool | None = Field(
        default=None, description="Override during the event."
    )
    queueing_method: QueueingMethod | None = Field(
        default=None, description="Override during the event; `reject` = a maintenance page."
    )
    custom_page_html: PageHtml | None = Field(
        default=None, description="Override of the queue page during the event."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Event:
        if self.end.timestamp() - self.start.timestamp() < MIN_EVENT_LENGTH:
            raise ValueError("event start must be at least 1 minute before its end")
        if self.prequeue_start is not None and (
            self.start.timestamp() - self.prequeue_start.timestamp() < MIN_PREQUEUE_LEAD
        ):
            raise ValueError("prequeue_start must be at least 5 minutes before start")
        if self.shuffle_at_event_start and self.prequeue_start is None:
            raise ValueError("shuffle_at_event_start needs prequeue_start to shuffle")
        if (self.total_active_users is None) != (self.new_users_per_minute is None):
            raise ValueError("override total_active_users and new_users_per_minute together")
        if (
            self.total_active_users is not None
            and self.new_users_per_minute is not None
            and self.new_users_per_minute > self.total_active_users
        ):
            raise ValueError("new_users_per_minute must not exceed total_active_users")
        return self

    @property
    def opens_at(self) -> float:
        """When the event window opens: the pre-queue if any, else the start (epoch seconds)."""
        first = self.prequeue_start if self.prequeue_start is not None else self.start
        return first.timestamp()

    @property
    def starts_at(self) -> float:
        return self.start.timestamp()

    @property
    def ends_at(self) -> float:
        return self.end.timestamp()


class RoomSettings(_Model):
    """One waiting room: where it applies, how many visitors it lets through, how it queues."""

    name: str = Field(pattern=_NAME, description="Room name: letters, digits, '-', '_'.")
    host: str = Field(description="Exact hostname, no scheme, no wildcard.")
    path: str = Field(
        default="/", description="Case-sensitive path prefix; covers all subpaths; no query."
    )
    expression: str | None = Field(
        default=None,
        description=(
            "Rules-language expression (docs/rules.md): the room applies only to requests to "
            'host+path that it also matches, e.g. `http.request.method eq "POST"`.'
        ),
    )
    total_active_users: UserCount = Field(description="Visitors allowed on the site at once.")
    new_users_per_minute: UserCount = Field(
        description="Threshold of new admissions per minute; ≤ total_active_users."
    )
    session_duration: SessionDuration = Field(
        default=5 * MINUTE, description="Inactivity window of an admitted visitor (1–30 min)."
    )
    disable_session_renewal: bool = Field(
        default=False, description="True: a session lasts one session_duration, however active."
    )
    queueing_method: QueueingMethod = Field(
        default="fifo", description="fifo | random | passthrough (count only) | reject (all)."
    )
    queue_all: bool = Field(default=False, description="Admit nobody new; wait time unknown.")
    suspended: bool = Field(default=False, description="Room off: traffic passes, no cookie.")
    json_response_enabled: bool = Field(
        default=False, description="Answer `Accept: application/json` with the JSON status."
    )
    queueing_status_code: Literal[200, 202, 429] = Field(
        default=200, description="HTTP status of the queue page."
    )
    cookie_suffix: str | None = Field(
        default=None, pattern=_NAME, description="Cookie name becomes __ogwaitingroom_<suffix>."
    )
    custom_page_html: PageHtml | None = Field(
        default=None, description="Mustache-style template for the queue page; None = default."
    )
    events: tuple[Event, ...] = Field(
        default=(), max_length=MAX_EVENTS, description="Scheduled events (at most 5, no overlap)."
    )
    bypass: Bypass = Field(
        default_factory=Bypass, description="Traffic that skips the room entirely."
    )

    @field_validator("host")
    @classmethod
    def _host_is_exact(cls, host: str) -> str:
        host = host.lower()
        if not _HOST.match(host):
            raise ValueError(f"host must be an exact hostname, no scheme/port/wildcard: {host!r}")
        return host

    @field_validator("path")
    @classmethod
    def _path_is_prefix(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        if "*" in path or "?" in path or "#" in path:
            raise ValueError("path is a plain prefix: no wildcards, query or fragment")
        return path

    @model_validator(mode="after")
    def _consistent(self) -> RoomSettings:
        if self.new_users_per_minute > self.total_active_users:
            raise ValueError("new_users_per_minute must not exceed total_active_users")
        names = [event.name for event in self.events]
        if len(set(names)) != len(names):
            raise ValueError("event names must be unique within a room")
        ordered = sorted(self.events, key=lambda event: event.opens_at)
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            # spec §9.5: no overlapping events; a pre-queue counts as part of its event.
            if later.opens_at < earlier.ends_at:
                raise ValueError(f"events {earlier.name!r} and {later.name!r} overlap")
        return self

    @cached_property
    def room_id(self) -> bytes:
        """8 bytes naming this room in tickets: a ticket from another room is not valid here."""
        return hashlib.sha256(f"{self.name}\0{self.host}\0{self.path}".encode()).digest()[:8]

    def covers(self, host: str, path: str) -> bool:
        """True when a request to host+path falls in this room's route (case-sensitive path
        prefix); a room with an `expression` also needs it to match (the gate checks that)."""
        return host.lower() == self.host and path.startswith(self.path)

    def event_at(self, now: float) -> Event | None:
        """The event whose window (pre-queue through end) contains now, if any."""
        for event in self.events:
            if not event.suspended and event.opens_at <= now < event.ends_at:
                return event
        return None


@dataclass(frozen=True, slots=True)
class Phase:
    """The room's settings in force at one moment: the room's own, or an event's overrides."""

    total_active_users: int
    new_users_per_minute: int
    session_duration: float
    session_renewal: bool
    queueing_method: QueueingMethod
    queue_all: bool
    custom_page_html: str | None
    event: Event | None
    # True between an event's prequeue_start and its start: every new visitor is queued.
    is_prequeueing: bool

    @property
    def is_event_active(self) -> bool:
        return self.event is not None and not self.is_prequeueing

    @property
    def may_admit(self) -> bool:
        """False under queue_all or pre-queue: nobody is admitted, whatever the method (§9.3)."""
        return not (self.queue_all or self.is_prequeueing)


def phase_at(settings: RoomSettings, now: float) -> Phase:
    """Resolve events: inside an event window its non-null overrides replace the room's values."""
    event = settings.event_at(now)
    if event is None:
        return Phase(
            total_active_users=settings.total_active_users,
            new_users_per_minute=settings.new_users_per_minute,
            session_duration=settings.session_duration,
            session_renewal=not settings.disable_session_renewal,
            queueing_method=settings.queueing_method,
            queue_all=settings.queue_all,
            custom_page_html=settings.custom_page_html,
            event=None,
            is_prequeueing=False,
        )
    renewal_disabled = _inherit(event.disable_session_renewal, settings.disable_session_renewal)
    return Phase(
        total_active_users=_inherit(event.total_active_users, settings.total_active_users),
        new_users_per_minute=_inherit(event.new_users_per_minute, settings.new_users_per_minute),
        session_duration=_inherit(event.session_duration, settings.session_duration),
        session_renewal=not renewal_disabled,
        queueing_method=_inherit(event.queueing_method, settings.queueing_method),
        queue_all=settings.queue_all,
        custom_page_html=_inherit(event.custom_page_html, settings.custom_page_html),
        event=event,
        is_prequeueing=now < event.starts_at,
    )


def _inherit(override: _T | None, inherited: _T) -> _T:
    return inherited if override is None else override
