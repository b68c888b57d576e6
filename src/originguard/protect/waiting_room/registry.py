"""What outlives one configuration: the room state and the admin's run-time overrides.

A reload builds new rooms from the new config but hands them the same `RoomRegistry`, so the
visitors counted, the queue and any `queue_all` or limit an operator set through the admin API
carry over (issue 6: "change limits without a restart", kept across reloads).
"""

from __future__ import annotations

import logging
from typing import Any

from originguard.state.base import AdmissionQueue
from originguard.state.memory import MemoryAdmissionQueue

from .settings import RoomSettings

# The settings an operator may change at run time (admin API); None in a request clears one.
OVERRIDABLE = ("queue_all", "suspended", "total_active_users", "new_users_per_minute")

_SWITCHES = ("queue_all", "suspended")  # overrides that cannot conflict with any limits

RoomKey = tuple[str, str]  # (zone name, room name)

log = logging.getLogger("originguard.waiting_room")


class RoomRegistry:
    def __init__(self, state: AdmissionQueue | None = None) -> None:
        self.state: AdmissionQueue = state if state is not None else MemoryAdmissionQueue()
        self._overrides: dict[RoomKey, dict[str, Any]] = {}

    def overrides(self, key: RoomKey) -> dict[str, Any]:
        return dict(self._overrides.get(key, {}))

    def effective(self, key: RoomKey, configured: RoomSettings) -> RoomSettings:
        """The configured settings with this room's overrides applied (validated again). A
        limit override that no longer fits a reloaded config is dropped, not the reload."""
        overrides = self._overrides.get(key, {})
        try:
            return apply_overrides(configured, overrides)
        except ValueError as error:
            kept = {name: overrides[name] for name in _SWITCHES if name in overrides}
            log.warning(
                "waiting room %s/%s: the admin API's limits %s conflict with the new "
                "configuration and are dropped: %s",
                *key,
                {n: v for n, v in overrides.items() if n not in kept},
                error,
            )
            if kept:
                self._overrides[key] = kept
            else:
                self._overrides.pop(key, None)
            return apply_overrides(configured, kept)

    def change(
        self, key: RoomKey, configured: RoomSettings, changes: dict[str, Any]
    ) -> RoomSettings:
        """Merge `changes` into the room's overrides; raise ValueError if the result is invalid.

        Nothing is stored unless the merged settings validate, so a bad call changes nothing.
        """
        unknown = sorted(set(changes) - set(OVERRIDABLE))
        if unknown:
            raise ValueError(f"cannot change {', '.join(unknown)}; allowed: {OVERRIDABLE}")
        merged = {**self._overrides.get(key, {}), **changes}
        merged = {name: value for name, value in merged.items() if value is not None}
        settings = apply_overrides(configured, merged)
        if merged:
            self._overrides[key] = merged
        else:
            self._overrides.pop(key, None)
        return settings


def apply_overrides(configured: RoomSettings, overrides: dict[str, Any]) -> RoomSettings:
    if not overrides:
        return configured
    fields = configured.model_dump()
    fields.update(overrides)
    # Re-validated whole: an override may not break new_users_per_minute ≤ total_active_users.
    return RoomSettings.model_validate(fields)
