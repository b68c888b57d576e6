"""Rate limiting rules (spec §7.3).

A rule's `expression` picks the requests it looks at; its `characteristics` make the counter
key (client IP with IPv6 grouped per /64, host, path, a header, cookie or query argument; a
missing one is its own "missing" value, distinct from empty). Counts go through the
``WindowCounter`` protocol (state/base.py): a sliding-window estimate over two fixed windows.

    mitigation_timeout 0    throttle: only requests that would take the estimate over
                            `requests_per_period` are refused, and they are not counted
    mitigation_timeout > 0  the first request over the rate starts a penalty: every matching
                            request of that key gets the action until it ends
    counting_expression     decide on the request, count on the response: only responses the
                            expression accepts (e.g. ``http.response.code eq 401``) count

The key is built from the client address the pipeline settled on, so a spoofed
``X-Forwarded-For`` from a client that is not a trusted proxy changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address

from originguard.exchange import Exchange
from originguard.http.messages import Headers, Response
from originguard.protect.challenge import Challenger, challenge_or_pass, client_key
from originguard.protect.rules import NamedLists, RequestView, compile_expression
from originguard.protect.rules.schema import FIELDS, Multimap
from originguard.protect.settings import KEYED_CHARACTERISTIC, BlockResponse, RateLimitRule
from originguard.protect.verdict import (
    RATE_LIMITED,
    SKIP_RATE_LIMITS,
    SecurityEvents,
    Verdict,
    Verdicts,
    blocked,
)
from originguard.state.base import WindowCounter, seconds_until_below

MISSING = "\x00"  # a header, cookie or argument that is absent (not the same as empty)
MAX_PLAIN_KEY = 96  # longer characteristic values are counted under their digest
Characteristic = Callable[[RequestView], str]


def characteristic(spec: str) -> Characteristic | None:
    """The function that reads one characteristic; None for ``cf.colo.id`` (one node)."""
    if spec == "ip.src":
        return client_key
    if spec == "http.host":
        return lambda view: view.host
    if spec == "http.request.uri.path":
        return lambda view: view.path
    if spec == "ip.src.country":
        return lambda view: view.country or MISSING
    if spec == "ip.src.asnum":
        return lambda view: str(view.asnum) if view.asnum is not None else MISSING
    if spec == "cf.colo.id":
        return None
    keyed = KEYED_CHARACTERISTIC.match(spec)
    assert keyed is not None, spec  # validated at load
    get = FIELDS[keyed.group("field")].get
    name = keyed.group("name")

    def read(view: RequestView) -> str:
        mapping: Multimap = get(view)  # type: ignore[assignment]
        values = mapping.get(name)
        return MISSING if values is None else ",".join(values)

    return read


@dataclass(frozen=True, slots=True)
class CompiledLimit:
    name: str
    matches: Callable[[RequestView], bool]
    counts: Callable[[RequestView], bool] | None  # counting expression, on the response
    characteristics: tuple[Characteristic, ...]
    period: float
    limit: int
    timeout: float
    action: str
    response: BlockResponse | None

    def key(self, zone: str, view: RequestView) -> str:
        values = "\x1f".join([read(view) for read in self.characteristics])
        if len(values) > MAX_PLAIN_KEY:
            # A client-chosen header value must not make every counter as large as itself.
            digest = hashlib.blake2b(values.encode("utf-8", "surrogatepass"), digest_size=16)
            values = digest.hexdigest()
        return f"{zone}\x1f{self.name}\x1f{values}"


def compile_limits(rules: Sequence[RateLimitRule], lists: NamedLists) -> tuple[CompiledLimit, ...]:
    compiled = []
    for rule in rules:
        if not rule.enabled:
            continue
        counts = None
        if rule.counting_expression:
            counting = compile_expression(
                rule.counting_expression, lists, allow_response_fields=True
            )
            counts = counting.evaluate
        readers = (characteristic(spec) for spec in rule.characteristics)
        compiled.append(
            CompiledLimit(
                rule.name,
                compile_expression(rule.expression, lists).evaluate,
                counts,
                tuple(read for read in readers if read is not None),
                rule.period,
                rule.requests_per_period,
                rule.mitigation_timeout,
                rule.action,
                rule.response,
            )
        )
    return tuple(compiled)


def is_ipv6(view: RequestView) -> bool:
    return isinstance(view.client_ip, IPv6Address)


class RateLimitFilter:
    """Third security phase (request side) and the counting of `counting_expression` rules
    (response side: a ResponseFilter sees the status and headers)."""

    def __init__(
        self,
        limits: dict[str, tuple[CompiledLimit, ...]],
        counter: WindowCounter,
        challengers: dict[str, Challenger],
        verdicts: Verdicts,
        events: SecurityEvents,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.counter = counter
        self.challengers = challengers
        self.verdicts = verdicts
        self.events = events
        self.clock = clock
        self._pending: set[asyncio.Task[object]] = set()

    def on_request(self, ex: Exchange) -> Response | None | Awaitable[Response | None]:
        zone = ex.zone.name if ex.zone is not None else ""
        limits = self.limits.get(zone)
        if not limits:
            return None
        verdict = self.verdicts.of(ex)
        if SKIP_RATE_LIMITS in verdict.skip:
            return None
        view = verdict.view
        for index, rule in enumerate(limits):
            if rule.matches(view):
                # Counters are shared state: from the first rule that applies on, await them.
                return self._limit(ex, zone, limits, verdict, index)
        return None

    async def _limit(
        self,
        ex: Exchange,
        zone: str,
        limits: Sequence[CompiledLimit],
        verdict: Verdict,
        first: int,
    ) -> Response | None:
        view = verdict.view
        for index, rule in enumerate(limits):
            if index < first or not rule.matches(view):
                continue
            key = rule.key(zone, view)
            now = self.clock()
            retry_after = await self._check(rule, index, key, now, verdict)
            if retry_after is None:
                continue
            if rule.action == "log":
                self.events.record(ex, "rate_limit", rule.name, "log")
                continue
            if rule.action == "block":
                self.events.record(ex, "rate_limit", rule.name, "block")
                verdict.mitigated = True
                ex.reason = f"rate limit {rule.name!r}: block"
                seconds = b"%d" % max(1, math.ceil(retry_after))
                return blocked(ex, 429, RATE_LIMITED, rule.response, [(b"retry-after", seconds)])
            answer = challenge_or_pass(self.challengers, ex, view, rule.action, now)
            if answer is None:
                self.events.record(ex, "rate_limit", rule.name, "challenge_passed")
                continue
            self.events.record(ex, "rate_limit", rule.name, rule.action)
            verdict.mitigated = True
            ex.reason = f"rate limit {rule.name!r}: {rule.action}"
            return answer
        return None

    async def _check(
        self, rule: CompiledLimit, index: int, key: str, now: float, verdict: Verdict
    ) -> float | None:
        """None when the request is within the rate (counted if it counts), else the number
        of seconds after which it would not be."""
        counter = self.counter
        if rule.timeout > 0:
            until = await counter.mitigated_until(key, now)
            if until is not None:
                return until - now
        if rule.counts is not None:
            sample = await counter.sample(key, rule.period, now)
            over = sample.estimate(rule.period, now) + 1 > rule.limit
            if not over:
                verdict.pending_counts.append((index, key))
        elif rule.action == "log":  # a logged request goes through, so it counts
            sample = await counter.add(key, rule.period, now)
            over = sample.estimate(rule.period, now) > rule.limit
        else:
            counted, sample = await counter.add_within(key, rule.period, rule.limit, now)
            over = not counted
        if not over:
            return None
        if rule.timeout > 0:
            await counter.mitigate(key, now + rule.timeout)
            return rule.timeout
        return seconds_until_below(sample, rule.period, rule.limit, now)

    def on_response(self, ex: Exchange, headers: Headers) -> None:
        verdict = self.verdicts.peek(ex)
        if verdict is None or not verdict.pending_counts or verdict.mitigated:
            return
        limits = self.limits[ex.zone.name if ex.zone is not None else ""]
        view = verdict.view.with_response(ex.status, headers)
        now = self.clock()
        for index, key in verdict.pending_counts:
            rule = limits[index]
            assert rule.counts is not None
            if rule.counts(view):
                # Never await in a response filter: the count is a task of its own.
                task: asyncio.Task[object] = asyncio.ensure_future(
                    self.counter.add(key, rule.period, now)
                )
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        verdict.pending_counts.clear()
