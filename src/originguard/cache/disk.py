"""The disk tier: one file per body, an index in SQLite, LRU by bytes, kept across restarts.

    DIR/index.sqlite        one row per stored variant (WAL journal)
    DIR/objects/ab/NAME     bodies; NAME is random hex, `ab` its first two characters
    DIR/tmp/NAME            bodies being written

Crash safety comes from the order of steps, not from fsync: a body is written under tmp/,
renamed into objects/ only once complete, and only then indexed. A crash leaves at worst a
file no row names; on start such files, everything under tmp/, and rows whose file is missing
or has the wrong length (a power loss before the data reached the disk) are dropped.

Look-ups never touch SQLite: the index is also held in memory, as a `MemoryStore` of
file-backed entries (LRU, Vary variants, purge), and SQLite is its journal. The last-access
times that order the LRU are written back in batches, so a disk hit costs no write.

Blocking I/O: writes are synchronous, in batches of `WRITE_BATCH` bytes (a page-cache write of
256 KiB takes ~60 µs here); reads of a body being served run in a worker thread, in chunks of
`READ_CHUNK`, so a cold disk never stalls the event loop (see docs/cache.md for the figures).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from originguard.cache.control import Headers
from originguard.cache.store import BodyFile, Entry, MemoryStore

log = logging.getLogger("originguard.cache.disk")

READ_CHUNK = 256 * 1024  # one read of a body being served
WRITE_BATCH = 256 * 1024  # body bytes collected before one write(2)
TOUCH_BATCH = 1000  # last-access times held before they are written back
TOUCH_SECONDS = 10.0  # ... or after this long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    file TEXT PRIMARY KEY,      -- name of the body file under objects/
    key BLOB NOT NULL,
    variant BLOB NOT NULL,
    vary TEXT NOT NULL,         -- JSON list (latin-1 strings)
    status INTEGER NOT NULL,
    headers TEXT NOT NULL,      -- JSON list of [name, value] (latin-1 strings)
    times TEXT NOT NULL,        -- JSON object: the entry's float fields (stored_at, lifetime...)
    tags TEXT NOT NULL,         -- JSON list (latin-1 strings)
    host BLOB NOT NULL,
    path BLOB NOT NULL,
    size INTEGER NOT NULL,      -- body length
    last_access REAL NOT NULL
)
"""
_COLUMNS = "file, key, variant, vary, status, headers, times, tags, host, path, size, last_access"
# Entry's float fields (times, lifetime, ages), kept whatever they are named.
_TIMES = tuple(f.name for f in fields(Entry) if f.type in ("float", float))


class DiskStoreError(Exception):
    """The directory cannot be used (not writable, or another edge process holds it)."""


@dataclass(slots=True)
class FileBody:
    """An open stored body, or a range of it, that one response streams from. The descriptor
    stays valid if the entry is evicted or purged meanwhile (the file is only unlinked)."""

    fd: int
    offset: int
    length: int

    async def chunks(self) -> AsyncIterator[bytes]:
        """The bytes in order, READ_CHUNK at a time, each read in a worker thread. Ends early
        if the file is shorter than expected."""
        offset, end = self.offset, self.offset + self.length
        while offset < end:
            data = await asyncio.to_thread(os.pread, self.fd, min(READ_CHUNK, end - offset), offset)
            if not data:
                return
            offset += len(data)
            yield data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(slots=True)
class FileResponse:
    """A response made from a disk entry: the pipeline streams `body` after the head."""

    status: int
    headers: Headers
    body: FileBody


class DiskStore:
    """Bodies in files, bounded by `max_bytes` (the sum of entry sizes, bodies included),
    least recently used evicted first. Same look-up and purge API as MemoryStore."""

    def __init__(
        self,
        directory: str | Path,
        max_bytes: int,
        max_object_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(directory)
        self.clock = clock
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        try:
            self._objects.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(exist_ok=True)
            self._lock = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise DiskStoreError(f"cache directory {self.root}: {error}") from error
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(self._lock)
            raise DiskStoreError(
                f"cache directory {self.root} is used by another process"
            ) from error
        self._db = sqlite3.connect(self.root / "index.sqlite", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: consistent after a crash
        self._db.execute(_SCHEMA)
        self.index = MemoryStore(max_bytes, max_object_size, on_remove=self._on_remove)
        self._doomed: list[str] = []  # files removed from the index, still to unlink
        self._keep = ""  # the file an entry is being re-indexed with: not to unlink
        self._touched: dict[str, float] = {}
        self._touched_at = clock()
        self._load()

    # -- the MemoryStore API --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, key: bytes) -> bool:
        return key in self.index

    @property
    def bytes_used(self) -> int:
        return self.index.bytes_used

    @property
    def evictions(self) -> int:
        return self.index.evictions

    def get(self, key: bytes, req_headers: Headers | None = None) -> Entry | None:
        entry = self.index.get(key, req_headers)
        if entry is not None and entry.file is not None:
            now = self.clock()
            self._touched[entry.file.path] = now
            if len(self._touched) >= TOUCH_BATCH or now - self._touched_at >= TOUCH_SECONDS:
                self.flush()
        return entry

    def put(self, entry: Entry) -> Entry | None:
        """Store `entry`: its in-memory body is written to a new file; an entry already backed
        by one of this store's files (a revalidation) is re-indexed with it. The stored
        (file-backed) entry, or None if refused."""
        if entry.file is not None:
            return self._index(entry)
        if entry.size > self.index.max_object_size:
            return None
        try:
            fd, temp = self.temp_file()
        except OSError as error:
            log.warning("disk cache: cannot create a file: %s", error)
            return None
        try:
            write_all(fd, entry.body)
        except OSError as error:
            log.warning("disk cache: write failed: %s", error)
            self.discard(fd, temp)
            return None
        os.close(fd)
        return self.adopt(temp, len(entry.body), replace(entry, body=b""))

    def delete(self, key: bytes) -> int:
        return self._settled(self.index.delete(key))

    def purge_host(self, host: bytes) -> int:
        return self._settled(self.index.purge_host(host))

    def purge_prefix(self, host: bytes, path_prefix: bytes) -> int:
        return self._settled(self.index.purge_prefix(host, path_prefix))

    def purge_path(self, host: bytes, path: bytes) -> int:
        return self._settled(self.index.purge_path(host, path))

    def purge_tags(self, tags: list[bytes] | tuple[bytes, ...]) -> int:
        return self._settled(self.index.purge_tags(tags))

    def purge_all(self) -> int:
        return self._settled(self.index.purge_all())

    # -- bodies -----------------------------------------------------------------------------------

    def temp_file(self) -> tuple[int, str]:
        """A new file under tmp/ for a body being written: (descriptor, path)."""
        temp = str(self._tmp / os.urandom(16).hex())
        return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), temp

    def discard(self, fd: int, temp: str) -> None:
        """Give up a body being written."""
        if fd >= 0:
            os.close(fd)
        _unlink(temp)

    def adopt(self, temp: str, size: int, entry: Entry) -> Entry | None:
        """Move a complete body from tmp/ into objects/ and index it with `entry`'s fields."""
        name = os.path.basename(temp)
        final = self._objects / name[:2] / name
        try:
            final.parent.mkdir(exist_ok=True)
            os.rename(temp, final)
        except OSError as error:
            log.warning("disk cache: cannot keep a body: %s", error)
            _unlink(temp)
            return None
        return self._index(replace(entry, body=b"", file=BodyFile(str(final), size)), True)

    def open(self, entry: Entry, offset: int = 0, length: int = -1) -> FileBody | None:
        """The entry's body (or `length` bytes from `offset`; -1: to the end) opened for one
        response; None if its file is gone or was cut short, and the entry is then forgotten."""
        assert entry.file is not None
        try:
            fd = os.open(entry.file.path, os.O_RDONLY)
        except OSError:
            self._lost(entry)
            return None
        if os.fstat(fd).st_size != entry.file.size:
            os.close(fd)
            self._lost(entry)
            return None
        return FileBody(fd, offset, entry.file.size - offset if length < 0 else length)

    def read(self, entry: Entry) -> bytes | None:
        """The whole body of a (small) entry, read synchronously; None if it is unreadable."""
        assert entry.file is not None
        try:
            with open(entry.file.path, "rb") as file:
                body = file.read()
        except OSError:
            body = None
        if body is None or len(body) != entry.file.size:
            self._lost(entry)
            return None
        return body

    # -- persistence ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the batched last-access times back to the index."""
        touched, self._touched = self._touched, {}
        self._touched_at = self.clock()
        if touched:
            rows = [(when, _name(path)) for path, when in touched.items()]
            self._db.executemany("UPDATE entries SET last_access = ? WHERE file = ?", rows)

    def close(self) -> None:
        self.flush()
        self._db.close()
        os.close(self._lock)

    def _index(self, entry: Entry, fresh: bool = False) -> Entry | None:
        """Index an entry whose body file is in objects/: a `fresh` one just moved there, or
        one already indexed (a revalidation keeps the body, its file may be gone since)."""
        assert entry.file is not None
        path = entry.file.path
        if not fresh and not os.path.exists(path):
            return None
        self._keep = path
        try:
            stored = self.index.put(entry)
        finally:
            self._keep = ""
        if not stored and fresh:
            self._doomed.append(path)
        self._settle()
        if not stored:
            return None
        self._touched.pop(path, None)
        self._db.execute(
            f"INSERT OR REPLACE INTO entries ({_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _row(entry, self.clock()),
        )
        return entry

    def _on_remove(self, entry: Entry) -> None:
        if entry.file is not None and entry.file.path != self._keep:
            self._doomed.append(entry.file.path)

    def _settled(self, count: int) -> int:
        self._settle()
        return count

    def _settle(self) -> None:
        """Drop the rows and files of entries that left the index (one transaction)."""
        if not self._doomed:
            return
        doomed, self._doomed = self._doomed, []
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "DELETE FROM entries WHERE file = ?", [(_name(path),) for path in doomed]
            )
        for path in doomed:
            self._touched.pop(path, None)
            _unlink(path)

    def _lost(self, entry: Entry) -> None:
        log.warning("disk cache: body file of %r is missing or cut short", entry.key)
        self.index.delete(entry.key)
        self._settle()

    def _load(self) -> None:
        """Rebuild the in-memory index from SQLite, least recently used first; drop rows
        without a sound file and files without a row."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY last_access").fetchall()
        bad: list[tuple[str]] = []
        for row in rows:
            name = row[0]
            path = self._objects / name[:2] / name
            try:
                sound = path.stat().st_size == row[10]
            except OSError:
                sound = False
            if not sound:
                bad.append((name,))
                continue
            if not self.index.put(_entry(row, str(path))):
                bad.append((name,))
        if bad:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM entries WHERE file = ?", bad)
        self._settle()  # rows evicted because max_bytes shrank
        known = {_name(entry.file.path) for entry in self.index.entries() if entry.file}
        for path in self._tmp.iterdir():
            _unlink(str(path))
        for folder in self._objects.iterdir():
            for path in folder.iterdir() if folder.is_dir() else ():
                if path.name not in known:
                    _unlink(str(path))
        if rows or bad:
            log.info(
                "disk cache %s: %d objects (%d bytes) restored, %d dropped",
                self.root, len(self.index), self.index.bytes_used, len(bad),
            )  # fmt: skip


_OPEN: dict[Path, DiskStore] = {}


def open_disk_store(directory: str, max_bytes: int, max_object_size: int) -> DiskStore:
    """The process's store for `directory`: opened once, then kept across config reloads
    (a second DiskStore on the same directory would find it locked), with new limits."""
    path = Path(directory).resolve()
    store = _OPEN.get(path)
    if store is None:
        store = _OPEN[path] = DiskStore(path, max_bytes, max_object_size)
    else:
        store.index.max_bytes = max_bytes
        store.index.max_object_size = min(max_object_size, max_bytes)
    return store


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _name(path: str) -> str:
    return os.path.basename(path)


def _text(items: list[bytes] | tuple[bytes, ...]) -> str:
    return json.dumps([item.decode("latin-1") for item in items])


def _items(text: str) -> tuple[bytes, ...]:
    return tuple(item.encode("latin-1") for item in json.loads(text))


def _row(entry: Entry, now: float) -> tuple[Any, ...]:
    assert entry.file is not None
    headers = json.dumps([[n.decode("latin-1"), v.decode("latin-1")] for n, v in entry.headers])
    times = json.dumps({name: getattr(entry, name) for name in _TIMES})
    return (
        _name(entry.file.path), entry.key, entry.variant, _text(entry.vary), entry.status,
        headers, times, _text(entry.tags), entry.host, entry.path, entry.file.size, now,
    )  # fmt: skip


def _entry(row: tuple[Any, ...], path: str) -> Entry:
    _, key, variant, vary, status, headers, times, tags, host, path_, size, _ = row
    known = {name: float(value) for name, value in json.loads(times).items() if name in _TIMES}
    return Entry(
        key=bytes(key),
        status=int(status),
        headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in json.loads(headers)],
        body=b"",
        host=bytes(host),
        path=bytes(path_),
        variant=bytes(variant),
        vary=_items(vary),
        tags=_items(tags),
        file=BodyFile(path, int(size)),
        **known,
    )
