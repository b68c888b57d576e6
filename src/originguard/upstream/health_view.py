"""What the core's routing and balancer ask of origin health, as two small protocols.

The core never imports ``originguard.health``: a zone with a load balancer gets a ``Steering``
and each of its pools' balancers an ``OriginView``, both made by ``health.service``. A zone
without one keeps the core's plain behaviour (first usable pool, every enabled origin).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from originguard.upstream.pool import Origin

if TYPE_CHECKING:
    from originguard.exchange import Exchange
    from originguard.routing import PoolRuntime


class OriginView(Protocol):
    """Health as a pool's balancer sees it."""

    def usable(self, origins: Sequence[Origin]) -> Sequence[Origin]:
        """The origins that may take traffic now (healthy, not ejected; panic keeps all)."""
        ...

    def weight(self, origin: Origin) -> float:
        """The origin's weight now (slow start ramps a recovered origin up)."""
        ...


class Steering(Protocol):
    """A zone's load balancer over its pools (spec §6.3-§6.6)."""

    def active_pool(self) -> PoolRuntime | None:
        """The pool steering picks for a new request; None = answer 530."""
        ...

    def select(
        self, ex: Exchange, pool: PoolRuntime, exclude: Collection[Origin]
    ) -> tuple[PoolRuntime, Origin] | None:
        """The origin for the next attempt (affinity first); None = no (further) attempt."""
        ...
