"""Session affinity (spec §6.6) and its zero-downtime-failover modes (spec §3).

``cookie``: an opaque ``__oglb`` token, HMAC-signed, naming the origin and an expiry. The origin
is named by a keyed hash, never by address: the cookie must not leak what the edge protects.
``ip_cookie``: as cookie, but the first pick is a weighted rendezvous hash of the client IP.
``header``: chosen header (or cookie) values hash to a session key kept server-side with an
idle TTL. All pure: the caller passes ``now`` and the origins currently usable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import struct
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from originguard.health.settings import AffinitySettings, ZdfMode

COOKIE_NAME = "__oglb"
_TAG = 8
_MAC = 16
_LAYOUT = struct.Struct(">8sQ16s")  # origin tag, expiry (unix seconds), mac


class CookieAffinity:
    """Issues and checks ``__oglb`` tokens. ``scope`` keeps tokens of two LBs apart."""

    def __init__(self, secret: bytes, ttl: float, scope: str = "") -> None:
        if len(secret) < 16:
            raise ValueError("affinity secret must be at least 16 bytes")
        self._secret = secret
        self._ttl = ttl
        self._scope = scope.encode()

    def _tag(self, origin: str) -> bytes:
        message = b"origin\0" + self._scope + b"\0" + origin.encode()
        return hmac.digest(self._secret, message, "sha256")[:_TAG]

    def _mac(self, tag: bytes, expiry: int) -> bytes:
        message = b"oglb1\0" + self._scope + b"\0" + tag + struct.pack(">Q", expiry)
        return hmac.digest(self._secret, message, "sha256")[:_MAC]

    def issue(self, origin: str, now: float) -> str:
        expiry = math.ceil(now + self._ttl)
        tag = self._tag(origin)
        raw = _LAYOUT.pack(tag, expiry, self._mac(tag, expiry))
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def resolve(self, token: str | None, candidates: Sequence[str], now: float) -> str | None:
        """The pinned origin if the token is authentic, unexpired and names a usable origin.

        None means "pick again and set a new cookie" (spec §6.6): no cookie, tampered, expired,
        or the pinned origin is not among ``candidates`` (unhealthy, ejected, removed).
        """
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            tag, expiry, mac = _LAYOUT.unpack(raw)
        except (binascii.Error, ValueError, struct.error):
            return None
        if not hmac.compare_digest(mac, self._mac(tag, expiry)) or expiry <= now:
            return None
        return next((o for o in candidates if hmac.compare_digest(self._tag(o), tag)), None)

    def set_cookie(self, token: str, *, secure: bool, samesite: str) -> str:
        """A ``Set-Cookie`` value; HttpOnly always (spec §6.6)."""
        value = f"{COOKIE_NAME}={token}; Path=/; Max-Age={int(self._ttl)}; HttpOnly"
        value += f"; SameSite={samesite}"
        return value + "; Secure" if secure else value


def cookie_flags(settings: AffinitySettings, always_https: bool) -> tuple[bool, str]:
    """(secure, SameSite) per spec §6.6: ``auto`` follows Always-Use-HTTPS."""
    secure = {"always": True, "never": False}.get(settings.secure, always_https)
    samesite = {"lax": "Lax", "none": "None", "strict": "Strict"}.get(
        settings.samesite, "None" if always_https else "Lax"
    )
    return secure, samesite


def pick_by_ip(client_ip: str, origins: Sequence[tuple[str, float]]) -> str | None:
    """Weighted rendezvous hash: stable per IP, moves few clients when origins change."""
    best: tuple[float, str] | None = None
    for origin, weight in origins:
        if weight <= 0:
            continue
        digest = hashlib.sha256(f"{client_ip}\0{origin}".encode()).digest()
        unit = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 1)  # in (0, 1)
        score = -weight / math.log(unit)
        if best is None or score > best[0]:
            best = (score, origin)
    return None if best is None else best[1]


def session_key(names: Sequence[str], headers: Mapping[str, str], require_all: bool) -> str | None:
    """Hash of the chosen header values (lower-case names), or None if the session has none.

    ``"cookie:<a>,<b>"`` reads those cookies, ``"cookie"`` the whole Cookie header.
    ``require_all`` false: at least one value must be present; true: all of them.
    """
    values: list[str] = []
    cookies = _cookies(headers.get("cookie", ""))
    for name in names:
        lowered = name.lower()
        if lowered.startswith("cookie:"):
            wanted = [n.strip() for n in name.split(":", 1)[1].split(",") if n.strip()]
            found = [f"{n}={cookies[n]}" for n in wanted if n in cookies]
            value = ";".join(found) if len(found) == len(wanted) or not require_all else ""
        else:
            value = headers.get(lowered, "")
        if require_all and not value:
            return None
        values.append(value)
    if not any(values):
        return None
    return hashlib.sha256("\0".join(values).encode()).hexdigest()


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().split("=", 1) for part in header.split(";") if "=" in part)
    return {name.strip(): value.strip() for name, value in pairs}


class HeaderAffinity:
    """Server-side session table with an idle TTL (spec §6.6 ``header``), bounded LRU."""

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._table: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def lookup(self, key: str, candidates: Sequence[str], now: float) -> str | None:
        """The bound origin if used within the TTL and still usable; refreshes the idle timer."""
        entry = self._table.get(key)
        if entry is None:
            return None
        origin, last_used = entry
        if now - last_used >= self._ttl or origin not in candidates:
            del self._table[key]
            return None
        self._table[key] = (origin, now)
        self._table.move_to_end(key)
        return origin

    def bind(self, key: str, origin: str, now: float) -> None:
        self._table[key] = (origin, now)
        self._table.move_to_end(key)
        while len(self._table) > self._max:
            self._table.popitem(last=False)

    def __len__(self) -> int:
        return len(self._table)


@dataclass(frozen=True, slots=True)
class FailoverPlan:
    """What to do when the chosen origin fails with a connection-class error (spec §3)."""

    may_retry: bool  # one retry on another healthy origin
    repin: bool  # point the affinity at the origin that served the retry


def failover_plan(mode: ZdfMode, pinned: bool) -> FailoverPlan:
    """``none``: a pinned session gets no failover; ``temporary``: retry, keep the pin (it
    returns once the origin recovers); ``sticky``: retry and move the pin. An unpinned request
    always gets the ordinary retry, and its new pin names whichever origin served."""
    if not pinned:
        return FailoverPlan(may_retry=True, repin=True)
    if mode == "none":
        return FailoverPlan(may_retry=False, repin=False)
    return FailoverPlan(may_retry=True, repin=mode == "sticky")
