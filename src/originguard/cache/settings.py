"""Cache configuration: the zone's cache defaults and its ordered cache rules (spec §8.6).

Each rule matches requests (path prefixes, extensions, and/or a rules-language expression) and
overrides settings; every matching rule applies in order, the last one winning per setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from originguard.cache.key import FORBIDDEN_HEADERS
from originguard.protect.rules import RuleSyntaxError, compile_expression
from originguard.units import Count, Duration, Size


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CacheMatch(_Section):
    """Which requests a cache rule applies to; every given condition must hold."""

    path_prefix: tuple[str, ...] = Field(
        default=(), description="Path prefixes (case-sensitive), e.g. `/static/`."
    )
    extension: tuple[str, ...] = Field(
        default=(), description="File extensions without the dot, e.g. `html`, `json`."
    )
    expression: str | None = Field(
        default=None,
        description=(
            'A rules-language expression, e.g. `starts_with(http.request.uri.path, "/api")`.'
        ),
    )


class CacheKeySettings(_Section):
    """What the cache key holds beyond scheme, host and path (spec §8.5)."""

    query: Literal["all", "none", "include", "exclude"] = Field(
        default="all", description="Query string in the key: all, none, or a parameter list."
    )
    query_params: tuple[str, ...] = Field(
        default=(), description="Parameters for `include` / `exclude`."
    )
    sort_query: bool = Field(default=False, description="Ignore the order of query parameters.")
    headers: tuple[str, ...] = Field(default=(), description="Request headers whose values key.")
    cookies: tuple[str, ...] = Field(default=(), description="Cookies whose values key.")
    host: bool = Field(default=True, description="Key on the host (off shares across hosts).")
    device_type: bool = Field(default=False, description="Key on mobile / tablet / desktop.")

    @model_validator(mode="after")
    def _allowed_headers(self) -> CacheKeySettings:
        for name in self.headers:
            lowered = name.lower().encode()
            if lowered in FORBIDDEN_HEADERS or lowered.startswith((b"if-", b"cf-")):
                raise ValueError(f"header {name!r} cannot be part of a cache key")
        return self


class StatusTTLSettings(_Section):
    """An edge TTL for a status code or range; 0 = always revalidate, -1 = never store."""

    status: str = Field(description="A code (`404`) or a range (`500-599`).")
    ttl: Duration | Literal[-1] = Field(description="TTL, `0`, or `-1` for no-store.")

    @model_validator(mode="after")
    def _valid_status(self) -> StatusTTLSettings:
        self.bounds  # noqa: B018  (validates)
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        low, _, high = self.status.partition("-")
        for part in (low, high or low):
            if not (len(part) == 3 and part.isascii() and part.isdigit()):
                raise ValueError(f"status must be a code or a range of codes, not {self.status!r}")
        lo, hi = int(low), int(high or low)
        if not 100 <= lo <= hi <= 599:
            raise ValueError(f"status range {self.status!r} is not within 100-599")
        return lo, hi


class CacheRuleSettings(_Section):
    """One cache rule. Unset (null) settings leave the zone default in place."""

    name: str = Field(description="Name shown in logs and errors.")
    when: CacheMatch = Field(default_factory=CacheMatch, description="Requests it applies to.")
    cache: bool | None = Field(
        default=None,
        description="`true`: eligible whatever the extension; `false`: bypass the cache.",
    )
    edge_ttl_mode: Literal["respect_origin", "bypass_by_default", "override_origin"] | None = (
        Field(default=None, description="Whose freshness wins at the edge.")
    )
    edge_ttl: Duration | None = Field(
        default=None, description="TTL when overriding, or when the origin sends none."
    )
    status_ttl: tuple[StatusTTLSettings, ...] = Field(
        default=(), description="Per-status edge TTLs."
    )
    browser_ttl: Duration | None = Field(
        default=None,
        description="Override the max-age clients see (`Cache-Control: max-age=N`).",
    )
    key: CacheKeySettings | None = Field(default=None, description="Custom cache key.")
    serve_stale_while_updating: bool | None = Field(default=None, description="See the zone.")
    respect_strong_etags: bool | None = Field(default=None, description="See the zone.")
    cache_deception_armor: bool | None = Field(default=None, description="See the zone.")


class CacheSettings(_Section):
    """A zone's cache (spec §8): static extensions cached by default, HTML/JSON only by rule."""

    enabled: bool = Field(default=True, description="Use the cache for this zone.")
    level: Literal["aggressive", "basic", "simplified"] = Field(
        default="aggressive",
        description=(
            "`aggressive`: the query string is in the key; `basic`: only requests without a "
            "query string are cached; `simplified`: the query string is ignored."
        ),
    )
    serve_stale_while_updating: bool = Field(
        default=True,
        description="Serve a stale copy (UPDATING) while one background request refreshes it.",
    )
    always_online: bool = Field(
        default=False,
        description=(
            "When every origin fails (52x/5xx), serve any stale copy with a Warning header "
            "instead of the error page."
        ),
    )
    respect_strong_etags: bool = Field(
        default=False, description="Pass strong ETags unchanged (otherwise they are weakened)."
    )
    cache_deception_armor: bool = Field(
        default=False,
        description="Cache a static-extension path only if its Content-Type matches.",
    )
    default_ttls: bool = Field(
        default=True,
        description=(
            "When the origin sends no Cache-Control or Expires, cache 200/206/301 for 2 h, "
            "302/303 for 20 min, 404/410 for 3 min (Cloudflare's defaults). Off: only the "
            "RFC 9111 heuristic (10% of the time since Last-Modified) applies."
        ),
    )
    max_object_size: Size = Field(default=64 * 1024 * 1024, description="Largest cached body.")
    lock_timeout: Duration = Field(
        default=5.0,
        description=(
            "How long concurrent misses for one object wait for the first one's response "
            "before going to the origin themselves."
        ),
    )
    rules: tuple[CacheRuleSettings, ...] = Field(default=(), description="Cache rules, in order.")


class DiskStoreSettings(_Section):
    """The disk tier: bodies in files under `path`, an index that survives restarts."""

    path: str = Field(description="Directory of the disk tier (created if missing).")
    max_size: Size = Field(description="Most bytes of bodies (and index overhead) kept on disk.")
    min_object_size: Size = Field(
        default=1024 * 1024,
        description=(
            "Bodies at least this large live on disk only and stream from it; smaller ones "
            "are kept in memory too."
        ),
    )
    max_object_size: Size = Field(
        default=512 * 1024 * 1024,
        description=(
            "Largest cached body when the disk tier is on (a zone's own `max_object_size`, "
            "when set, applies too)."
        ),
    )


class CacheStoreSettings(_Section):
    """The edge's cache storage, shared by every zone (keys include the host)."""

    memory: Size = Field(default=256 * 1024 * 1024, description="Memory for cached objects.")
    disk: DiskStoreSettings | None = Field(
        default=None,
        description=(
            "Optional disk tier. Off: bodies are held in memory, up to each zone's "
            "`max_object_size` (64MB by default)."
        ),
    )
    max_entries_per_purge: Count = Field(
        default=30, description="Most URLs, prefixes, hosts or tags one purge call may name."
    )


def check_cache_expressions(
    zone_caches: Sequence[CacheSettings], lists: Mapping[str, Sequence[str | int]]
) -> None:
    """Compile every cache rule expression at config load; the first error is raised located
    at the expression, its message the rule name, the expression and a caret."""
    for z, cache in enumerate(zone_caches):
        for r, rule in enumerate(cache.rules):
            text = rule.when.expression
            if text is None:
                continue
            try:
                compile_expression(text, lists)
            except RuleSyntaxError as error:
                at = ("zones", z, "cache", "rules", r, "when", "expression")
                raise PydanticCustomError(
                    "config", "{message}", {"message": error.render(rule.name, text), "at": at}
                ) from None
