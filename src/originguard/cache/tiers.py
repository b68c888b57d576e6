"""The cache's storage as the rest of the edge sees it: memory first, then the disk tier.

    get       memory; else disk (a small body is read back into memory: it is hot again)
    put       memory for bodies under `disk_from`; every body also goes to disk (write-through),
              so a memory eviction loses nothing and a restart keeps everything
    begin     a Writer that collects a body while it streams to the client: in memory while
              small, in a file of the disk tier once it reaches `disk_from`; never the whole
              large body in memory
    purge_*   both tiers, and the writers still open for what they name (a body whose purge
              arrived mid-stream is not stored when it completes)

Without a disk tier this is the memory store alone, and a Writer buffers up to its limit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import replace

from originguard.cache.control import Headers
from originguard.cache.disk import WRITE_BATCH, DiskStore, FileBody, write_all
from originguard.cache.store import Entry, MemoryStore, is_under

log = logging.getLogger("originguard.cache")


class TieredStore:
    def __init__(self, memory: MemoryStore, disk: DiskStore | None = None, disk_from: int = 0):
        self.memory = memory
        self.disk = disk
        self.disk_from = disk_from if disk is not None else memory.max_object_size + 1
        self._writers: set[Writer] = set()

    def __len__(self) -> int:
        return max(len(self.memory), len(self.disk) if self.disk is not None else 0)

    def __contains__(self, key: bytes) -> bool:
        return key in self.memory or (self.disk is not None and key in self.disk)

    def get(self, key: bytes, req_headers: Headers | None = None) -> Entry | None:
        entry = self.memory.get(key, req_headers)
        if entry is not None or self.disk is None:
            return entry
        entry = self.disk.get(key, req_headers)
        if entry is None or entry.length >= self.disk_from:
            return entry
        body = self.disk.read(entry)
        if body is None:
            return None
        promoted = replace(entry, body=body, file=None)
        self.memory.put(promoted)
        return promoted

    def put(self, entry: Entry) -> bool:
        return self.keep(entry) is not None

    def keep(self, entry: Entry) -> Entry | None:
        """Store `entry`; the entry as stored (to serve from), or None if refused."""
        if self.disk is None:
            return entry if self.memory.put(entry) else None
        on_disk = self.disk.put(entry)  # a revalidated disk entry keeps its file
        if on_disk is None:
            self.disk.delete(entry.key)  # never leave an older copy to come back later
        if entry.file is None and entry.length < self.disk_from and self.memory.put(entry):
            return entry
        return on_disk

    def open(self, entry: Entry, offset: int = 0, length: int = -1) -> FileBody | None:
        """A disk entry's body opened for one response (None: its file is gone)."""
        assert self.disk is not None
        return self.disk.open(entry, offset, length)

    # -- writing while streaming ----------------------------------------------------------------

    def begin(self, template: Entry, limit: int, expected: int | None = None) -> Writer | None:
        """A Writer for the body of `template` (whose own body is ignored), refusing bodies
        over `limit` bytes; None when `expected` (Content-Length) is already over it."""
        if self.disk is None:
            limit = min(limit, self.memory.max_object_size)  # nowhere else to keep it
        if expected is not None and expected > limit:
            return None
        writer = Writer(self, template, limit)
        self._writers.add(writer)
        return writer

    def _commit(self, writer: Writer, body: bytes | tuple[str, int]) -> Entry | None:
        self._writers.discard(writer)
        if isinstance(body, bytes):
            return self.keep(replace(writer.template, body=body))
        assert self.disk is not None
        temp, size = body
        self.memory.delete(writer.template.key)  # an older, smaller copy must not win
        return self.disk.adopt(temp, size, writer.template)

    # -- removal ----------------------------------------------------------------------------------

    def delete(self, key: bytes) -> int:
        self._cancel(lambda e: e.key == key)
        return self._both(lambda store: store.delete(key))

    def purge_host(self, host: bytes) -> int:
        host = host.lower()
        self._cancel(lambda e: e.host == host)
        return self._both(lambda store: store.purge_host(host))

    def purge_prefix(self, host: bytes, path_prefix: bytes) -> int:
        host = host.lower()
        self._cancel(lambda e: e.host == host and is_under(e.path, path_prefix))
        return self._both(lambda store: store.purge_prefix(host, path_prefix))

    def purge_path(self, host: bytes, path: bytes) -> int:
        host = host.lower()
        self._cancel(lambda e: e.host == host and e.path == path)
        return self._both(lambda store: store.purge_path(host, path))

    def purge_tags(self, tags: Iterable[bytes]) -> int:
        wanted = tuple(tag.strip().lower() for tag in tags)
        self._cancel(lambda e: any(tag in e.tags for tag in wanted))
        return self._both(lambda store: store.purge_tags(wanted))

    def purge_all(self) -> int:
        self._cancel(lambda e: True)
        return self._both(lambda store: store.purge_all())

    def _both(self, remove: Callable[[MemoryStore | DiskStore], int]) -> int:
        removed = remove(self.memory)
        if self.disk is not None:
            removed = max(removed, remove(self.disk))
        return removed

    def _cancel(self, matches: Callable[[Entry], bool]) -> None:
        for writer in self._writers:
            if matches(writer.template):
                writer.purged = True


class Writer:
    """Collects one body while it streams: `write` each piece (False: over the limit or the
    disk failed, and the writer gave up), then `commit` once the response completed, or
    `abort`. Holds at most `disk_from` + WRITE_BATCH bytes in memory."""

    def __init__(self, store: TieredStore, template: Entry, limit: int) -> None:
        self.store = store
        self.template = template
        self.limit = limit
        self.size = 0
        self.purged = False
        self._parts: list[bytes] = []
        self._buffered = 0
        self._fd = -1
        self._temp = ""
        self._done = False

    @property
    def on_disk(self) -> bool:
        return self._fd >= 0

    def write(self, data: bytes) -> bool:
        if self._done:
            return False
        self.size += len(data)
        if self.size > self.limit:
            self.abort()
            return False
        self._parts.append(data)
        self._buffered += len(data)
        if self._fd < 0 and self.size < self.store.disk_from:
            return True
        try:
            if self._fd < 0:
                disk = self.store.disk
                if disk is None:  # over the memory tier's limit (begin() keeps this rare)
                    self.abort()
                    return False
                self._fd, self._temp = disk.temp_file()
            if self._buffered >= WRITE_BATCH:
                self._flush()
        except OSError as error:
            log.warning("disk cache: cannot write a body: %s", error)
            self.abort()
            return False
        return True

    def commit(self) -> Entry | None:
        """Store the complete body; the stored entry, or None (purged meanwhile, refused)."""
        if self._done:
            return None
        if self.purged:
            self.abort()
            return None
        if self._fd < 0:
            self._done = True
            return self.store._commit(self, b"".join(self._parts))
        try:
            self._flush()
        except OSError as error:
            log.warning("disk cache: cannot write a body: %s", error)
            self.abort()
            return None
        os.close(self._fd)
        self._fd, self._done = -1, True
        return self.store._commit(self, (self._temp, self.size))

    def abort(self) -> None:
        """Give up (idempotent; nothing after commit)."""
        if self._done:
            return
        self._done = True
        self._parts = []
        self.store._writers.discard(self)
        if self._fd >= 0:
            assert self.store.disk is not None
            self.store.disk.discard(self._fd, self._temp)
            self._fd = -1

    def _flush(self) -> None:
        if self._parts:
            write_all(self._fd, b"".join(self._parts))
            self._parts, self._buffered = [], 0
