"""Which compiled hot-path modules are stale (older than their source) or in use."""

from __future__ import annotations

import importlib.machinery
import os
import sys
import types
from pathlib import Path

import pytest

from originguard import native

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(native, "SOURCE_ROOT", tmp_path)
    monkeypatch.setattr(native, "HOT_MODULES", ("originguard.pipeline", "originguard.http.wire"))
    (tmp_path / "originguard" / "http").mkdir(parents=True)
    for module in native.HOT_MODULES:
        native.source_path(module).write_text("")
    return tmp_path


def build(module: str, age: float) -> Path:
    """A compiled file for `module`, `age` seconds older than its source."""
    source = native.source_path(module)
    built = source.with_name(source.stem + SUFFIX)
    built.write_bytes(b"")
    mtime = source.stat().st_mtime - age
    os.utime(built, (mtime, mtime))
    return built


def test_no_compiled_files_is_never_stale(tree: Path) -> None:
    assert native.stale_extensions() == []
    assert native.built_extensions("originguard.pipeline") == []


def test_a_compiled_file_older_than_its_source_is_stale(tree: Path) -> None:
    fresh = build("originguard.pipeline", age=-10)
    old = build("originguard.http.wire", age=10)
    assert native.built_extensions("originguard.pipeline") == [fresh]
    assert native.stale_extensions() == [old]


def test_compiled_in_use_names_the_hot_modules_loaded_from_extensions(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled, interpreted = types.ModuleType("pipeline"), types.ModuleType("wire")
    compiled.__file__ = "/x/originguard/pipeline" + SUFFIX
    interpreted.__file__ = "/x/originguard/http/wire.py"
    monkeypatch.setitem(sys.modules, "originguard.pipeline", compiled)
    monkeypatch.setitem(sys.modules, "originguard.http.wire", interpreted)
    assert native.compiled_in_use() == ["originguard.pipeline"]
