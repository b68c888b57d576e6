"""A zone's ``waiting_room`` config section: its rooms and the keys that seal their tickets.

```yaml
waiting_room:
  keys:                       # newest first: the first seals, every key opens (rotation)
    - id: "2026-06"
      secret: ${OG_ROOM_KEY}
  rooms:
    - name: sale
      host: shop.example.com
      path: /sale
      total_active_users: 500
      new_users_per_minute: 200
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from originguard.protect.rules import RuleSyntaxError, compile_expression
from originguard.units import TypeLabel

from .settings import RoomSettings
from .ticket import MIN_SECRET_BYTES, Keyring, cookie_name


def _redact(_secret: SecretStr) -> str:
    return "***"


TicketSecret = Annotated[
    SecretStr,
    Field(min_length=MIN_SECRET_BYTES),
    PlainSerializer(_redact, return_type=str, when_used="json"),
    TypeLabel("secret"),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TicketKey(_Model):
    """One key that seals waiting-room tickets (AES-256-GCM, derived with HKDF)."""

    id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Key id, unique; lets a ticket name the key that sealed it.",
    )
    secret: TicketSecret = Field(
        description="At least 16 characters of secret; give it as `${ENV}`.",
    )


class WaitingRoomSection(_Model):
    """Waiting rooms of one zone (spec §9): who may enter a path, who waits in line."""

    keys: tuple[TicketKey, ...] = Field(
        default=(),
        description=(
            "Ticket keys, newest first: the first seals new tickets, all of them open tickets. "
            "Rotate by adding a new key in front and dropping the old one a session later. "
            "Required when `rooms` is not empty."
        ),
    )
    rooms: tuple[RoomSettings, ...] = Field(
        default=(),
        description="The zone's rooms; a request enters the room with the longest matching path.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> WaitingRoomSection:
        if self.rooms and not self.keys:
            raise _at(("keys",), "at least one ticket key is required when rooms are defined")
        ids = [key.id for key in self.keys]
        for index, key_id in enumerate(ids):
            if key_id in ids[:index]:
                raise _at(("keys", index, "id"), f"key id {key_id!r} is listed twice")
        names: set[str] = set()
        routes: set[tuple[str, str, str | None]] = set()
        cookies: set[tuple[str, str, str]] = set()
        for index, room in enumerate(self.rooms):
            if room.name in names:
                raise _at(("rooms", index, "name"), f"room {room.name!r} is defined twice")
            names.add(room.name)
            if (room.host, room.path, room.expression) in routes:
                raise _at(
                    ("rooms", index, "path"),
                    f"another room already covers {room.host}{room.path}"
                    + (" with this expression" if room.expression else "")
                    + ": host+path(+expression) is unique",
                )
            routes.add((room.host, room.path, room.expression))
            # Rooms on one host+path (told apart by expressions) would overwrite each other's
            # ticket: same cookie name, same Path attribute.
            cookie = (room.host, room.path, cookie_name(room))
            if cookie in cookies:
                raise _at(
                    ("rooms", index, "cookie_suffix"),
                    f"another room on {room.host}{room.path} uses the cookie {cookie[2]}: "
                    "give each room on one path its own cookie_suffix",
                )
            cookies.add(cookie)
        return self

    def keyring(self) -> Keyring:
        return Keyring([(key.id, key.secret.get_secret_value().encode()) for key in self.keys])


def _rooms_in_zone(section: WaitingRoomSection, info: ValidationInfo) -> WaitingRoomSection:
    """A room's host must be one the zone serves (exact, or under its `*.` wildcard)."""
    hostnames = info.data.get("hostnames")
    if not hostnames:
        return section  # the zone's own hostnames failed; that error is reported already
    for index, room in enumerate(section.rooms):
        if not any(_serves(pattern, room.host) for pattern in hostnames):
            raise _at(
                ("rooms", index, "host"),
                f"host {room.host!r} is not one of this zone's hostnames",
            )
    return section


def check_room_expressions(
    sections: Sequence[WaitingRoomSection], lists: Mapping[str, Sequence[str | int]]
) -> None:
    """Compile every room's `expression` and `bypass.expression` (`sections` in zone order,
    with the config's named lists); the first error is raised located at the expression, its
    message naming the room, the expression's line and a caret under the problem."""
    for z, section in enumerate(sections):
        for r, room in enumerate(section.rooms):
            where = ("zones", z, "waiting_room", "rooms", r)
            if room.expression is not None:
                _compile_at((*where, "expression"), room.name, room.expression, lists)
            if room.bypass.expression is not None:
                path = (*where, "bypass", "expression")
                _compile_at(path, f"{room.name} bypass", room.bypass.expression, lists)


def _compile_at(
    at: tuple[str | int, ...],
    name: str,
    text: str,
    lists: Mapping[str, Sequence[str | int]],
) -> None:
    try:
        compile_expression(text, lists)
    except RuleSyntaxError as error:
        line, column = error.line_and_column(text)
        caret = error.render(name, text).split("\n", 1)[1]  # the line and the caret under it
        message = f'room "{name}": {error.message} (line {line}, column {column})\n{caret}'
        raise _at(at, message) from None


def _serves(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _at(at: tuple[str | int, ...], message: str) -> PydanticCustomError:
    # The config loader appends `at` to the error's location, so the message names the line
    # of the offending key, not of the whole section.
    return PydanticCustomError("config", "{message}", {"message": message, "at": at})


# The type of the zone's field: the section checked against the zone's hostnames.
ZoneWaitingRooms = Annotated[WaitingRoomSection, AfterValidator(_rooms_in_zone)]
