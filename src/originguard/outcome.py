"""Named results of every exchange (the edge's "response flags")."""

from __future__ import annotations

from enum import Enum, StrEnum


class Outcome(StrEnum):
    """How an exchange ended; one per request, in the access log and metrics."""

    PROXIED = "proxied"                  # origin answered, response delivered
    RETRIED = "retried"                  # origin answered after one zero-downtime failover retry
    EDGE_ERROR = "edge_error"            # every try failed: the edge answered 52x
    NO_ZONE = "no_zone"                  # Host matched no zone
    NO_ORIGIN = "no_origin"              # the zone has no usable origin
    BAD_REQUEST = "bad_request"          # malformed request answered locally (4xx/5xx)
    CLIENT_ABORT = "client_abort"        # the client went away before the response finished
    ORIGIN_ABORT = "origin_abort"        # the origin broke off mid-body after the head went out
    LOCAL = "local"                      # answered by an edge feature (rule, room, redirect)
    CACHED = "cached"                    # answered from the cache
    QUEUED = "queued"                    # a waiting room answered with its queue page or JSON


class OriginError(int, Enum):
    """Edge-generated origin failure codes (Cloudflare's 52x family, spec §2.2)."""

    UNKNOWN = 520          # empty, malformed or reset response
    REFUSED = 521          # TCP connection refused
    CONNECT_TIMEOUT = 522  # no TCP connection within the connect timeout
    UNREACHABLE = 523      # no route, or the origin name does not resolve
    TIMEOUT = 524          # connected, request sent, no response head in time
    TLS_HANDSHAKE = 525    # TLS to the origin failed before any request byte was sent
    TLS_INVALID_CERT = 526  # strict mode: the origin's certificate did not verify
    NO_ORIGIN = 530        # no usable pool or origin for the zone

    @property
    def kind(self) -> str:
        return _KINDS[self]


_KINDS = {
    OriginError.UNKNOWN: "invalid_response",
    OriginError.REFUSED: "refused",
    OriginError.CONNECT_TIMEOUT: "connect_timeout",
    OriginError.UNREACHABLE: "unreachable",
    OriginError.TIMEOUT: "response_timeout",
    OriginError.TLS_HANDSHAKE: "tls_handshake_failed",
    OriginError.TLS_INVALID_CERT: "tls_invalid_certificate",
    OriginError.NO_ORIGIN: "no_origin",
}
