"""A request view for rule tests: a GET over https with a few headers, overridable."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from originguard.protect.rules import RequestView


def make_view(
    *,
    path: str = "/index.html",
    query: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    client_ip: str = "203.0.113.7",
    **fields: Any,
) -> RequestView:
    values: dict[str, Any] = {
        "scheme": "https",
        "host": "www.example.com",
        "method": "GET",
        "version": "HTTP/1.1",
        "country": "GB",
        "asnum": 64500,
    }
    values.update(fields)
    return RequestView(
        path=path,
        query=query,
        uri=path + ("?" + query if query else ""),
        headers=headers if headers is not None else [(b"user-agent", b"Mozilla/5.0")],
        client_ip=ip_address(client_ip),
        **values,
    )
