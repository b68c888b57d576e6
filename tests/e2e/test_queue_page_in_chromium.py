"""The default queue page in a real browser (headless Chromium): it renders, without JavaScript.

The edge runs with a one-seat room; the test takes the seat, then Chromium (a new visitor, no
cookie) loads the page and dumps the rendered DOM and a screenshot. Skipped when no Chromium.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.edge import Edge, site_config
from support.origin import Origin

pytestmark = pytest.mark.integration  # a real edge, origin and browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY_ENV = {"OG_ROOM_KEY": "e2e-test-room-key-0123456789"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    origin = Origin("a").start()
    room = {
        "name": "shop",
        "host": "site.test",
        "total_active_users": 1,
        "new_users_per_minute": 1,
    }
    section = {"keys": [{"id": "k1", "secret": "${OG_ROOM_KEY}"}], "rooms": [room]}
    config = site_config(origin.address, zone={"waiting_room": section})
    edge = Edge(config, tmp_path, env=KEY_ENV).start()
    try:
        yield edge
    finally:
        assert edge.stop() == 0
        origin.stop()


def chromium(*args: str, port: int, workdir: Path) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            f"--user-data-dir={workdir / 'profile'}",
            "--host-resolver-rules=MAP site.test 127.0.0.1",
            "--window-size=1000,700",
            *args,
            f"http://site.test:{port}/",
        ],
        capture_output=True,
        timeout=60,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_default_queue_page_renders_in_chromium(edge: Edge, tmp_path: Path) -> None:
    assert edge.get("/").header("x-origin") == "a"  # the only seat is taken

    dom = chromium("--dump-dom", port=edge.port, workdir=tmp_path)
    shot = tmp_path / "queue.png"
    chromium(f"--screenshot={shot}", port=edge.port, workdir=tmp_path)

    page = dom.stdout.decode()
    assert "You are in line" in page, dom.stderr.decode()[-2000:]
    assert 'class="position">' in page
    assert "Last updated" in page
    assert shot.read_bytes().startswith(PNG_MAGIC)
    assert shot.stat().st_size > 5_000  # a rendered page, not a blank canvas
