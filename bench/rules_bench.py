"""Cost of the rules engine per request: 200 compiled custom rules, then the whole security
guard (IP access, 200 custom rules, 5 rate limits) on a realistic request that no rule stops,
so every rule is evaluated. Prints microseconds per request; the rule set alone is measured
both as the generated function the edge runs and as one closure per rule (the reference).

    .venv/bin/python bench/rules_bench.py [requests]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from ipaddress import ip_address
from types import SimpleNamespace
from typing import Any, cast

from originguard.config import loads
from originguard.exchange import Exchange
from originguard.http.messages import RequestHead
from originguard.observe.metrics import Metrics
from originguard.protect.firewall import compile_rules
from originguard.protect.guard import build_security
from originguard.protect.rules import RequestView

TEMPLATES = [
    'http.request.uri.path eq "/admin/{i}"',
    'starts_with(http.request.uri.path, "/wp-{i}") and http.request.method eq "POST"',
    'http.user_agent contains "scanner-{i}"',
    'lower(http.request.uri.query) contains "union select {i}"',
    'ip.src in {{198.51.{i}.0/24 203.0.{i}.0/24}}',
    'http.request.uri.path matches "^/api/v{i}/[a-z]+/export$"',
    'any(http.request.headers["x-debug"][*] eq "{i}")',
    'http.host eq "staging{i}.example.com" and not ip.src in $office',
    'http.request.uri.path wildcard "/private/{i}/*"',
    'http.cookie contains "session=bad{i}" or http.referer contains "spam{i}.example"',
]  # fmt: skip


def security_yaml(rule_count: int, rate_limits: int) -> str:
    lines = ["    security:", "      ip_access:"]
    lines += [f"        - {{target: ip, value: 192.0.2.{i}, mode: block}}" for i in range(1, 50)]
    if rule_count:
        lines.append("      rules:")
    for i in range(rule_count):
        expression = TEMPLATES[i % len(TEMPLATES)].format(i=i % 250)
        lines.append(f"        - name: rule {i}")
        lines.append(f"          expression: '{expression}'")
        lines.append("          action: block")
    if rate_limits:
        lines.append("      rate_limits:")
    for i in range(rate_limits):
        lines.append(f"        - name: limit {i}")
        lines.append(f"          expression: 'starts_with(http.request.uri.path, \"/s{i}\")'")
        lines.append("          period: 60s")
        lines.append("          requests_per_period: 1000000000")
    return (
        "admin: {listen: 127.0.0.1:0}\nlists:\n  office: [192.0.2.0/24]\nzones:\n"
        "  - name: site\n    hostnames: [www.example.com]\n"
        "    pools: [{name: main, origins: [{address: '127.0.0.1:9'}]}]\n" + "\n".join(lines) + "\n"
    )


HEADERS = [
    (b"host", b"www.example.com"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126 Safari/537.36"),
    (b"accept", b"text/html,application/xhtml+xml"),
    (b"accept-language", b"en-GB,en;q=0.9"),
    (b"cookie", b"session=abc123; theme=dark; _ga=GA1.2.3"),
    (b"referer", b"https://www.example.com/shop"),
]  # fmt: skip


def view() -> RequestView:
    return RequestView(
        "https", "www.example.com", "GET", "/s9/products/42", "page=2&sort=price",
        "/s9/products/42?page=2&sort=price", "HTTP/1.1", HEADERS, ip_address("203.0.113.9"),
    )  # fmt: skip


def exchange(n: int) -> Exchange:
    head = RequestHead(b"GET", b"/s1/products/42?page=2", b"/s1/products/42", b"page=2", b"1.1",
                       HEADERS, b"www.example.com")  # fmt: skip
    ex = Exchange(cast(Any, SimpleNamespace(scheme=b"https")), head, None, f"{n:016x}-b", 0.0)
    ex.client_ip = "203.0.113.9"
    ex.zone = cast(Any, SimpleNamespace(name="site"))
    return ex


def bench_rules(config_rules: int, requests: int) -> tuple[float, float]:
    """(generated function, one closure per rule): microseconds per request."""
    config = loads(security_yaml(config_rules, 0))
    rules = compile_rules(config.zones[0].security.rules, config.lists)
    first_match = rules.program.first_match

    def generated() -> None:
        v = view()  # a fresh view per request: nothing memoised across requests
        if first_match(v, 0) >= 0:
            raise AssertionError("matched")

    def closures() -> None:
        v = view()
        for rule in rules.rules:
            if rule.matches(v):
                raise AssertionError(rule.name)

    return best(generated, requests), best(closures, requests)


def best(run: Callable[[], None], requests: int, rounds: int = 5) -> float:
    """Microseconds per call: the best of a few rounds (the host may be busy)."""
    per_round = max(1, requests // rounds)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(per_round):
            run()
        times.append((time.perf_counter() - started) / per_round * 1e6)
    return min(times)


def bench_guard(config_rules: int, rate_limits: int, requests: int) -> float:
    config = loads(security_yaml(config_rules, rate_limits))
    security = build_security(config, Metrics())

    async def run() -> float:
        started = time.perf_counter()
        for n in range(requests):
            ex = exchange(n)
            for request_filter in security.request_filters:
                if await request_filter.on_request(ex) is not None:
                    raise AssertionError("answered")
            for observer in security.observers:
                observer.on_complete(ex)
        return (time.perf_counter() - started) / requests * 1e6

    return asyncio.run(run())


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(f"{'what':<58}{'us/request':>12}")
    for count in (20, 200):
        generated, closures = bench_rules(count, requests)
        print(f"{f'{count} rules, all evaluated: one generated function':<58}{generated:>12.1f}")
        print(f"{f'{count} rules, all evaluated: a closure per rule':<58}{closures:>12.1f}")
    for count, limits in ((0, 5), (20, 5), (200, 5)):
        what = f"whole guard: 49 IP rules, {count} custom rules, {limits} rate limits"
        print(f"{what:<58}{bench_guard(count, limits, requests):>12.1f}")


if __name__ == "__main__":
    main()
