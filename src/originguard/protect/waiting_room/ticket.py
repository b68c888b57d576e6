"""The visitor's ticket: a sealed cookie carrying their place in one room (spec §9.2).

Wire format, base64url without padding::

    version (1) | key tag (4) | nonce (12) | AES-256-GCM(plaintext) + GCM tag (16)
    plaintext = room id (8) | visitor id (16) | bucket (u32 minute) | state (u8)
                | accepted_at (f64, -1 = none) | last_seen (f64)

The version and key tag are the associated data, so they are authenticated too. Keys are derived
with HKDF-SHA256 from an operator secret and a key id; the first key of a `Keyring` seals, every
key opens, which is how a secret is rotated without dropping the queue.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from originguard.state.base import QUEUE_GRACE

from .settings import Phase, RoomSettings

COOKIE_BASE = "__ogwaitingroom"
MIN_SECRET_BYTES = 16

_VERSION = 1
_PLAIN = struct.Struct(">8s16sIBdd")
_NONCE_BYTES = 12
_TAG_BYTES = 4
_HEADER = 1 + _TAG_BYTES
_SEALED_BYTES = _HEADER + _NONCE_BYTES + _PLAIN.size + 16
_MAX_TOKEN_CHARS = 4 * math.ceil(_SEALED_BYTES / 3)


class TicketState(enum.IntEnum):
    QUEUED = 1
    ADMITTED = 2


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the cookie says about a visitor. Trusted only once `read` has checked it."""

    room_id: bytes
    visitor_id: bytes
    bucket: int  # minute (epoch seconds // 60) of first arrival at a queueing room: FIFO group
    state: TicketState
    accepted_at: float | None  # when admitted; None while queued
    last_seen: float  # last request (admitted) or last refresh (queued)

    @property
    def is_admitted(self) -> bool:
        return self.state is TicketState.ADMITTED

    def expires_at(self, phase: Phase) -> float:
        """The moment this ticket stops being valid under the room's current phase (§9.2)."""
        if self.state is TicketState.QUEUED or self.accepted_at is None:
            return self.last_seen + QUEUE_GRACE
        if phase.session_renewal:
            return self.last_seen + phase.session_duration
        # disable_session_renewal: a hard cap of one session_duration from admission (§9.1).
        return self.accepted_at + phase.session_duration


class Keyring:
    """Ticket keys, newest first: the first seals, all of them open."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one (key id, secret)")
        ids = [key_id for key_id, _ in keys]
        if len(set(ids)) != len(ids):
            raise ValueError("key ids must be unique")
        self._keys: list[tuple[bytes, AESGCM]] = []
        for key_id, secret in keys:
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"secret for key {key_id!r} is shorter than 16 bytes")
            self._keys.append((_key_tag(key_id), AESGCM(_derive(key_id, secret))))

    def seal(self, ticket: Ticket) -> str:
        """Encrypt and authenticate a ticket under the newest key; compact base64url."""
        tag, aead = self._keys[0]
        header = bytes([_VERSION]) + tag
        nonce = os.urandom(_NONCE_BYTES)
        accepted_at = -1.0 if ticket.accepted_at is None else ticket.accepted_at
        plain = _PLAIN.pack(
            ticket.room_id,
            ticket.visitor_id,
            ticket.bucket,
            int(ticket.state),
            accepted_at,
            ticket.last_seen,
        )
        sealed = header + nonce + aead.encrypt(nonce, plain, header)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, token: str) -> Ticket | None:
        """The ticket inside a token, or None if it is malformed, forged or tampered with."""
        if len(token) > _MAX_TOKEN_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _SEALED_BYTES or raw[0] != _VERSION:
            return None
        header, nonce, body = (
            raw[:_HEADER],
            raw[_HEADER : _HEADER + _NONCE_BYTES],
            raw[_HEADER + _NONCE_BYTES :],
        )
        for tag, aead in self._keys:
            if tag != header[1:]:
                continue
            try:
                plain = aead.decrypt(nonce, body, header)
            except InvalidTag:
                return None
            return _unpack(plain)
        return None


def read(
    token: str | None, keyring: Keyring, settings: RoomSettings, phase: Phase, now: float
) -> Ticket | None:
    """The visitor's ticket if it is genuine, for this room and unexpired; else None (= new)."""
    if token is None:
        return None
    ticket = keyring.open(token)
    if ticket is None or not is_valid(ticket, settings, phase, now):
        return None
    return ticket


def is_valid(ticket: Ticket, settings: RoomSettings, phase: Phase, now: float) -> bool:
    """True for a ticket of this room that has not expired (a cross-room ticket is not valid)."""
    return ticket.room_id == settings.room_id and now < ticket.expires_at(phase)


def cookie_name(settings: RoomSettings) -> str:
    """``__ogwaitingroom`` or ``__ogwaitingroom_<suffix>`` (spec §9.1 cookie_suffix)."""
    if settings.cookie_suffix:
        return f"{COOKIE_BASE}_{settings.cookie_suffix}"
    return COOKIE_BASE


def find_token(cookie_header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, or None."""
    for pair in cookie_header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def set_cookie(
    settings: RoomSettings, token: str, ticket: Ticket, phase: Phase, now: float, *, secure: bool
) -> str:
    """A Set-Cookie value whose Max-Age matches the ticket's own validity."""
    max_age = max(0, math.ceil(ticket.expires_at(phase) - now))
    parts = [
        f"{cookie_name(settings)}={token}",
        f"Path={settings.path}",
        f"Max-Age={max_age}",
        "HttpOnly",
        "SameSite=Lax",
    ]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def _unpack(plain: bytes) -> Ticket | None:
    room_id, visitor_id, bucket, state, accepted_at, last_seen = _PLAIN.unpack(plain)
    if state not in (TicketState.QUEUED, TicketState.ADMITTED):
        return None
    if not (math.isfinite(accepted_at) and math.isfinite(last_seen)):
        return None
    return Ticket(
        room_id=room_id,
        visitor_id=visitor_id,
        bucket=bucket,
        state=TicketState(state),
        accepted_at=None if accepted_at < 0 else accepted_at,
        last_seen=last_seen,
    )


def _derive(key_id: str, secret: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"originguard waiting room",
        info=b"ticket v1 key " + key_id.encode(),
    )
    return hkdf.derive(secret)


def _key_tag(key_id: str) -> bytes:
    return hashlib.sha256(b"originguard waiting room key id " + key_id.encode()).digest()[
        :_TAG_BYTES
    ]
