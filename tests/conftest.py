"""Makes `tests/support` importable as `support` whatever pytest's import mode, and refuses to
test compiled hot-path modules older than their sources (they would run old code; native.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from originguard.native import stale_extensions

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


def pytest_configure(config: pytest.Config) -> None:
    stale = stale_extensions()
    if stale:
        names = ", ".join(path.name for path in stale[:3])
        pytest.exit(
            f"compiled modules older than their sources ({names}, ...): "
            "run `make native` to rebuild them or `make pure` to remove them",
            returncode=4,
        )
