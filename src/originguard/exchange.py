"""One request/response as it moves through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from originguard.http.body import Body
from originguard.http.messages import RequestHead
from originguard.outcome import Outcome

if TYPE_CHECKING:
    from originguard.http.server import ClientConnection
    from originguard.routing import ZoneRuntime


@dataclass(slots=True)
class Attempt:
    """One try at an origin: which one, what came of it, how long it took."""

    origin: str
    status: int = 0           # origin status, or the edge's 52x when it failed
    error: str = ""           # failure kind ("refused", "connect_timeout", ...), "" on success
    detail: str = ""
    seconds: float = 0.0


@dataclass(slots=True)
class Exchange:
    conn: ClientConnection
    head: RequestHead
    body: Body | None
    ray: str
    started: float                       # loop time
    client_ip: str = ""
    zone: ZoneRuntime | None = None
    status: int = 0
    outcome: Outcome = Outcome.PROXIED
    attempts: list[Attempt] = field(default_factory=list)
    bytes_out: int = 0
    upstream_seconds: float = 0.0
    cache_status: str = ""
    reason: str = ""                      # why the edge answered locally, for the log
    waiting_room_cookie: bytes = b""      # Set-Cookie value of the visitor's room ticket
    relayed: bool = False                 # a Relay owns the rest (it calls Pipeline.finish)
