"""Origin steering within a pool (spec §6.5): which origin serves the next attempt."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from originguard.upstream.pool import Origin

if TYPE_CHECKING:
    from originguard.upstream.health_view import OriginView


class Balancer:
    """Picks an origin by the pool's steering policy, skipping excluded and unusable ones."""

    def __init__(self, origins: Sequence[Origin], steering: str, rng: random.Random | None = None):
        self.origins = list(origins)
        self.steering = steering
        self._rng = rng or random.Random()
        self._usable = [o for o in self.origins if o.is_usable]
        self._current = [0.0] * len(self.origins)  # smooth weighted round robin state
        self.view: OriginView | None = None  # origin health, set when the zone has a balancer

    def select(self, client_ip: str, exclude: Collection[Origin] = ()) -> Origin | None:
        view = self.view
        if view is None:
            candidates = [o for o in self._usable if o not in exclude] if exclude else self._usable
        else:
            # Health first (unhealthy and ejected origins drop out), then the retry's exclusion.
            usable = view.usable(self._usable)
            candidates = [o for o in usable if o not in exclude]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        steering = self.steering
        if steering == "round_robin":
            return self._round_robin(candidates)
        if steering == "least_outstanding_requests":
            return self._least_outstanding(candidates)
        if steering == "hash":
            return _rendezvous(candidates, client_ip, self.weight)
        return self._weighted_random(candidates)

    def weight(self, origin: Origin) -> float:
        """The origin's weight now: its configured one, or slow start's share of it."""
        return origin.weight if self.view is None else self.view.weight(origin)

    def _weighted_random(self, candidates: list[Origin]) -> Origin:
        # Share = weight / sum of the candidates' weights (spec §6.5).
        weights = [self.weight(o) for o in candidates]
        point = self._rng.random() * sum(weights)
        for origin, weight in zip(candidates, weights, strict=True):
            point -= weight
            if point < 0:
                return origin
        return candidates[-1]

    def _round_robin(self, candidates: list[Origin]) -> Origin:
        # Smooth weighted round robin: each pick adds every weight, takes the largest,
        # then subtracts the total from it, spreading picks evenly over the cycle.
        total = 0.0
        best_index = -1
        for index, origin in enumerate(self.origins):
            if origin not in candidates:
                continue
            weight = self.weight(origin)
            self._current[index] += weight
            total += weight
            if best_index < 0 or self._current[index] > self._current[best_index]:
                best_index = index
        self._current[best_index] -= total
        return self.origins[best_index]

    def _least_outstanding(self, candidates: list[Origin]) -> Origin:
        # In-flight requests scaled by weight; ties broken at random.
        best: list[Origin] = []
        best_score = math.inf
        for origin in candidates:
            score = (origin.in_flight + 1) / max(self.weight(origin), 1e-9)
            if score < best_score:
                best, best_score = [origin], score
            elif score == best_score:
                best.append(origin)
        return best[0] if len(best) == 1 else self._rng.choice(best)


def _rendezvous(
    candidates: list[Origin], client_ip: str, weight: Callable[[Origin], float]
) -> Origin:
    """Weighted rendezvous hashing: the same client IP keeps its origin while it is usable,
    and removing one origin moves only that origin's clients."""
    best = candidates[0]
    best_score = -math.inf
    for origin in candidates:
        digest = hashlib.blake2b(
            f"{client_ip}|{origin.address}".encode(), digest_size=8
        ).digest()
        unit = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)
        score = -weight(origin) / math.log(unit)
        if score > best_score:
            best, best_score = origin, score
    return best
