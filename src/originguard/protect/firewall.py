"""Custom rules (spec §7.2): an ordered list of {name, expression, action}.

Rules run in order. `block`, and a challenge the visitor has not already passed, terminate;
`log` and `skip` do not (spec §0: "Skip is not terminating"). `skip` adds what the request
skips to its verdict: `remaining_rules` stops this phase, `rate_limits` and `under_attack`
are read by the later phases. Every match is an event (metric + JSON log line); a `skip` rule
with `logging: false` is the one exception, as in Cloudflare.

A zone's rules are compiled into one generated function (``rules.program``): the filter asks
it for the first matching rule, handles it, and resumes after it when the action does not
stop evaluation. ``CompiledRule.matches`` (the closure) gives the same answers, rule by rule.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from originguard.exchange import Exchange
from originguard.http.messages import Response
from originguard.protect.challenge import Challenger, challenge_or_pass
from originguard.protect.rules import NamedLists, RequestView, compile_expression
from originguard.protect.rules.program import RuleProgram, compile_rule_set
from originguard.protect.settings import BlockResponse, CustomRule
from originguard.protect.verdict import (
    ACCESS_DENIED,
    SKIP_RULES,
    SecurityEvents,
    Verdicts,
    blocked,
)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    action: str
    matches: Callable[[RequestView], bool]
    response: BlockResponse | None = None
    skip: frozenset[str] = frozenset()
    logging: bool = True


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """A zone's enabled rules in order, and the one function that evaluates them all."""

    rules: tuple[CompiledRule, ...]
    program: RuleProgram

    def __len__(self) -> int:
        return len(self.rules)


def compile_rules(rules: Sequence[CustomRule], lists: NamedLists) -> CompiledRules:
    """The enabled rules, compiled (the config loader has already reported any error)."""
    enabled = [rule for rule in rules if rule.enabled]
    compiled = tuple(
        CompiledRule(
            rule.name,
            rule.action,
            compile_expression(rule.expression, lists).evaluate,
            rule.response,
            frozenset(rule.skip),
            rule.logging,
        )
        for rule in enabled
    )
    # Evaluation resumes after any rule that may not stop it (log, skip, a passed challenge).
    resume = [i + 1 for i, rule in enumerate(enabled) if rule.action != "block"]
    program = compile_rule_set([rule.expression for rule in enabled], lists, entries=resume)
    return CompiledRules(compiled, program)


def first_terminating(rules: Sequence[CompiledRule], view: RequestView) -> CompiledRule | None:
    """The first matching rule that is not `log` (the benchmark's and tests' pure core)."""
    for rule in rules:
        if rule.action != "log" and rule.matches(view):
            return rule
    return None


class CustomRuleFilter:
    """Second security phase: custom rules, after IP access and before rate limits."""

    def __init__(
        self,
        rules: dict[str, CompiledRules],
        challengers: dict[str, Challenger],
        verdicts: Verdicts,
        events: SecurityEvents,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self.challengers = challengers
        self.verdicts = verdicts
        self.events = events
        self.clock = clock

    def on_request(self, ex: Exchange) -> Response | None:
        rules = self.rules.get(ex.zone.name if ex.zone is not None else "")
        if not rules:
            return None
        verdict = self.verdicts.of(ex)
        if SKIP_RULES in verdict.skip:
            return None
        view = verdict.view
        first_match = rules.program.first_match
        index = first_match(view, 0)
        while index >= 0:
            rule = rules.rules[index]
            action = rule.action
            if action == "log":
                self.events.record(ex, "custom", rule.name, "log")
            elif action == "skip":
                if rule.logging:
                    self.events.record(ex, "custom", rule.name, "skip", skip=sorted(rule.skip))
                verdict.skip |= rule.skip
                if SKIP_RULES in rule.skip:
                    return None
            elif action == "block":
                self.events.record(ex, "custom", rule.name, "block")
                verdict.mitigated = True
                ex.reason = f"custom rule {rule.name!r}: block"
                return blocked(ex, 403, ACCESS_DENIED, rule.response)
            else:
                answer = challenge_or_pass(self.challengers, ex, view, action, self.clock())
                if answer is not None:
                    self.events.record(ex, "custom", rule.name, action)
                    verdict.mitigated = True
                    ex.reason = f"custom rule {rule.name!r}: {action}"
                    return answer
                self.events.record(ex, "custom", rule.name, "challenge_passed")
            index = first_match(view, index + 1)
        return None
