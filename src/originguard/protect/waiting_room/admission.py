"""Admission: who enters the origin, who waits, and where (spec §9.3).

`decide` is the room's whole policy as one function of (settings, ticket, state, now). The shared
part — counting sessions, the per-minute admissions, the line — is an `AdmissionQueue`
(`state/base.py`), whose one call per request checks and updates together: in memory without an
`await` in between, in Redis as one script. That is what keeps `total_active_users` and
`new_users_per_minute` honest when many requests race.

FIFO is by bucket (the minute a visitor first met a queueing room): a visitor may enter only when
no one from an earlier bucket is still holding a place, abandoned places included until their
5-minute grace ends (§9.3). Within the head bucket, whoever asks first while a slot is free gets
it. Random draws give each queued visitor one draw per refresh, weighted by minutes waited, so
earlier arrivals have better odds. A draw or FIFO attempt happens at most once per refresh
interval: reloading faster does not buy a better chance (§9.4 lastUpdated).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from originguard.state.base import (
    AdmissionLimits,
    AdmissionQueue,
    AdmittingMethod,
    Placement,
    Visitor,
    minute_of,
)

from .settings import Phase, RoomSettings, phase_at
from .ticket import Ticket, TicketState

# spec §9.4: an estimate beyond a day is shown as "greater than a day" (queueIsFull).
MAX_KNOWN_WAIT_MINUTES = 24 * 60
VISITOR_ID_BYTES = 16

PassReason = Literal["suspended", "bypass", "passthrough"]


# ---------------------------------------------------------------------------------------------
# Decisions.


@dataclass(frozen=True, slots=True)
class Wait:
    """Estimated wait in minutes (spec §9.3): FIFO from position, random as percentiles."""

    known: bool
    minutes: int = 0
    p25: int = 0
    p50: int = 0
    p75: int = 0
    queue_is_full: bool = False


UNKNOWN_WAIT = Wait(known=False)


@dataclass(frozen=True, slots=True)
class Admit:
    """Let the request through; set the (new or renewed) ticket."""

    ticket: Ticket
    is_new: bool


@dataclass(frozen=True, slots=True)
class Queue:
    """Answer with the queue page (or JSON) at queueing_status_code; set the ticket."""

    ticket: Ticket
    position: int
    queued: int
    wait: Wait
    last_updated: float
    phase: Phase


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer with the static reject page; no ticket, no refresh."""

    phase: Phase


@dataclass(frozen=True, slots=True)
class Pass:
    """The room does not apply (suspended, bypass) or only counts (passthrough)."""

    reason: PassReason
    ticket: Ticket | None = None


Decision = Admit | Queue | Reject | Pass


def new_visitor_id() -> bytes:
    return secrets.token_bytes(VISITOR_ID_BYTES)


async def decide(
    settings: RoomSettings,
    ticket: Ticket | None,
    state: AdmissionQueue,
    now: float,
    *,
    path: str = "/",
    client: IPv4Address | IPv6Address | None = None,
    new_id: Callable[[], bytes] = new_visitor_id,
) -> Decision:
    """The room's answer to one request. `ticket` must already be verified (`ticket.read`)."""
    if settings.suspended:
        return Pass("suspended")
    if settings.bypass.is_bypassed(path, client):
        # spec §9.5: bypassed traffic gets no room treatment at all, not even counting.
        return Pass("bypass")
    phase = phase_at(settings, now)
    if phase.queueing_method == "reject":
        return Reject(phase)
    if ticket is None:
        visitor = Visitor(new_id(), minute_of(now), None)
    else:
        visitor = Visitor(ticket.visitor_id, ticket.bucket, ticket.accepted_at)
    placement = await state.admit_or_queue(settings.room_id, visitor, limits_of(phase, now), now)
    if placement.admitted:
        admitted = Ticket(
            room_id=settings.room_id,
            visitor_id=visitor.id,
            bucket=visitor.bucket,
            state=TicketState.ADMITTED,
            accepted_at=placement.accepted_at if placement.accepted_at is not None else now,
            last_seen=now,
        )
        if phase.queueing_method == "passthrough":
            return Pass("passthrough", admitted)
        return Admit(admitted, is_new=placement.is_new_admission)
    queued = Ticket(
        room_id=settings.room_id,
        visitor_id=visitor.id,
        bucket=placement.bucket,
        state=TicketState.QUEUED,
        accepted_at=None,
        last_seen=now,
    )
    return Queue(
        ticket=queued,
        position=placement.position,
        queued=placement.queued,
        wait=estimate_wait(placement, phase),
        last_updated=placement.attempted_at,
        phase=phase,
    )


def limits_of(phase: Phase, now: float) -> AdmissionLimits:
    """What the state needs to know of the phase in force (reject never reaches the state)."""
    method: AdmittingMethod = "fifo"
    if phase.queueing_method != "reject":
        method = phase.queueing_method
    event = phase.event
    shuffle = None
    if event is not None and event.shuffle_at_event_start and now >= event.starts_at:
        shuffle = f"{event.name}@{event.starts_at}"
    return AdmissionLimits(
        total_active_users=phase.total_active_users,
        new_users_per_minute=phase.new_users_per_minute,
        session_duration=phase.session_duration,
        session_renewal=phase.session_renewal,
        queueing_method=method,
        may_admit=phase.may_admit,
        shuffle_event=shuffle,
    )


def estimate_wait(placement: Placement, phase: Phase) -> Wait:
    """spec §9.3: visitors ahead ÷ rate of users leaving the queue for the site, per minute.

    The rate is the measured admission rate; before any admission was measured, the measured
    departure rate (a freed seat is the next admission), capped at new_users_per_minute. With
    queue_all or a pre-queue nobody leaves, so the wait is unknown.
    """
    if not phase.may_admit:
        return UNKNOWN_WAIT
    rate = placement.admission_rate
    if rate <= 0:
        rate = min(placement.departure_rate, float(phase.new_users_per_minute))
    if rate <= 0:
        return UNKNOWN_WAIT
    if phase.queueing_method == "random":
        # A random queue releases anyone at any time: spread over the whole queue.
        p25, p50, p75 = (
            max(1, math.ceil(share * placement.queued / rate)) for share in (0.25, 0.5, 0.75)
        )
        if p50 > MAX_KNOWN_WAIT_MINUTES:
            return Wait(known=False, queue_is_full=True)
        return Wait(known=True, minutes=p50, p25=p25, p50=p50, p75=p75)
    minutes = max(1, math.ceil(placement.position / rate))
    if minutes > MAX_KNOWN_WAIT_MINUTES:
        return Wait(known=False, queue_is_full=True)
    return Wait(known=True, minutes=minutes)
