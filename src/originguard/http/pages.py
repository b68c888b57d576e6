"""Pages the edge answers with itself: origin errors (52x/530) and refused requests (4xx)."""

from __future__ import annotations

import html
import json
import time

from originguard.http.messages import Headers, Response
from originguard.http.wire import reason_phrase

# status -> (what it means for a visitor, what the site owner should check); spec §2.2.
_EXPLANATIONS: dict[int, tuple[str, str]] = {
    400: ("The request could not be understood by the edge.", "A client sent a malformed request."),
    404: ("The page was not found.", "Check the URL."),
    405: ("This method is not allowed here.", "Check the request method."),
    408: ("The request took too long to arrive.", "A client was too slow to send its request."),
    413: ("The request body is too large.", "Raise limits.max_body_size if this is expected."),
    414: ("The request address is too long.", "Raise limits.max_url_size if this is expected."),
    417: ("The request's Expect header is not supported.", "Only 100-continue is supported."),
    421: (
        "This site is not served here.",
        "The Host header names no zone of this edge: add the hostname to a zone's hostnames.",
    ),
    431: ("The request headers are too large.", "Raise limits.max_head_size if this is expected."),
    501: ("This kind of request is not supported.", "The edge does not tunnel or upgrade."),
    502: ("The origin sent an invalid response.", "Check the origin server's logs."),
    503: ("The service is temporarily unavailable.", "Try again shortly."),
    505: ("This HTTP version is not supported.", "Use HTTP/1.1 or HTTP/1.0."),
    520: (
        "The web server returned an unknown error.",
        "The origin closed the connection or sent an empty or malformed response. "
        "Check the origin's error logs and that it allows the edge's addresses.",
    ),
    521: (
        "The web server is down.",
        "The origin refused the connection: the server is not running or not listening on "
        "the configured port, or a firewall rejects the edge's addresses.",
    ),
    522: (
        "The connection to the web server timed out.",
        "The origin did not complete the TCP handshake in time: it is overloaded, offline, "
        "or a firewall silently drops the edge's packets.",
    ),
    523: (
        "The web server is unreachable.",
        "There is no route to the origin address, or the origin hostname does not resolve. "
        "Check the origin address in the configuration and its DNS.",
    ),
    524: (
        "A timeout occurred.",
        "The origin accepted the request but sent no response in time. "
        "Look for slow requests on the origin or raise timeouts.response_head.",
    ),
    525: (
        "The secure connection to the web server failed.",
        "The TLS handshake between the edge and the origin failed: the origin does not speak "
        "TLS on this port, offers no common protocol version or cipher, or rejected the "
        "edge's client certificate. Check the pool's tls settings and the origin's TLS setup.",
    ),
    526: (
        "The web server's certificate is invalid.",
        "In strict mode the origin's certificate must be valid: not expired, issued by a CA "
        "in the pool's ca_bundle (or the system store), and naming the pool's SNI host.",
    ),
    530: (
        "No origin is available for this site.",
        "Every pool of this zone is disabled or has no enabled origin.",
    ),
}

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}}
main{{max-width:42rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}}
h1{{margin:0 0 .25rem;font-size:2rem}} .code{{color:#b3261e}}
h2{{font-size:1rem;margin:1.5rem 0 .25rem}} p{{line-height:1.5;margin:.25rem 0}}
footer{{margin-top:2rem;font-size:.8rem;color:#5b6270;border-top:1px solid #e3e5e8;
padding-top:1rem}}
</style></head>
<body><main>
<h1><span class="code">Error {status}</span> {title}</h1>
<h2>What happened?</h2><p>{visitor}</p>
<h2>For the site owner</h2><p>{owner}</p>
<footer>Ray ID: <code>{ray}</code> &middot; {when} &middot; Your IP: {client_ip}
&middot; originguard</footer>
</main></body></html>
"""


def error_page(status: int, ray: str, client_ip: str, wants_json: bool) -> Response:
    """The edge's own page for `status`; never names internal addresses or tracebacks."""
    title = reason_phrase(status).decode()
    visitor, owner = _EXPLANATIONS.get(status, ("The request could not be completed.", ""))
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    headers: Headers = [(b"cache-control", b"no-store")]
    if status >= 520:
        headers.append((b"og-error-type", b"52x" if status < 530 else b"530"))
    if wants_json:
        document = {
            "status": status,
            "title": title,
            "detail": visitor,
            "owner_action": owner,
            "ray_id": ray,
            "time": when,
            "client_ip": client_ip,
        }
        headers.append((b"content-type", b"application/json"))
        return Response(status, headers, json.dumps(document).encode())
    page = _PAGE.format(
        status=status,
        title=html.escape(title),
        visitor=html.escape(visitor),
        owner=html.escape(owner),
        ray=html.escape(ray),
        when=when,
        client_ip=html.escape(client_ip),
    )
    headers.append((b"content-type", b"text/html; charset=utf-8"))
    return Response(status, headers, page.encode())


def wants_json(accept: bytes | None) -> bool:
    """Answer JSON when the client prefers it over HTML."""
    if not accept:
        return False
    accept = accept.lower()
    return b"application/json" in accept and b"text/html" not in accept
