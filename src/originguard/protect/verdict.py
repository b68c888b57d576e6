"""What the security filters share about one exchange, and how they answer and report.

    Verdict         the request as rules see it (built once), what earlier phases decided to
                    skip, and the rate-limit counts that wait for the response
    Verdicts        the verdicts of the exchanges in flight, keyed by ray id; an Observer that
                    forgets each one when its exchange completes
    SecurityEvents  one metric increment and one JSON log line per rule match (spec §7.2:
                    every match is counted and logged)
    blocked         the edge's "access denied" (1020) and "rate limited" (1015) pages, or a
                    rule's custom response
"""

from __future__ import annotations

import html
import json
import logging
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Any, Protocol

from originguard.exchange import Exchange
from originguard.http.messages import Headers, Response, header_value
from originguard.http.pages import wants_json
from originguard.protect.rules import RequestView

if TYPE_CHECKING:
    from originguard.observe.metrics import Metrics
    from originguard.protect.settings import BlockResponse

events_log = logging.getLogger("originguard.security")

# Skip targets a verdict may carry (custom rule `skip`, IP access `allow`).
SKIP_RULES = "remaining_rules"
SKIP_RATE_LIMITS = "rate_limits"
SKIP_UNDER_ATTACK = "under_attack"
_UNSPECIFIED = IPv4Address(0)


class GeoLookup(Protocol):
    def lookup(self, address: IPv4Address | IPv6Address) -> tuple[str | None, int | None]: ...


@dataclass(slots=True)
class Verdict:
    view: RequestView
    skip: set[str] = field(default_factory=set)
    # (rule index, counter key) of rate limits counted only once the response is known
    pending_counts: list[tuple[int, str]] = field(default_factory=list)
    mitigated: bool = False  # answered by a security feature: nothing more to count


def request_view(ex: Exchange, geo: GeoLookup | None) -> RequestView:
    """The exchange as rules see it: canonical host and path (rule G6), the client address the
    pipeline decided on (trusted proxies only), and country/ASN when a database is configured."""
    head = ex.head
    try:
        address: IPv4Address | IPv6Address = ip_address(ex.client_ip)
    except ValueError:
        address = _UNSPECIFIED
    country = asnum = None
    if geo is not None:
        country, asnum = geo.lookup(address)
    return RequestView(
        scheme=ex.conn.scheme.decode("latin-1"),
        host=head.host.decode("latin-1"),
        method=head.method.decode("latin-1"),
        path=head.path.decode("latin-1"),
        query=head.query.decode("latin-1"),
        uri=head.uri.decode("latin-1"),
        version="HTTP/" + head.version.decode("latin-1"),
        headers=head.headers,
        client_ip=address,
        country=country,
        asnum=asnum,
    )


class Verdicts:
    """Verdicts of the exchanges in flight; the first security filter creates each one."""

    def __init__(self, geo: dict[str, GeoLookup]) -> None:
        self.geo = geo  # by zone name
        self._by_ray: dict[str, Verdict] = {}

    def __len__(self) -> int:
        return len(self._by_ray)

    def of(self, ex: Exchange) -> Verdict:
        verdict = self._by_ray.get(ex.ray)
        if verdict is None:
            zone = ex.zone.name if ex.zone is not None else ""
            verdict = Verdict(request_view(ex, self.geo.get(zone)))
            self._by_ray[ex.ray] = verdict
        return verdict

    def peek(self, ex: Exchange) -> Verdict | None:
        return self._by_ray.get(ex.ray)

    def on_complete(self, ex: Exchange) -> None:
        self._by_ray.pop(ex.ray, None)


class SecurityEvents:
    """Counts and logs every rule match: ``og_security_events{zone,phase,rule,action}`` and a
    JSON line on the ``originguard.security`` logger."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def record(
        self, ex: Exchange, phase: str, rule: str, action: str, **detail: Any
    ) -> None:
        zone = ex.zone.name if ex.zone is not None else "-"
        self.metrics.security_events.labels(zone, phase, rule, action).inc()
        event = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "event": "security",
            "zone": zone,
            "phase": phase,
            "rule": rule,
            "action": action,
            "ray": ex.ray,
            "client_ip": ex.client_ip,
            "method": ex.head.method.decode("latin-1"),
            "host": ex.head.host.decode("latin-1"),
            "path": ex.head.uri.decode("latin-1"),
            **detail,
        }
        events_log.info("%s", json.dumps(event, separators=(",", ":")))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}}
main{{max-width:42rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}}
h1{{margin:0 0 .25rem;font-size:2rem}} .code{{color:#b3261e}} p{{line-height:1.5}}
footer{{margin-top:2rem;font-size:.8rem;color:#5b6270;border-top:1px solid #e3e5e8;
padding-top:1rem}}
</style></head>
<body><main>
<h1><span class="code">Error {code}</span> {title}</h1>
<p>{detail}</p>
<footer>Ray ID: <code>{ray}</code> &middot; Your IP: {client_ip} &middot; originguard</footer>
</main></body></html>
"""

# Cloudflare's visitor-facing codes: 1020 access denied by a rule, 1015 rate limited.
ACCESS_DENIED = (1020, "Access denied", "The site owner has blocked this request.")
RATE_LIMITED = (
    1015,
    "You are being rate limited",
    "Too many requests from your address in a short time. Try again later.",
)


def blocked(
    ex: Exchange,
    status: int,
    page: tuple[int, str, str],
    custom: BlockResponse | None = None,
    extra: Headers | None = None,
) -> Response:
    """A block answer: the rule's custom response if it has one, else the edge's page (JSON
    for clients that prefer it). Never cached."""
    headers: Headers = [(b"cache-control", b"no-store")]
    headers += extra or []
    if custom is not None and custom.body:
        headers.append((b"content-type", custom.content_type.encode()))
        return Response(custom.status or status, headers, custom.body.encode())
    if custom is not None and custom.status:
        status = custom.status
    code, title, detail = page
    if wants_json(header_value(ex.head.headers, b"accept")):
        document = {
            "status": status,
            "error_code": code,
            "title": title,
            "detail": detail,
            "ray_id": ex.ray,
            "client_ip": ex.client_ip,
        }
        headers.append((b"content-type", b"application/json"))
        return Response(status, headers, json.dumps(document).encode())
    body = _PAGE.format(
        code=code,
        title=html.escape(title),
        detail=html.escape(detail),
        ray=html.escape(ex.ray),
        client_ip=html.escape(ex.client_ip),
    )
    headers.append((b"content-type", b"text/html; charset=utf-8"))
    return Response(status, headers, body.encode())
