"""The ticket cookie (spec §9.2): sealed, room-bound, expiring, with key rotation."""

from __future__ import annotations

import base64
import re

import pytest

from originguard.protect.waiting_room.settings import RoomSettings, phase_at
from originguard.protect.waiting_room.ticket import (
    QUEUE_GRACE,
    Keyring,
    Ticket,
    TicketState,
    cookie_name,
    find_token,
    read,
    set_cookie,
)

NOW = 1_700_000_040.0
SECRET = b"s" * 32
ROOM = RoomSettings(name="sale", host="shop.example", total_active_users=10, new_users_per_minute=5)
RING = Keyring([("k1", SECRET)])


def _ticket(room: RoomSettings = ROOM, *, state: TicketState = TicketState.ADMITTED) -> Ticket:
    admitted = state is TicketState.ADMITTED
    return Ticket(
        room_id=room.room_id,
        visitor_id=b"v" * 16,
        bucket=int(NOW // 60),
        state=state,
        accepted_at=NOW if admitted else None,
        last_seen=NOW,
    )


def _read(
    token: str | None, now: float = NOW, room: RoomSettings = ROOM, ring: Keyring = RING
) -> Ticket | None:
    return read(token, ring, room, phase_at(room, now), now)


def test_sealed_ticket_reads_back_unchanged() -> None:
    for state in TicketState:
        ticket = _ticket(state=state)
        assert _read(RING.seal(ticket)) == ticket


def test_token_is_compact_base64url() -> None:
    token = RING.seal(_ticket())
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(token) <= 110


def test_same_ticket_seals_differently_each_time() -> None:
    assert RING.seal(_ticket()) != RING.seal(_ticket())


def test_forged_token_is_a_new_visitor() -> None:
    forged = base64.urlsafe_b64encode(bytes(78)).rstrip(b"=").decode()
    assert _read(forged) is None
    assert _read("not-a-ticket") is None
    assert _read("") is None
    assert _read("%%%") is None
    assert _read("A" * 5000) is None
    assert _read(None) is None


def test_ticket_sealed_with_an_unknown_secret_is_a_new_visitor() -> None:
    stranger = Keyring([("k1", b"x" * 32)])
    assert _read(stranger.seal(_ticket())) is None


@pytest.mark.parametrize("position", [0, 3, 10, 30, 60, 90, 103])
def test_tampered_token_is_a_new_visitor(position: int) -> None:
    token = RING.seal(_ticket())
    flipped = "A" if token[position] != "A" else "B"
    assert _read(token[:position] + flipped + token[position + 1 :]) is None


def test_ticket_from_another_room_is_a_new_visitor() -> None:
    other = RoomSettings(
        name="other", host="shop.example", total_active_users=10, new_users_per_minute=5
    )
    assert _read(RING.seal(_ticket(other))) is None


def test_queued_ticket_expires_five_minutes_after_last_refresh() -> None:
    token = RING.seal(_ticket(state=TicketState.QUEUED))
    assert _read(token, NOW + QUEUE_GRACE - 1) is not None
    assert _read(token, NOW + QUEUE_GRACE) is None


def test_admitted_ticket_expires_after_session_duration_without_requests() -> None:
    token = RING.seal(_ticket())
    assert _read(token, NOW + ROOM.session_duration - 1) is not None
    assert _read(token, NOW + ROOM.session_duration) is None


def test_without_renewal_an_active_visitor_still_expires_one_session_after_admission() -> None:
    room = ROOM.model_copy(update={"disable_session_renewal": True})
    busy = Ticket(
        room_id=room.room_id,
        visitor_id=b"v" * 16,
        bucket=0,
        state=TicketState.ADMITTED,
        accepted_at=NOW,
        last_seen=NOW + 290,
    )
    token = RING.seal(busy)
    assert _read(token, NOW + 299, room) is not None
    assert _read(token, NOW + 300, room) is None


def test_rotation_new_key_seals_old_key_still_opens() -> None:
    old = Keyring([("2024", b"o" * 32)])
    rotated = Keyring([("2025", b"n" * 32), ("2024", b"o" * 32)])
    ticket = _ticket()
    assert _read(old.seal(ticket), ring=rotated) == ticket
    assert _read(rotated.seal(ticket), ring=rotated) == ticket
    assert _read(rotated.seal(ticket), ring=old) is None


def test_retired_key_no_longer_opens() -> None:
    old = Keyring([("2024", b"o" * 32)])
    retired = Keyring([("2025", b"n" * 32)])
    assert _read(old.seal(_ticket()), ring=retired) is None


def test_same_secret_under_another_key_id_is_another_key() -> None:
    assert _read(Keyring([("k2", SECRET)]).seal(_ticket())) is None


def test_keyring_refuses_short_secrets_and_duplicate_ids() -> None:
    with pytest.raises(ValueError):
        Keyring([("k1", b"short")])
    with pytest.raises(ValueError):
        Keyring([("k1", SECRET), ("k1", SECRET)])
    with pytest.raises(ValueError):
        Keyring([])


def test_cookie_name_carries_the_suffix() -> None:
    assert cookie_name(ROOM) == "__ogwaitingroom"
    assert cookie_name(ROOM.model_copy(update={"cookie_suffix": "shop"})) == "__ogwaitingroom_shop"


def test_set_cookie_lives_as_long_as_the_ticket() -> None:
    ticket = _ticket(state=TicketState.QUEUED)
    header = set_cookie(ROOM, "TOKEN", ticket, phase_at(ROOM, NOW), NOW, secure=True)
    assert header == "__ogwaitingroom=TOKEN; Path=/; Max-Age=300; HttpOnly; SameSite=Lax; Secure"


def test_find_token_picks_our_cookie_among_others() -> None:
    header = "a=1; __ogwaitingroom_shop=XYZ; __ogwaitingroom=ABC"
    assert find_token(header, "__ogwaitingroom") == "ABC"
    assert find_token(header, "__ogwaitingroom_shop") == "XYZ"
    assert find_token("a=1", "__ogwaitingroom") is None
