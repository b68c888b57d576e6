"""The in-memory tier: entries bounded by total bytes, LRU eviction, Vary variants under one
primary key, and purge by key, prefix, host, tag or everything.

All methods are synchronous and finish their bookkeeping before returning (no await between a
check and an update). A hit is a dict look-up, the variant key and an LRU move: O(1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from originguard.cache.control import Headers
from originguard.cache.vary import vary_key

ENTRY_OVERHEAD = 256  # bytes charged per entry for its bookkeeping


@dataclass(frozen=True, slots=True)
class BodyFile:
    """A body kept in a file of the disk tier (cache/disk.py) rather than in memory."""

    path: str
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored response. Immutable: a revalidation stores a replacement. The body is
    `body`, or, for an entry of the disk tier, the file `file` (and `body` is empty)."""

    key: bytes
    status: int
    headers: Headers
    body: bytes
    stored_at: float
    request_time: float
    response_time: float
    host: bytes = b""  # for purge by host / prefix
    path: bytes = b""  # without the query, for purge by prefix
    variant: bytes = b""  # secondary key from vary_key()
    vary: tuple[bytes, ...] = ()  # the field names the variant key was computed from
    tags: tuple[bytes, ...] = ()
    lifetime: float = 0.0  # freshness lifetime decided when stored
    initial_age: float = 0.0  # corrected_initial_age (RFC 9111 §4.2.3) decided when stored
    file: BodyFile | None = None
    size: int = field(init=False)
    # The stored fields serialised for a plain hit, keyed by "ETags weakened" (layer.py).
    wire_fields: dict[bool, bytes] = field(
        init=False, default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        # Fields count twice: as stored, and serialised in `wire_fields` once hit.
        header_bytes = 2 * sum(len(n) + len(v) + 4 for n, v in self.headers)
        size = self.length + header_bytes + len(self.key) + len(self.variant) + ENTRY_OVERHEAD
        object.__setattr__(self, "size", size)

    @property
    def length(self) -> int:
        """The body's length in bytes, wherever it is kept."""
        return len(self.body) if self.file is None else self.file.size


_Slot = tuple[bytes, bytes]  # (key, variant)


class MemoryStore:
    """LRU by bytes. `max_bytes` bounds the sum of entry sizes; larger entries than
    `max_object_size` are refused. `on_remove` hears of every entry that leaves (replaced,
    evicted, deleted or purged); the disk tier uses it to drop the entry's file."""

    def __init__(
        self,
        max_bytes: int,
        max_object_size: int = 512 * 1024 * 1024,
        on_remove: Callable[[Entry], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.on_remove = on_remove
        self.max_object_size = min(max_object_size, max_bytes)
        self.bytes_used = 0
        self.evictions = 0
        self._lru: OrderedDict[_Slot, Entry] = OrderedDict()
        self._variants: dict[bytes, dict[bytes, Entry]] = {}
        self._vary: dict[bytes, tuple[bytes, ...]] = {}
        self._by_tag: dict[bytes, set[_Slot]] = {}
        self._by_host: dict[bytes, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, key: bytes) -> bool:
        return key in self._variants

    def get(self, key: bytes, req_headers: Headers | None = None) -> Entry | None:
        """The entry for `key` whose variant matches the request, marked recently used."""
        variants = self._variants.get(key)
        if variants is None:
            return None
        names = self._vary[key]
        variant = vary_key(names, req_headers or []) if names else b""
        entry = variants.get(variant)
        if entry is not None:
            self._lru.move_to_end((key, variant))
        return entry

    def put(self, entry: Entry) -> bool:
        """Store (or replace) an entry, evicting least recently used ones; False if too big.
        A response with a different Vary than the stored ones replaces all of them."""
        if entry.size > self.max_object_size:
            return False
        if self._vary.get(entry.key, entry.vary) != entry.vary:
            self.delete(entry.key)
        self._remove((entry.key, entry.variant))
        while self.bytes_used + entry.size > self.max_bytes and self._lru:
            self._remove(next(iter(self._lru)))
            self.evictions += 1
        slot = (entry.key, entry.variant)
        self._lru[slot] = entry
        self._variants.setdefault(entry.key, {})[entry.variant] = entry
        self._vary[entry.key] = entry.vary
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(slot)
        self._by_host.setdefault(entry.host, set()).add(entry.key)
        self.bytes_used += entry.size
        return True

    def delete(self, key: bytes) -> int:
        """Remove every variant of `key`; the number removed."""
        variants = self._variants.get(key)
        if not variants:
            return 0
        slots = [(key, variant) for variant in variants]
        for slot in slots:
            self._remove(slot)
        return len(slots)

    def purge_host(self, host: bytes) -> int:
        return self._remove_keys(list(self._by_host.get(host.lower(), ())))

    def purge_prefix(self, host: bytes, path_prefix: bytes) -> int:
        """Spec §8.7 prefix purge: every entry of `host` whose path is `path_prefix` or lies
        under it (segment-wise), with any query string."""
        prefix = path_prefix.rstrip(b"/")
        keys = [
            key
            for key in self._by_host.get(host.lower(), ())
            if any(_under(e.path, prefix) for e in self._variants[key].values())
        ]
        return self._remove_keys(keys)

    def purge_path(self, host: bytes, path: bytes) -> int:
        """RFC 9111 §4.4 invalidation: every entry of `host` for exactly `path` (any query,
        any variant), and nothing under it."""
        keys = [
            key
            for key in self._by_host.get(host.lower(), ())
            if any(e.path == path for e in self._variants[key].values())
        ]
        return self._remove_keys(keys)

    def purge_tags(self, tags: Iterable[bytes]) -> int:
        """Remove entries carrying any of `tags` (compared case-insensitively)."""
        slots: set[_Slot] = set()
        for tag in tags:
            slots |= self._by_tag.get(tag.strip().lower(), set())
        for slot in slots:
            self._remove(slot)
        return len(slots)

    def purge_all(self) -> int:
        count = len(self._lru)
        if self.on_remove is not None:
            for entry in self._lru.values():
                self.on_remove(entry)
        self._lru.clear()
        self._variants.clear()
        self._vary.clear()
        self._by_tag.clear()
        self._by_host.clear()
        self.bytes_used = 0
        return count

    def _remove_keys(self, keys: list[bytes]) -> int:
        return sum(self.delete(key) for key in keys)

    def _remove(self, slot: _Slot) -> None:
        entry = self._lru.pop(slot, None)
        if entry is None:
            return
        self.bytes_used -= entry.size
        key, variant = slot
        variants = self._variants[key]
        del variants[variant]
        if not variants:
            del self._variants[key]
            del self._vary[key]
            hosts = self._by_host.get(entry.host)
            if hosts is not None:
                hosts.discard(key)
                if not hosts:
                    del self._by_host[entry.host]
        for tag in entry.tags:
            tagged = self._by_tag.get(tag)
            if tagged is not None:
                tagged.discard(slot)
                if not tagged:
                    del self._by_tag[tag]
        if self.on_remove is not None:
            self.on_remove(entry)

    def entries(self) -> Iterable[Entry]:
        """Every entry, least recently used first."""
        return self._lru.values()


def is_under(path: bytes, prefix: bytes) -> bool:
    """Whether `path` is `prefix` or lies under it, segment-wise (an empty prefix: all)."""
    return _under(path, prefix.rstrip(b"/"))


def _under(path: bytes, prefix: bytes) -> bool:
    return path == prefix or path.startswith(prefix + b"/") or not prefix
