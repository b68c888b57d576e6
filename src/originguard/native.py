"""The hot-path modules `make` compiles with mypyc, and whether the running ones are compiled.

mypyc turns these (already strictly typed) modules into C extensions that sit next to their
sources; Python imports an extension before a .py of the same name. Measured with
bench/pipeline_bench.py: a proxied request 26.8 → 14.4 µs, a cache HIT 12.0 → 7.9 µs. Without a
C compiler the same sources run interpreted. `scripts/compile_hot_path.py` builds them.

Left interpreted on purpose: `exchange` (unit tests build exchanges around duck-typed fakes,
which compiled attribute types would reject) and `upstream.pool` (bench/pipeline_bench.py
replaces its `connect`, which a compiled caller would not see).
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

HOT_MODULES = (
    "originguard.pipeline",
    "originguard.relay",
    "originguard.routing",
    "originguard.outcome",
    "originguard.http.server",
    "originguard.http.wire",
    "originguard.http.messages",
    "originguard.http.body",
    "originguard.upstream.connection",
    "originguard.upstream.balancer",
    "originguard.upstream.request",
    "originguard.cache.layer",
    "originguard.cache.store",
    "originguard.cache.control",
    "originguard.cache.policy",
    "originguard.cache.key",
    "originguard.cache.vary",
    "originguard.cache.conditional",
    "originguard.cache.ranges",
    "originguard.cache.collapse",
    "originguard.observe.access_log",
)

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding `originguard/`


def source_path(module: str) -> Path:
    return SOURCE_ROOT.joinpath(*module.split(".")).with_suffix(".py")


def built_extensions(module: str) -> list[Path]:
    """The compiled files next to a module's source (normally none or one)."""
    source = source_path(module)
    return [
        source.with_name(source.stem + suffix)
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if source.with_name(source.stem + suffix).exists()
    ]


def stale_extensions() -> list[Path]:
    """Compiled modules older than their source: they would run code that is no longer there."""
    stale = []
    for module in HOT_MODULES:
        source = source_path(module)
        for built in built_extensions(module):
            if not source.exists() or built.stat().st_mtime < source.stat().st_mtime:
                stale.append(built)
    return stale


def compiled_in_use() -> list[str]:
    """The hot modules this process loaded as compiled extensions."""
    return [
        name
        for name in HOT_MODULES
        if (module := sys.modules.get(name)) is not None
        and not str(getattr(module, "__file__", "")).endswith(".py")
    ]
