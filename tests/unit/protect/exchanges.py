"""Exchanges for security-filter tests: a request head, a client address, a zone; no sockets."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any, TypeVar, cast

from originguard.config import loads
from originguard.exchange import Exchange
from originguard.http.body import Body
from originguard.http.messages import RequestHead
from originguard.observe.metrics import Metrics
from originguard.pipeline import filter_answer
from originguard.protect.guard import Security, build_security

T = TypeVar("T")
_rays = itertools.count(1)


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_exchange(
    path: str = "/",
    *,
    method: str = "GET",
    query: str = "",
    client_ip: str = "203.0.113.7",
    headers: list[tuple[bytes, bytes]] | None = None,
    zone: str = "site",
    body: bytes | None = None,
    scheme: bytes = b"http",
) -> Exchange:
    fields = [(b"host", b"site.test")]
    if not any(name == b"user-agent" for name, _ in headers or []):
        fields.append((b"user-agent", b"Mozilla/5.0 test"))
    fields += headers or []
    request_body = None
    if body is not None:
        request_body = Body(1 << 20, lambda: None, lambda: None)
        request_body.feed(body)
        request_body.finish()
        fields.append((b"content-length", b"%d" % len(body)))
    head = RequestHead(
        method=method.encode(),
        target=(path + ("?" + query if query else "")).encode(),
        path=path.encode(),
        query=query.encode(),
        version=b"1.1",
        headers=fields,
        host=b"site.test",
        content_length=len(body) if body is not None else None,
    )
    conn = cast(Any, SimpleNamespace(scheme=scheme, peer_ip=client_ip))
    ex = Exchange(conn, head, request_body, f"ray{next(_rays):04d}-og1", 0.0)
    ex.client_ip = client_ip
    ex.zone = cast(Any, SimpleNamespace(name=zone))
    return ex


def security_yaml(security: str, lists: str = "") -> str:
    """A whole config whose zone `site` has the `security:` block given (indented 4)."""
    body = "\n".join("      " + line if line else line for line in security.splitlines())
    return (
        "listen: 127.0.0.1:0\n"
        "admin: {listen: 127.0.0.1:0}\n"
        f"{lists}"
        "zones:\n"
        "  - name: site\n"
        "    hostnames: [site.test]\n"
        "    pools: [{name: main, origins: [{address: '127.0.0.1:9'}]}]\n"
        "    security:\n"
        f"{body}\n"
    )


def build(security: str, clock: Clock, lists: str = "") -> tuple[Security, Metrics]:
    metrics = Metrics()
    config = loads(security_yaml(security, lists))
    return build_security(config, metrics, clock=clock), metrics


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def guard(security: Security, ex: Exchange) -> Any:
    """Run the request filters in order; the first answer (or None), then complete."""
    answer = None
    for request_filter in security.request_filters:
        answer = await filter_answer(request_filter.on_request(ex))
        if answer is not None:
            break
    return answer


def finish(security: Security, ex: Exchange, status: int, headers: Any = ()) -> None:
    ex.status = status
    for response_filter in security.response_filters:
        response_filter.on_response(ex, list(headers))
    for observer in security.observers:
        observer.on_complete(ex)


def event_count(metrics: Metrics, phase: str, rule: str, action: str) -> float:
    value = metrics.registry.get_sample_value(
        "og_security_events_total",
        {"zone": "site", "phase": phase, "rule": rule, "action": action},
    )
    return value or 0.0
