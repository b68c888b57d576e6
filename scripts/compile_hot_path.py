"""Compile the hot-path modules (originguard.native.HOT_MODULES) with mypyc, in place.

    .venv/bin/python scripts/compile_hot_path.py            # build if any is missing or stale
    .venv/bin/python scripts/compile_hot_path.py --remove   # back to interpreted sources

Needs a C compiler and the Python headers. If the build fails, no compiled module is left
behind (a partial set would mix old and new code) and the edge runs interpreted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from originguard.native import HOT_MODULES, SOURCE_ROOT, built_extensions, source_path


def remove_built() -> None:
    for module in HOT_MODULES:
        for built in built_extensions(module):
            built.unlink()
    for shared in SOURCE_ROOT.glob("*__mypyc*"):  # the library the group's modules share
        shared.unlink()


def up_to_date() -> bool:
    for module in HOT_MODULES:
        built = built_extensions(module)
        if len(built) != 1 or built[0].stat().st_mtime < source_path(module).stat().st_mtime:
            return False
    return True


def main(argv: list[str]) -> int:
    if "--remove" in argv:
        remove_built()
        print("hot path: interpreted (compiled modules removed)")
        return 0
    if up_to_date():
        print(f"hot path: compiled, up to date ({len(HOT_MODULES)} modules)")
        return 0
    remove_built()
    sources = [str(source_path(module).relative_to(SOURCE_ROOT)) for module in HOT_MODULES]
    print(f"hot path: compiling {len(sources)} modules with mypyc (about a minute)")
    started = time.time()
    # From the source root, so each extension lands next to its module (build/ is ignored).
    result = subprocess.run(
        [sys.executable, "-m", "mypyc", *sources],
        cwd=SOURCE_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if result.returncode == 0:
        # A module's small shim keeps its old build time when only the shared library changed
        # (setuptools copies it with its times), so date the whole set to the build's start:
        # a source edited while mypyc ran is then newer than its compiled module.
        for module in HOT_MODULES:
            for built in built_extensions(module):
                os.utime(built, (started, started))
    if result.returncode == 0 and not up_to_date():
        remove_built()
        print("hot path: a source changed while compiling; run it again", file=sys.stderr)
        return 1
    if result.returncode != 0:
        remove_built()
        print(result.stdout[-4000:], file=sys.stderr)
        print("hot path: mypyc build failed; the edge runs interpreted", file=sys.stderr)
        return 1
    print(f"hot path: compiled ({len(HOT_MODULES)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
