"""Findings rendered for people (a table), for scripts (JSON) and for CI code scanning (SARIF).

Exit codes (the CLI's contract): 0 nothing to act on (no findings, or info only), 1 findings,
2 the audit could not run (bad input).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import Any

from originguard.dns.audit import RULES, SEVERITY_ORDER, Finding, Severity, has_problems

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning orders alerts by this property (0.0-10.0).
SECURITY_SEVERITY = {Severity.HIGH: "8.0", Severity.MEDIUM: "5.0", Severity.LOW: "2.0"}


def exit_code(findings: Sequence[Finding]) -> int:
    return EXIT_FINDINGS if has_problems(findings) else EXIT_CLEAN


def render(findings: Sequence[Finding], fmt: str, source: str = "dns") -> str:
    """``fmt`` is ``table``, ``json`` or ``sarif``; ``source`` names the audited input."""
    if fmt == "json":
        return render_json(findings)
    if fmt == "sarif":
        return json.dumps(render_sarif(findings, source), indent=2) + "\n"
    return render_table(findings)


def render_table(findings: Sequence[Finding], width: int = 100) -> str:
    if not findings:
        return "No origin leaks found.\n"
    rows = [
        (f.severity.value.upper(), f.rule, f"{f.record.name} {f.record.type}", f.record.value)
        for f in findings
    ]
    head = ("SEVERITY", "RULE", "RECORD", "VALUE")
    sizes = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    lines = ["  ".join(h.ljust(s) for h, s in zip(head, sizes, strict=False)) + "  " + head[3]]
    indent = " " * 4
    for finding, row in zip(findings, rows, strict=True):
        value = row[3] if len(row[3]) <= 60 else row[3][:57] + "..."
        lines.append("  ".join(c.ljust(s) for c, s in zip(row, sizes, strict=False)) + "  " + value)
        lines += textwrap.wrap(
            "why: " + finding.why, width, initial_indent=indent, subsequent_indent=indent + "     "
        )
        lines += textwrap.wrap(
            "fix: " + finding.fix, width, initial_indent=indent, subsequent_indent=indent + "     "
        )
    counts = {s: sum(f.severity is s for f in findings) for s in Severity}
    summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    lines.append(f"\n{len(findings)} finding(s): {summary}")
    return "\n".join(lines) + "\n"


def render_json(findings: Sequence[Finding]) -> str:
    items = [
        {
            "severity": f.severity.value,
            "rule": f.rule,
            "record": {"name": f.record.name, "type": f.record.type, "value": f.record.value},
            "address": f.address,
            "why": f.why,
            "fix": f.fix,
        }
        for f in findings
    ]
    return json.dumps({"findings": items, "count": len(items)}, indent=2) + "\n"


def render_sarif(findings: Sequence[Finding], source: str) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run; each finding is a result at the audited file (or the
    DNS names, in live mode) with the record as a logical location."""
    used = sorted({f.rule for f in findings})
    index = {rule: i for i, rule in enumerate(used)}
    rules = [
        {
            "id": rule,
            "name": "".join(part.title() for part in rule.split("-")),
            "shortDescription": {"text": RULES.get(rule, rule)},
            "helpUri": "docs/dns-audit.md",
            "properties": _rule_properties([f for f in findings if f.rule == rule]),
        }
        for rule in used
    ]
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.why} Fix: {f.fix}"},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": source}},
                    "logicalLocations": [
                        {
                            "name": f"{f.record.name} {f.record.type}",
                            "fullyQualifiedName": f"{f.record.name} {f.record.type} "
                            f"{f.record.value}",
                            "kind": "resource",
                        }
                    ],
                }
            ],
            "partialFingerprints": {
                "recordIdentity/v1": f"{f.rule}|{f.record.name}|{f.record.type}|{f.address or ''}"
            },
            "properties": {"severity": f.severity.value, "address": f.address},
        }
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "originguard-dns-audit",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def _rule_properties(findings: Sequence[Finding]) -> dict[str, str]:
    # GitHub code scanning ranks security alerts by the rule's "security-severity".
    worst = min(findings, key=lambda f: SEVERITY_ORDER[f.severity]).severity
    score = SECURITY_SEVERITY.get(worst)
    return {"security-severity": score} if score else {}
