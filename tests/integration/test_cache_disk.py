"""The disk tier through the real edge: a 50 MB object is stored while it streams, with the
edge's memory staying far below the object's size; it is a HIT again after a restart (read
from disk in chunks, memory still bounded), answers a Range from the file, and purges."""

from __future__ import annotations

import json
from pathlib import Path

from support.client import request
from support.edge import site_config
from support.origin import pattern_bytes

SIZE = 50 * 1024 * 1024
TARGET = f"/bytes/{SIZE}"
# Generous: the object is 50 MB; holding it whole (once in a buffer, once joined) would add
# at least that much. Streaming holds a few transport buffers and one write batch.
RSS_GROWTH_LIMIT_KIB = 25 * 1024


def disk_config(origin: str, directory: Path) -> dict:
    rule = {"name": "bytes", "when": {"path_prefix": ["/bytes/"]}, "cache": True,
            "edge_ttl": "1h"}  # fmt: skip
    return site_config(
        origin,
        zone={"cache": {"rules": [rule]}},
        cache={"memory": "16MB", "disk": {"path": str(directory), "max_size": "200MB"}},
    )


def get_measured(edge, target: str, **kwargs):
    """The reply, and how far the edge's peak RSS rose above its RSS before the request."""
    before = edge.memory_kib("VmRSS")
    reply = edge.get(target, **kwargs)
    return reply, edge.memory_kib("VmHWM") - before


def purge_everything(edge) -> dict:
    reply = request(
        edge.admin_port, "POST", "/purge", host="127.0.0.1",
        headers=[("Content-Type", "application/json"), ("Connection", "close")],
        body=json.dumps({"purge_everything": True}).encode(),
    )  # fmt: skip
    assert reply.status == 200, reply.text
    return json.loads(reply.body)


def objects(directory: Path) -> list[Path]:
    return [p for p in (directory / "objects").rglob("*") if p.is_file()]


def test_a_50mb_object_is_stored_on_disk_while_streaming_and_is_a_hit_after_a_restart(
    start_edge, origin_a, tmp_path
) -> None:
    directory = tmp_path / "disk-cache"
    config = disk_config(origin_a.address, directory)
    edge = start_edge(config)
    edge.get("/bytes/10")  # warm up the edge's own allocations before measuring
    miss, miss_growth = get_measured(edge, TARGET)
    assert miss.status == 200 and miss.header("og-cache-status") == "MISS"
    assert len(miss.body) == SIZE and miss.body == pattern_bytes(SIZE)
    assert miss_growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew {miss_growth} KiB on the miss"
    assert sorted(p.stat().st_size for p in objects(directory)) == [10, SIZE]

    assert edge.stop() == 0
    edge = start_edge(config)
    edge.get("/bytes/10")
    hit, hit_growth = get_measured(edge, TARGET)
    assert hit.status == 200 and hit.header("og-cache-status") == "HIT"
    assert hit.header("content-length") == str(SIZE) and hit.body == miss.body
    assert hit_growth < RSS_GROWTH_LIMIT_KIB, f"RSS grew {hit_growth} KiB on the hit"
    assert sum(1 for r in origin_a.requests if r.target == TARGET) == 1

    partial = edge.get(TARGET, headers=[("Range", "bytes=1000-1999")])
    assert partial.status == 206 and partial.body == miss.body[1000:2000]
    assert partial.header("content-range") == f"bytes 1000-1999/{SIZE}"
    head = edge.request("HEAD", TARGET)
    assert head.status == 200 and head.body == b"" and head.header("og-cache-status") == "HIT"

    assert purge_everything(edge)
    assert objects(directory) == []
    again = edge.get(TARGET)
    assert again.header("og-cache-status") == "MISS" and len(again.body) == SIZE
    assert sum(1 for r in origin_a.requests if r.target == TARGET) == 2


def test_a_small_object_survives_a_restart_through_the_disk_tier(
    start_edge, origin_a, tmp_path
) -> None:
    config = disk_config(origin_a.address, tmp_path / "disk-cache")
    edge = start_edge(config)
    first = edge.get("/cacheable/app.css?h=Cache-Control:max-age%3D300")
    assert first.header("og-cache-status") == "MISS"
    assert edge.stop() == 0
    edge = start_edge(config)
    second = edge.get("/cacheable/app.css?h=Cache-Control:max-age%3D300")
    assert second.header("og-cache-status") == "HIT" and second.body == first.body
    assert int(second.header("age") or "-1") >= 0
