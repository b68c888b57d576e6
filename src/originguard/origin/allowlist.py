"""Firewall and web-server rules that let only the edge's egress addresses reach the origins
(spec §1.2, network layer). Pure: networks and ports in, rule text out."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CAVEAT = (
    "An IP allowlist alone is not enough: anyone who can send from the same provider's "
    "addresses (a shared NAT, a reassigned cloud IP, another tenant of the same edge) passes "
    "it, and it does nothing against spoofed or hijacked routes. Pair it with authenticated "
    "origin pulls (`originguard origin certs init`) or the origin_auth secret header."
)


def render(fmt: str, networks: Sequence[Network], ports: Sequence[int]) -> str:
    """Rules for `fmt` allowing `networks` to `ports` and refusing everyone else there."""
    v4 = [str(n) for n in networks if n.version == 4]
    v6 = [str(n) for n in networks if n.version == 6]
    return _RENDERERS[fmt](v4, v6, sorted(set(ports)))


def _comment(prefix: str) -> str:
    words, lines, line = CAVEAT.split(), [], ""
    for word in words:
        if len(line) + len(word) > 90:
            lines.append(line.rstrip())
            line = ""
        line += word + " "
    lines.append(line.rstrip())
    header = [f"{prefix} originguard: only the edge's egress addresses may reach the origin."]
    return "\n".join(header + [f"{prefix} {text}" for text in lines]) + "\n"


def _nftables(v4: list[str], v6: list[str], ports: list[int]) -> str:
    dports = "{ " + ", ".join(str(p) for p in ports) + " }"
    out = [_comment("#"), "table inet originguard {"]
    for name, kind, sources in (("edge4", "ipv4_addr", v4), ("edge6", "ipv6_addr", v6)):
        if sources:
            elements = ", ".join(sources)
            out.append(
                f"  set {name} {{ type {kind}; flags interval; elements = {{ {elements} }} }}"
            )
    out += ["  chain input {", "    type filter hook input priority 0; policy accept;"]
    if v4:
        out.append(f"    tcp dport {dports} ip saddr @edge4 accept")
    if v6:
        out.append(f"    tcp dport {dports} ip6 saddr @edge6 accept")
    out += [f"    tcp dport {dports} drop", "  }", "}"]
    return "\n".join(out) + "\n"


def _iptables(v4: list[str], v6: list[str], ports: list[int]) -> str:
    dports = ",".join(str(p) for p in ports)
    out = [_comment("#").rstrip("\n"), "# Re-runnable: the chain is flushed and refilled.", ""]
    for tool, sources in (("iptables", v4), ("ip6tables", v6)):
        chain = "originguard-edge"
        out += [
            f"{tool} -N {chain} 2>/dev/null || {tool} -F {chain}",
            *(f"{tool} -A {chain} -s {source} -j ACCEPT" for source in sources),
            f"{tool} -A {chain} -j DROP",
            f"{tool} -C INPUT -p tcp -m multiport --dports {dports} -j {chain} 2>/dev/null"
            f" || {tool} -I INPUT -p tcp -m multiport --dports {dports} -j {chain}",
            "",
        ]
    return "\n".join(out)


def _ufw(v4: list[str], v6: list[str], ports: list[int]) -> str:
    port_list = ",".join(str(p) for p in ports)
    out = [_comment("#").rstrip("\n"), "# Remove any broader rule first (`ufw status numbered`)."]
    out += [f"ufw allow proto tcp from {source} to any port {port_list}" for source in v4 + v6]
    out.append(f"ufw deny proto tcp from any to any port {port_list}")
    return "\n".join(out) + "\n"


def _nginx(v4: list[str], v6: list[str], ports: list[int]) -> str:
    out = [_comment("#").rstrip("\n"), "# In the http {} or each server {} block of the origin:"]
    out += [f"allow {source};" for source in v4 + v6]
    out.append("deny all;")
    return "\n".join(out) + "\n"


def _apache(v4: list[str], v6: list[str], ports: list[int]) -> str:
    sources = " ".join(v4 + v6)
    out = [
        _comment("#").rstrip("\n"),
        "# In each <VirtualHost> of the origin (Apache 2.4, mod_authz_host):",
        '<Location "/">',
        f"    Require ip {sources}",
        "</Location>",
    ]
    return "\n".join(out) + "\n"


def _caddy(v4: list[str], v6: list[str], ports: list[int]) -> str:
    sources = " ".join(v4 + v6)
    out = [
        _comment("#").rstrip("\n"),
        "# In each site block of the origin; remote_ip is the TCP peer, not a header:",
        f"@not_originguard not remote_ip {sources}",
        "abort @not_originguard",
    ]
    return "\n".join(out) + "\n"


def _haproxy(v4: list[str], v6: list[str], ports: list[int]) -> str:
    sources = " ".join(v4 + v6)
    out = [
        _comment("#").rstrip("\n"),
        "# In each frontend that receives the edge's traffic:",
        f"acl from_originguard src {sources}",
        "tcp-request connection reject unless from_originguard",
    ]
    return "\n".join(out) + "\n"


_RENDERERS: dict[str, Callable[[list[str], list[str], list[int]], str]] = {
    "nftables": _nftables,
    "iptables": _iptables,
    "ufw": _ufw,
    "nginx": _nginx,
    "apache": _apache,
    "caddy": _caddy,
    "haproxy": _haproxy,
}
FORMATS = tuple(_RENDERERS)
