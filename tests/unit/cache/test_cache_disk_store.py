"""The disk tier and the tiered store: files plus a SQLite index, bounded, kept across
restarts, crash leftovers dropped; memory first, bodies streamed to disk while they arrive."""

import asyncio
import os
import sqlite3
from dataclasses import replace

import pytest

from originguard.cache.disk import DiskStore, DiskStoreError, FileBody
from originguard.cache.store import Entry, MemoryStore
from originguard.cache.tiers import TieredStore

NOW = 1_700_000_000.0
MB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        self.now += 1
        return self.now


def entry(key=b"k", body=b"x" * 100, host=b"example.com", path=b"/a", tags=(), headers=()):
    return Entry(key=key, status=200, headers=list(headers), body=body, stored_at=NOW,
                 request_time=NOW - 1, response_time=NOW, host=host, path=path, tags=tags,
                 lifetime=60.0)  # fmt: skip


def disk(tmp_path, max_bytes=10 * MB, clock=None):
    return DiskStore(tmp_path / "cache", max_bytes, max_bytes, clock=clock or Clock())


def body_of(store: DiskStore, key: bytes) -> bytes | None:
    found = store.get(key)
    return None if found is None else store.read(found)


def files(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache" / "objects").rglob("*") if p.is_file())


def test_stored_body_lives_in_a_file_and_the_entry_keeps_its_fields(tmp_path):
    store = disk(tmp_path)
    stored = store.put(entry(headers=[(b"content-type", b"text/css")], tags=(b"t1",)))
    assert stored is not None and stored.file is not None and stored.body == b""
    assert stored.length == 100 and os.path.getsize(stored.file.path) == 100
    found = store.get(b"k")
    assert found is not None and found.headers == [(b"content-type", b"text/css")]
    assert store.read(found) == b"x" * 100


def test_a_restart_keeps_the_entries_with_their_headers_times_and_tags(tmp_path):
    store = disk(tmp_path)
    store.put(entry(b"one", body=b"1" * 10, tags=(b"red",), headers=[(b"etag", b'"\xe9"')]))
    store.put(entry(b"two", body=b"2" * 20))
    store.close()
    again = disk(tmp_path)
    assert len(again) == 2
    one = again.get(b"one")
    assert one is not None and again.read(one) == b"1" * 10
    assert one.headers == [(b"etag", b'"\xe9"')] and one.tags == (b"red",)
    assert (one.stored_at, one.request_time, one.lifetime) == (NOW, NOW - 1, 60.0)
    assert again.purge_tags([b"red"]) == 1 and body_of(again, b"two") == b"2" * 20


def test_least_recently_used_entry_is_evicted_when_the_disk_budget_runs_out(tmp_path):
    size = entry(body=b"x" * 1000).size
    store = disk(tmp_path, max_bytes=size * 3)
    for key in (b"1", b"2", b"3"):
        store.put(entry(key, body=b"x" * 1000))
    store.get(b"1")  # 2 is now the least recently used
    store.put(entry(b"4", body=b"x" * 1000))
    assert store.get(b"2") is None
    assert all(store.get(k) is not None for k in (b"1", b"3", b"4"))
    assert store.bytes_used <= size * 3 and len(files(tmp_path)) == 3


def test_the_lru_order_survives_a_restart(tmp_path):
    size = entry(body=b"x" * 1000).size
    store = disk(tmp_path, max_bytes=size * 3)
    for key in (b"1", b"2", b"3"):
        store.put(entry(key, body=b"x" * 1000))
    store.get(b"1")
    store.close()  # writes the batched access times back
    again = disk(tmp_path, max_bytes=size * 3)
    again.put(entry(b"4", body=b"x" * 1000))
    assert again.get(b"2") is None and again.get(b"1") is not None


def test_a_smaller_budget_at_start_evicts_down_to_it(tmp_path):
    size = entry(body=b"x" * 1000).size
    store = disk(tmp_path)
    for key in (b"1", b"2", b"3"):
        store.put(entry(key, body=b"x" * 1000))
    store.close()
    again = disk(tmp_path, max_bytes=size * 2)
    assert len(again) == 2 and again.get(b"1") is None and len(files(tmp_path)) == 2


def test_purge_by_key_prefix_host_tag_and_everything_removes_files_and_rows(tmp_path):
    store = disk(tmp_path)
    store.put(entry(b"a", path=b"/static/a.css"))
    store.put(entry(b"b", path=b"/static/b.css", tags=(b"blue",)))
    store.put(entry(b"c", host=b"other.com", path=b"/c"))
    store.put(entry(b"d", path=b"/d", tags=(b"blue",)))
    store.put(entry(b"e", path=b"/e"))
    assert store.delete(b"e") == 1
    assert store.purge_prefix(b"example.com", b"/static/") == 2
    assert store.purge_host(b"OTHER.com") == 1
    assert store.purge_tags([b"blue"]) == 1
    assert len(store) == 0 and files(tmp_path) == []
    store.put(entry(b"f"))
    assert store.purge_all() == 1 and files(tmp_path) == []
    store.close()
    assert len(disk(tmp_path)) == 0


def test_leftovers_of_a_crash_are_dropped_at_start(tmp_path):
    store = disk(tmp_path)
    kept = store.put(entry(b"kept", body=b"k" * 50))
    cut = store.put(entry(b"cut", body=b"c" * 50))
    assert kept is not None and cut is not None and cut.file is not None
    fd, partial = store.temp_file()  # a body that was being written when the edge died
    os.write(fd, b"half")
    os.close(fd)
    orphan = tmp_path / "cache" / "objects" / "ab" / "ab00"  # renamed, never indexed
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"orphan")
    with open(cut.file.path, "r+b") as file:  # a power loss before the data reached disk
        file.truncate(10)
    os.close(store._lock)  # the process is gone: no close(), no flush
    again = disk(tmp_path)
    assert again.get(b"cut") is None
    assert body_of(again, b"kept") == b"k" * 50
    assert not os.path.exists(partial) and not orphan.exists()
    assert files(tmp_path) == [os.path.basename(kept.file.path)]
    rows = sqlite3.connect(tmp_path / "cache" / "index.sqlite").execute(
        "SELECT count(*) FROM entries"
    )
    assert rows.fetchone() == (1,)


def test_a_second_store_on_the_same_directory_is_refused(tmp_path):
    disk(tmp_path)
    with pytest.raises(DiskStoreError, match="another process"):
        disk(tmp_path)


def test_a_body_file_cut_short_is_noticed_when_opened_and_forgotten(tmp_path):
    store = disk(tmp_path)
    stored = store.put(entry(body=b"x" * 100))
    assert stored is not None and stored.file is not None
    os.truncate(stored.file.path, 5)
    assert store.open(stored) is None and store.get(b"k") is None


def test_a_revalidated_entry_is_indexed_again_with_the_same_file(tmp_path):
    store = disk(tmp_path)
    stored = store.put(entry())
    assert stored is not None
    refreshed = store.put(replace(stored, headers=[(b"etag", b'"2"')], stored_at=NOW + 5))
    assert refreshed is not None and refreshed.file == stored.file
    assert os.path.exists(stored.file.path) and len(files(tmp_path)) == 1
    store.close()
    again = disk(tmp_path).get(b"k")
    assert again is not None and again.headers == [(b"etag", b'"2"')]


def test_concurrent_readers_each_get_the_whole_body_even_if_it_is_purged_meanwhile(tmp_path):
    store = disk(tmp_path)
    body = os.urandom(3 * MB)
    stored = store.put(entry(body=body))
    assert stored is not None

    async def read(source: FileBody) -> bytes:
        parts = []
        async for data in source.chunks():
            parts.append(data)
            await asyncio.sleep(0)
        source.close()
        return b"".join(parts)

    async def scenario() -> list[bytes]:
        sources = [store.open(stored) for _ in range(8)]
        assert all(sources)
        readers = [asyncio.create_task(read(s)) for s in sources if s is not None]
        await asyncio.sleep(0)
        store.purge_all()  # unlinks the file; open descriptors still read it
        return await asyncio.gather(*readers)

    assert asyncio.run(scenario()) == [body] * 8
    assert files(tmp_path) == []


def test_a_range_of_a_body_is_read_from_its_offset(tmp_path):
    store = disk(tmp_path)
    stored = store.put(entry(body=bytes(range(256)) * 4))
    assert stored is not None
    source = store.open(stored, offset=10, length=5)

    async def read() -> bytes:
        assert source is not None
        return b"".join([data async for data in source.chunks()])

    assert asyncio.run(read()) == bytes(range(10, 15))


# -- the tiered store -----------------------------------------------------------------------


def tiered(tmp_path, disk_from=1000, memory=MB):
    return TieredStore(MemoryStore(memory), disk(tmp_path), disk_from)


def test_a_small_body_is_served_from_memory_and_also_written_to_disk(tmp_path):
    store = tiered(tmp_path)
    assert store.put(entry(body=b"s" * 10))
    found = store.get(b"k")
    assert found is not None and found.file is None and found.body == b"s" * 10
    assert store.disk is not None and len(store.disk) == 1


def test_a_large_body_lives_on_disk_only(tmp_path):
    store = tiered(tmp_path)
    stored = store.keep(entry(body=b"L" * 5000))
    assert stored is not None and stored.file is not None
    assert len(store.memory) == 0
    found = store.get(b"k")
    assert found is not None and found.file is not None


def test_after_a_restart_a_small_body_comes_back_into_memory_on_first_use(tmp_path):
    store = tiered(tmp_path)
    store.put(entry(body=b"s" * 10))
    assert store.disk is not None
    store.disk.close()
    again = tiered(tmp_path)
    found = again.get(b"k")
    assert found is not None and found.body == b"s" * 10 and found.file is None
    assert len(again.memory) == 1


def test_an_entry_evicted_from_memory_is_still_served_from_disk(tmp_path):
    size = entry(b"1", body=b"s" * 500).size
    store = tiered(tmp_path, memory=size)
    store.put(entry(b"1", body=b"s" * 500))
    store.put(entry(b"2", body=b"t" * 500))  # evicts 1 from memory
    assert store.memory.get(b"1") is None
    found = store.get(b"1")
    assert found is not None and found.body == b"s" * 500


def test_a_writer_keeps_a_small_body_in_memory(tmp_path):
    store = tiered(tmp_path)
    writer = store.begin(entry(body=b""), limit=10_000)
    assert writer is not None
    assert writer.write(b"ab") and writer.write(b"cd")
    assert not writer.on_disk
    stored = writer.commit()
    assert stored is not None and stored.body == b"abcd"
    assert files(tmp_path) != []  # written through


def test_a_writer_moves_a_large_body_to_disk_holding_little_in_memory(tmp_path):
    store = tiered(tmp_path, disk_from=64 * 1024)
    writer = store.begin(entry(body=b""), limit=100 * MB)
    assert writer is not None
    piece = os.urandom(64 * 1024)
    for _ in range(80):  # 5 MB
        assert writer.write(piece)
        assert writer._buffered < 64 * 1024 + 256 * 1024 + len(piece)
    assert writer.on_disk
    stored = writer.commit()
    assert stored is not None and stored.file is not None and stored.length == 5 * MB
    assert store.disk is not None and store.disk.read(stored) == piece * 80
    assert os.listdir(tmp_path / "cache" / "tmp") == []


def test_a_writer_gives_up_over_its_limit_and_leaves_no_file(tmp_path):
    store = tiered(tmp_path, disk_from=10)
    writer = store.begin(entry(body=b""), limit=100)
    assert writer is not None
    assert writer.write(b"x" * 60) and not writer.write(b"x" * 60)
    assert writer.commit() is None and store.get(b"k") is None
    assert os.listdir(tmp_path / "cache" / "tmp") == []
    assert store.begin(entry(body=b""), limit=100, expected=101) is None


def test_a_body_purged_while_it_streams_is_not_stored(tmp_path):
    store = tiered(tmp_path, disk_from=10)
    writer = store.begin(entry(body=b"", tags=(b"red",)), limit=MB)
    other = store.begin(entry(b"other", body=b""), limit=MB)
    assert writer is not None and other is not None
    writer.write(b"x" * 100)
    other.write(b"y" * 100)
    store.purge_tags([b"RED"])
    assert writer.commit() is None and store.get(b"k") is None
    assert other.commit() is not None
    assert os.listdir(tmp_path / "cache" / "tmp") == []


def test_an_aborted_writer_leaves_nothing_behind(tmp_path):
    store = tiered(tmp_path, disk_from=10)
    writer = store.begin(entry(body=b""), limit=MB)
    assert writer is not None
    writer.write(b"x" * 100)
    writer.abort()
    writer.abort()
    assert writer.commit() is None and store.get(b"k") is None
    assert os.listdir(tmp_path / "cache" / "tmp") == []


def test_without_a_disk_tier_a_writer_buffers_up_to_its_limit(tmp_path):
    store = TieredStore(MemoryStore(MB))
    writer = store.begin(entry(body=b""), limit=10)
    assert writer is not None and writer.write(b"x" * 10) and not writer.write(b"y")
    writer = store.begin(entry(body=b""), limit=10)
    assert writer is not None and writer.write(b"x" * 10)
    stored = writer.commit()
    assert stored is not None and stored.body == b"x" * 10 and store.get(b"k") is stored
