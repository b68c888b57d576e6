"""Conditional requests in both directions: answering clients from a stored response
(RFC 9110 §13, RFC 9111 §4.3.2) and revalidating stored responses with the origin (§4.3.1,
§4.3.4)."""

from __future__ import annotations

from collections.abc import Iterator

from originguard.cache.control import (
    Headers,
    date_field,
    first,
    parse_http_date,
    split_list,
    values,
)

MAX_TAGS = 128  # entity-tags considered per condition: a longer list is truncated


def entity_tags(value: bytes) -> Iterator[tuple[bool, bytes]]:
    """(weak, opaque-tag) pairs of an If-Match / If-None-Match list (RFC 9110 §8.8.3).
    Unquoted tokens are tolerated as if quoted; "*" is yielded as (False, b"*")."""
    for count, member in enumerate(split_list(value)):
        if count >= MAX_TAGS:
            return
        weak = member[:2] in (b"W/", b"w/")
        tag = member[2:] if weak else member
        if tag == b"*" and not weak:
            yield False, b"*"
            continue
        if len(tag) >= 2 and tag[:1] == b'"' and tag[-1:] == b'"':
            tag = tag[1:-1]
        yield weak, tag


def _stored_etag(stored_headers: Headers) -> tuple[bool, bytes] | None:
    raw = first(stored_headers, b"etag")
    if raw is None:
        return None
    return next(entity_tags(raw), None)


def _any_match(condition: bytes, current: tuple[bool, bytes] | None, *, strong: bool) -> bool:
    for weak, tag in entity_tags(condition):
        if tag == b"*":
            return True  # RFC 9110 §13.1.1/.2: "*" matches any current representation
        if current is None:
            continue
        if strong and (weak or current[0]):
            continue  # RFC 9110 §8.8.3.2: strong comparison needs two strong tags
        if tag == current[1]:
            return True
    return False


def _one_date(headers: Headers, name: bytes) -> float | None:
    lines = list(values(headers, name))
    if len(lines) != 1:
        return None  # more than one member: ignore the condition (RFC 9110 §13.1.3)
    return parse_http_date(lines[0])


def _last_modified(stored_headers: Headers, stored_at: float | None) -> float | None:
    """RFC 9111 §4.3.2: Last-Modified, else Date, else when the response was stored."""
    for name in (b"last-modified", b"date"):
        when = date_field(stored_headers, name)
        if when is not None:
            return when
    return stored_at


def evaluate_conditional(
    req_headers: Headers,
    stored_headers: Headers,
    now: float,
    *,
    stored_status: int = 200,
    stored_at: float | None = None,
) -> int | None:
    """304 or 412 when the request's preconditions (RFC 9110 §13.2.2 order) say so for a
    GET/HEAD answered from the stored response; None to serve it normally."""
    if not 200 <= stored_status < 300:
        return None  # RFC 9110 §13.2.1: preconditions apply only to a 2xx answer
    if not any(name[:3] == b"if-" for name, _ in req_headers):
        return None  # no precondition at all: the common hit
    etag = _stored_etag(stored_headers)
    if_match = list(values(req_headers, b"if-match"))
    if if_match:
        if not any(_any_match(v, etag, strong=True) for v in if_match):
            return 412
    else:
        unmodified_since = _one_date(req_headers, b"if-unmodified-since")
        modified = date_field(stored_headers, b"last-modified")
        if unmodified_since is not None and modified is not None and modified > unmodified_since:
            return 412
    if_none_match = list(values(req_headers, b"if-none-match"))
    if if_none_match:
        if any(_any_match(v, etag, strong=False) for v in if_none_match):
            return 304
        return None
    modified_since = _one_date(req_headers, b"if-modified-since")
    if modified_since is not None and modified_since <= now:  # a future date is invalid
        modified = _last_modified(stored_headers, stored_at)
        if modified is not None and modified <= modified_since:
            return 304
    return None


def if_range_matches(value: bytes, stored_headers: Headers) -> bool:
    """RFC 9110 §13.1.5: apply Range only when If-Range names the stored representation by a
    strong entity-tag or by its exact Last-Modified date."""
    value = value.strip()
    if value[:1] == b'"' or value[:2] in (b"W/", b"w/"):
        return _any_match(value, _stored_etag(stored_headers), strong=True)
    when = parse_http_date(value)
    modified = date_field(stored_headers, b"last-modified")
    return when is not None and modified is not None and when == modified


def revalidation_headers(stored_headers: Headers) -> Headers:
    """Validators for a conditional request to the origin (RFC 9111 §4.3.1)."""
    out: Headers = []
    etag = first(stored_headers, b"etag")
    if etag is not None:
        out.append((b"if-none-match", etag))
    modified = first(stored_headers, b"last-modified")
    if modified is not None:
        out.append((b"if-modified-since", modified))
    return out


def matches_304(stored_headers: Headers, headers_304: Headers) -> bool:
    """RFC 9111 §4.3.4: a 304 updates the stored response only when its validator selects it
    (same strong ETag, or same Last-Modified, or no validator at all with one stored copy)."""
    new_etag = first(headers_304, b"etag")
    if new_etag is not None:
        new = next(entity_tags(new_etag), None)
        old = _stored_etag(stored_headers)
        return new is not None and old is not None and new[1] == old[1]
    new_modified = first(headers_304, b"last-modified")
    if new_modified is not None:
        old_modified = first(stored_headers, b"last-modified")
        return old_modified is not None and old_modified.strip() == new_modified.strip()
    return True


# RFC 9111 §3.2: fields a 304 must not replace in the stored response: framing, hop-by-hop,
# and fields that describe the stored body itself (Content-MD5 is a digest of it).
_NOT_UPDATED = frozenset(
    {b"content-length", b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
     b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization",
     b"content-encoding", b"content-range", b"content-md5"}
)  # fmt: skip


def merge_304(stored_headers: Headers, headers_304: Headers) -> Headers:
    """The stored header fields updated with a 304's (RFC 9111 §3.2, §4.3.4): each field in
    the 304 replaces all stored lines of that name, except framing and hop-by-hop fields.
    A stored ETag is kept: it names the stored body, which a 304 does not change."""
    skip = set(_NOT_UPDATED)
    if any(name == b"etag" for name, _ in stored_headers):
        skip.add(b"etag")
    for line in values(headers_304, b"connection"):
        skip.update(name.lower() for name in split_list(line))
    replacing = {name for name, _ in headers_304 if name not in skip}
    merged = [(name, value) for name, value in stored_headers if name not in replacing]
    merged.extend((name, value) for name, value in headers_304 if name in replacing)
    return merged


def weaken_etags(headers: Headers) -> Headers:
    """Strong ETags become weak, as the edge does unless "respect strong ETags" (spec §8.3).
    The same list when there is nothing to weaken."""
    if not any(name == b"etag" and value[:1] == b'"' for name, value in headers):
        return headers
    return [
        (name, b"W/" + value if name == b"etag" and value[:1] == b'"' else value)
        for name, value in headers
    ]
