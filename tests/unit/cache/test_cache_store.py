"""The memory tier: LRU by bytes, Vary variants, purge by URL, prefix, host, tag, all."""

from originguard.cache.store import ENTRY_OVERHEAD, Entry, MemoryStore
from originguard.cache.vary import vary_key

NOW = 1_700_000_000.0


def entry(key=b"k", body=b"x" * 100, host=b"example.com", path=b"/a", tags=(), vary=(),
          variant=b"", headers=()):
    return Entry(key=key, status=200, headers=list(headers), body=body, stored_at=NOW,
                 request_time=NOW, response_time=NOW, host=host, path=path, variant=variant,
                 vary=vary, tags=tags)


def test_stored_entry_is_returned_and_counted():
    store = MemoryStore(max_bytes=10_000)
    e = entry()
    assert store.put(e)
    assert store.get(b"k") is e
    assert store.bytes_used == e.size == 100 + 1 + ENTRY_OVERHEAD
    assert len(store) == 1 and b"k" in store


def test_least_recently_used_entry_is_evicted_when_bytes_run_out():
    one = entry(b"1")
    store = MemoryStore(max_bytes=one.size * 3)
    for k in (b"1", b"2", b"3"):
        store.put(entry(k))
    store.get(b"1")  # now 2 is the least recently used
    store.put(entry(b"4"))
    assert store.get(b"2") is None
    assert all(store.get(k) is not None for k in (b"1", b"3", b"4"))
    assert store.bytes_used <= store.max_bytes
    assert store.evictions == 1


def test_object_larger_than_the_limit_is_refused_and_evicts_nothing():
    store = MemoryStore(max_bytes=10_000, max_object_size=500)
    store.put(entry(b"small"))
    assert not store.put(entry(b"big", body=b"x" * 1000))
    assert store.get(b"small") is not None and store.get(b"big") is None


def test_replacing_an_entry_does_not_double_count():
    store = MemoryStore(max_bytes=10_000)
    store.put(entry(body=b"x" * 100))
    store.put(entry(body=b"y" * 50))
    assert store.get(b"k").body == b"y" * 50
    assert store.bytes_used == entry(body=b"y" * 50).size


def test_variants_share_a_primary_key_and_are_selected_by_the_request():
    store = MemoryStore(max_bytes=10_000)
    vary = (b"accept-encoding",)
    br = [(b"accept-encoding", b"gzip, br")]
    gz = [(b"accept-encoding", b"gzip")]
    store.put(entry(body=b"br", vary=vary, variant=vary_key(vary, br)))
    store.put(entry(body=b"gz", vary=vary, variant=vary_key(vary, gz)))
    assert store.get(b"k", br).body == b"br"
    assert store.get(b"k", gz).body == b"gz"
    assert store.get(b"k", []) is None  # identity not stored: a vary-miss
    assert b"k" in store
    assert store.delete(b"k") == 2 and store.bytes_used == 0


def test_a_new_vary_replaces_variants_stored_under_the_old_one():
    store = MemoryStore(max_bytes=10_000)
    store.put(entry(body=b"old", vary=(b"x-a",), variant=vary_key([b"x-a"], [])))
    store.put(entry(body=b"new"))
    assert store.get(b"k").body == b"new"
    assert len(store) == 1


def test_purge_by_tag_is_case_insensitive_and_removes_only_tagged():
    store = MemoryStore(max_bytes=10_000)
    store.put(entry(b"1", tags=(b"product",)))
    store.put(entry(b"2", tags=(b"product", b"home")))
    store.put(entry(b"3", tags=(b"home",)))
    assert store.purge_tags([b"PRODUCT"]) == 2
    assert store.get(b"1") is None and store.get(b"2") is None and store.get(b"3") is not None
    assert store.purge_tags([b"product"]) == 0


def test_purge_by_prefix_takes_the_path_and_everything_under_it_with_any_query():
    store = MemoryStore(max_bytes=10_000)
    store.put(entry(b"1", path=b"/bar"))
    store.put(entry(b"2", path=b"/bar"))  # e.g. /bar?x=y under another key
    store.put(entry(b"3", path=b"/bar/baz.css"))
    store.put(entry(b"4", path=b"/barn"))
    store.put(entry(b"5", path=b"/bar", host=b"other.com"))
    assert store.purge_prefix(b"Example.com", b"/bar") == 3
    assert store.get(b"4") is not None and store.get(b"5") is not None


def test_invalidation_by_path_takes_that_path_with_any_query_and_nothing_under_it():
    store = MemoryStore(max_bytes=10_000)
    store.put(entry(b"1", path=b"/"))
    store.put(entry(b"2", path=b"/"))  # e.g. /?page=2
    store.put(entry(b"3", path=b"/app.css"))
    store.put(entry(b"4", path=b"/deep/b.js"))
    assert store.purge_path(b"Example.com", b"/") == 2
    assert store.get(b"3") is not None and store.get(b"4") is not None


def test_purge_by_host_and_everything():
    store = MemoryStore(max_bytes=10_000)
    store.put(entry(b"1"))
    store.put(entry(b"2", host=b"other.com"))
    assert store.purge_host(b"EXAMPLE.COM") == 1
    assert store.get(b"2") is not None
    assert store.purge_all() == 1
    assert len(store) == 0 and store.bytes_used == 0


def test_eviction_cleans_tag_and_host_indexes():
    one = entry(b"1", tags=(b"t",))
    store = MemoryStore(max_bytes=one.size)
    store.put(one)
    store.put(entry(b"2", host=b"other.com"))
    assert store.purge_tags([b"t"]) == 0
    assert store.purge_host(b"example.com") == 0
