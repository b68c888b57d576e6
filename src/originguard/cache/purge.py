"""Purge (spec §8.7): by URL, prefix, host, tag, or everything; the request is validated
whole before anything is removed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from originguard.cache.key import make_key
from originguard.http.wire import canonical_host, canonical_path

if TYPE_CHECKING:
    from originguard.cache.layer import SharedCache
    from originguard.routing import Router

MAX_PREFIX_SEPARATORS = 31  # spec §8.7
MAX_TAG_LENGTH = 1024
# Printable ASCII stays as written (keys hold it raw); only the rest is percent-encoded.
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


class PurgeError(ValueError):
    """The purge request is malformed or too large; nothing was removed."""


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    files: tuple[tuple[bytes, bytes, bytes, bytes], ...] = ()  # scheme, host, path, query
    prefixes: tuple[tuple[bytes, bytes], ...] = ()              # host, path
    hosts: tuple[bytes, ...] = ()
    tags: tuple[bytes, ...] = ()
    everything: bool = False


def parse_request(document: Mapping[str, Any], limit: int) -> PurgeRequest:
    """Validate a JSON purge document (`files`, `prefixes`, `hosts`, `tags`,
    `purge_everything`), each list at most `limit` long."""
    known = {"files", "prefixes", "hosts", "tags", "purge_everything"}
    unknown = set(document) - known
    if unknown:
        raise PurgeError(f"unknown field(s) {sorted(unknown)}; expected {sorted(known)}")
    everything = document.get("purge_everything", False)
    if not isinstance(everything, bool):
        raise PurgeError("purge_everything must be true or false")
    lists = {name: _strings(document, name, limit) for name in known - {"purge_everything"}}
    if not everything and not any(lists.values()):
        raise PurgeError("nothing to purge: give files, prefixes, hosts, tags or purge_everything")
    files = tuple(_url(url) for url in lists["files"])
    prefixes = []
    for prefix in lists["prefixes"]:
        if "?" in prefix or "#" in prefix:
            raise PurgeError(f"prefix {prefix!r} may not carry a query or fragment")
        if prefix.count("/") > MAX_PREFIX_SEPARATORS:
            raise PurgeError(f"prefix {prefix!r} has more than {MAX_PREFIX_SEPARATORS} '/'")
        _, host, path, _ = _url(prefix if "://" in prefix else "http://" + prefix)
        prefixes.append((host, path))
    hosts = []
    for name in lists["hosts"]:
        canonical = canonical_host(name.encode("ascii", "replace"))
        if canonical is None:
            raise PurgeError(f"host {name!r} is not a host name")
        hosts.append(canonical)
    tags = []
    for tag in lists["tags"]:
        if not tag or len(tag) > MAX_TAG_LENGTH or not tag.isascii() or " " in tag:
            raise PurgeError(f"tag {tag!r} must be 1-{MAX_TAG_LENGTH} printable ASCII, no space")
        tags.append(tag.lower().encode())
    return PurgeRequest(files, tuple(prefixes), tuple(hosts), tuple(tags), everything)


def purge(cache: SharedCache, router: Router, request: PurgeRequest) -> int:
    """Remove what `request` names; the number of stored objects removed. A URL is keyed the
    way its zone keys a plain request for it (no extra headers)."""
    store = cache.store
    if request.everything:
        return store.purge_all()
    removed = 0
    for scheme, host, path, query in request.files:
        zone = router.route(host)
        zone_cache = zone.cache if zone is not None else None
        if zone_cache is None:
            key = make_key(scheme, host, path, query, [])
        else:
            key = zone_cache.url_key(scheme, host, path, query)
        removed += store.delete(key)
    for host, path in request.prefixes:
        removed += store.purge_prefix(host, path)
    for host in request.hosts:
        removed += store.purge_host(host)
    if request.tags:
        removed += store.purge_tags(request.tags)
    return removed


def _strings(document: Mapping[str, Any], name: str, limit: int) -> list[str]:
    value = document.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PurgeError(f"{name} must be a list of strings")
    if len(value) > limit:
        raise PurgeError(f"{name}: at most {limit} per call, got {len(value)}")
    return value


def _url(url: str) -> tuple[bytes, bytes, bytes, bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PurgeError(f"{url!r} is not an absolute http(s) URL")
    host = canonical_host(parts.netloc.encode("ascii", "replace"))
    # A browser sends /café.css as /caf%C3%A9.css: the key holds that form.
    path = canonical_path(quote(parts.path or "/", safe=_URL_SAFE).encode("ascii"))
    if host is None or path is None:
        raise PurgeError(f"{url!r} has an invalid host or path")
    return parts.scheme.encode(), host, path, quote(parts.query, safe=_URL_SAFE).encode("ascii")


def summary(request: PurgeRequest) -> dict[str, Iterable[str] | bool]:
    return {
        "files": [
            f"{s.decode()}://{h.decode()}{p.decode()}" + (f"?{q.decode()}" if q else "")
            for s, h, p, q in request.files
        ],
        "prefixes": [h.decode() + p.decode() for h, p in request.prefixes],
        "hosts": [h.decode() for h in request.hosts],
        "tags": [t.decode() for t in request.tags],
        "purge_everything": request.everything,
    }
