"""The edge cache through the real edge: what is stored, what is served, and what the origin
still sees. Origin route /cacheable/<name>?h=Name:Value sends the headers asked for and a body
that names how many requests the origin had seen, so a HIT shows an old count."""

from __future__ import annotations

import email.utils
import json
import re
import socket
import threading
import time
from urllib.parse import quote

import pytest
from support.client import Client, ClientError, build, request
from support.edge import site_config
from support.origin import pattern_bytes


def cacheable(name: str, *headers: str, status: int = 200) -> str:
    query = "&".join("h=" + quote(h, safe="") for h in headers)
    if status != 200:
        query += f"&status={status}"
    return f"/cacheable/{name}?{query}"


def seen(origin, name: str) -> int:
    return sum(1 for r in origin.requests if r.target.startswith(f"/cacheable/{name}"))


def wait_in_flight(edge, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = edge.admin("/metrics").text
        found = re.search(r"^og_in_flight_requests (\S+)", metrics, re.M)
        if found and float(found.group(1)) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} requests in flight after {timeout}s")


def purge(edge, document: dict) -> dict:
    body = json.dumps(document).encode()
    reply = request(
        edge.admin_port,
        "POST",
        "/purge",
        host="127.0.0.1",
        headers=[("Content-Type", "application/json"), ("Connection", "close")],
        body=body,
    )
    assert reply.status == 200, reply.text()
    return json.loads(reply.body)


def test_static_file_is_a_miss_then_a_hit_and_the_origin_sees_one_request(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("app.css", "Cache-Control:max-age=300", "Content-Type:text/css")
    first = edge.get(target)
    second = edge.get(target)
    assert first.header("og-cache-status") == "MISS"
    assert first.header("age") is None
    assert "stored" in (first.header("cache-status") or "")
    assert second.header("og-cache-status") == "HIT"
    assert second.body == first.body
    assert int(second.header("age") or "-1") >= 0
    assert (second.header("cache-status") or "").startswith("originguard; hit")
    assert seen(origin_a, "app.css") == 1


def test_the_origin_server_header_never_reaches_visitors(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    stored = cacheable("srv.css", "Cache-Control:max-age=300", "Server:Apache/2.4.1 (Unix)")
    dynamic = cacheable("srv.html", "Server:Apache/2.4.1 (Unix)")
    replies = [edge.get(stored), edge.get(stored), edge.get(dynamic), edge.get("/", host="x.test")]
    assert [r.header("og-cache-status") for r in replies[:3]] == ["MISS", "HIT", "DYNAMIC"]
    assert [r.header_values("server") for r in replies] == [["originguard"]] * 4


def test_html_is_dynamic_by_default_and_always_reaches_the_origin(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("page.html", "Cache-Control:max-age=300")
    statuses = [edge.get(target).header("og-cache-status") for _ in range(2)]
    assert statuses == ["DYNAMIC", "DYNAMIC"]
    assert seen(origin_a, "page.html") == 2


def test_a_cache_rule_makes_html_eligible_with_its_edge_ttl(start_edge, origin_a) -> None:
    rule = {"name": "pages", "when": {"extension": ["html"]}, "cache": True, "edge_ttl": "1h"}
    edge = start_edge(site_config(origin_a.address, zone={"cache": {"rules": [rule]}}))
    target = cacheable("page.html")
    assert edge.get(target).header("og-cache-status") == "MISS"
    assert edge.get(target).header("og-cache-status") == "HIT"
    assert seen(origin_a, "page.html") == 1


def test_a_cache_rule_over_a_missing_header_simply_does_not_match(start_edge, origin_a) -> None:
    # starts_with() of a header the request lacks is false (not an error), compiled or not.
    when = {"expression": 'starts_with(http.request.headers["x-beta"][0], "yes")'}
    rule = {"name": "beta", "when": when, "cache": True, "edge_ttl": "1h"}
    edge = start_edge(site_config(origin_a.address, zone={"cache": {"rules": [rule]}}))
    target = cacheable("beta.html")
    plain = [edge.get(target) for _ in range(2)]
    assert [(r.status, r.header("og-cache-status")) for r in plain] == [(200, "DYNAMIC")] * 2
    beta = [("X-Beta", "yes-please")]
    assert edge.get(target, headers=beta).header("og-cache-status") == "MISS"
    assert edge.get(target, headers=beta).header("og-cache-status") == "HIT"


def test_no_store_private_and_set_cookie_responses_are_bypassed(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    for name, header in [
        ("a.css", "Cache-Control:no-store"),
        ("b.css", "Cache-Control:private, max-age=60"),
        ("c.css", "Set-Cookie:session=1"),
    ]:
        target = cacheable(name, header)
        assert [edge.get(target).header("og-cache-status") for _ in range(2)] == [
            "BYPASS",
            "BYPASS",
        ], name
        assert seen(origin_a, name) == 2


def test_a_request_with_authorization_is_not_stored_unless_the_response_is_public(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    auth = [("Authorization", "Bearer x")]
    plain = cacheable("secret.js", "Cache-Control:max-age=60")
    public = cacheable("shared.js", "Cache-Control:public, max-age=60")
    assert edge.get(plain, headers=auth).header("og-cache-status") == "BYPASS"
    assert edge.get(plain).header("og-cache-status") == "MISS"
    edge.get(public, headers=auth)
    assert edge.get(public).header("og-cache-status") == "HIT"


def test_concurrent_misses_make_exactly_one_origin_request(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    replies = []
    lock = threading.Lock()

    def visitor() -> None:
        reply = edge.get("/hold/collapse.css")
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=visitor) for _ in range(20)]
    for thread in threads:
        thread.start()
    origin_a.wait_for_requests(1)
    wait_in_flight(edge, 20)  # the other 19 wait behind the first, at the edge
    origin_a.release("collapse.css")
    for thread in threads:
        thread.join(10)
    assert len(replies) == 20
    assert {r.status for r in replies} == {200}
    assert sum(1 for r in origin_a.requests if r.target == "/hold/collapse.css") == 1
    statuses = sorted(r.header("og-cache-status") or "" for r in replies)
    assert statuses.count("MISS") == 1 and statuses.count("HIT") == 19


def test_a_request_collapsed_behind_another_variant_is_not_given_that_variant(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = "/hold/lang.css?vary=Accept-Language"
    replies: dict[str, object] = {}

    def visitor(language: str) -> None:
        replies[language] = edge.get(target, headers=[("Accept-Language", language)])

    english = threading.Thread(target=visitor, args=("en",))
    english.start()
    origin_a.wait_for_requests(1)
    french = threading.Thread(target=visitor, args=("fr",))
    french.start()
    wait_in_flight(edge, 2)  # fr waits behind en's fill of the same key
    origin_a.release("lang.css")
    english.join(10)
    french.join(10)
    bodies = {lang: reply.body for lang, reply in replies.items()}  # type: ignore[attr-defined]
    assert bodies == {
        "en": b"released lang.css Accept-Language=en",
        "fr": b"released lang.css Accept-Language=fr",
    }
    french_again = edge.get(target, headers=[("Accept-Language", "fr")])
    assert french_again.header("og-cache-status") == "HIT"


def test_stale_while_revalidate_serves_stale_and_refreshes_once_in_the_background(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("swr.js", "Cache-Control:max-age=0, stale-while-revalidate=60", 'ETag:"v1"')
    first = edge.get(target)
    second = edge.get(target)
    assert first.header("og-cache-status") == "MISS"
    assert second.header("og-cache-status") == "UPDATING"
    assert second.body == first.body
    refreshed = origin_a.wait_for_requests(2)
    assert refreshed[-1].header("if-none-match") == '"v1"'


def test_an_expired_entry_is_revalidated_with_its_etag(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("reval.js", "Cache-Control:max-age=0", 'ETag:"r1"')
    first = edge.get(target)
    second = edge.get(target)
    assert first.header("og-cache-status") == "MISS"
    assert second.header("og-cache-status") == "REVALIDATED"
    assert second.status == 200 and second.body == first.body
    assert origin_a.requests[-1].header("if-none-match") == '"r1"'


def test_stale_if_error_serves_the_stale_copy_when_the_origin_is_down(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("sie.js", "Cache-Control:max-age=0, stale-if-error=300", 'ETag:"s1"')
    first = edge.get(target)
    origin_a.stop()
    stale = edge.get(target)
    assert stale.status == 200
    assert stale.body == first.body
    assert stale.header("og-cache-status") == "STALE"
    assert "Stale" in (stale.header("warning") or "")


def test_always_online_serves_stale_instead_of_a_521(start_edge, origin_a) -> None:
    edge = start_edge(
        site_config(origin_a.address, zone={"cache": {"always_online": True}})
    )
    target = cacheable("ao.css", "Cache-Control:max-age=0", 'ETag:"a1"')
    first = edge.get(target)
    origin_a.stop()
    stale = edge.get(target)
    assert (stale.status, stale.header("og-cache-status")) == (200, "STALE")
    assert stale.body == first.body
    without_copy = edge.get(cacheable("never-cached.css"))
    assert without_copy.status == 521


def test_conditional_and_range_requests_are_answered_from_the_cached_object(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("cond.js", "Cache-Control:max-age=300", 'ETag:"c1"')
    full = edge.get(target)
    not_modified = edge.get(target, headers=[("If-None-Match", 'W/"c1"')])
    assert not_modified.status == 304 and not_modified.body == b""
    partial = edge.get(target, headers=[("Range", "bytes=0-3")])
    assert partial.status == 206
    assert partial.body == full.body[:4]
    assert partial.header("content-range") == f"bytes 0-3/{len(full.body)}"
    beyond = edge.get(target, headers=[("Range", "bytes=9000-9999")])
    assert beyond.status == 416
    assert beyond.header("content-range") == f"bytes */{len(full.body)}"
    assert seen(origin_a, "cond.js") == 1


def test_a_range_request_that_misses_gets_its_206_while_the_whole_object_is_stored(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("seek.js", "Cache-Control:max-age=300", 'ETag:"s1"')
    partial = edge.get(target, headers=[("Range", "bytes=2-5")])
    assert partial.status == 206 and partial.header("og-cache-status") == "MISS"
    full = edge.get(target)
    assert full.status == 200 and full.header("og-cache-status") == "HIT"
    assert partial.body == full.body[2:6]
    assert partial.header("content-range") == f"bytes 2-5/{len(full.body)}"
    assert partial.header("content-length") == "4"
    (fill,) = [r for r in origin_a.requests if r.target.startswith("/cacheable/seek.js")]
    assert fill.header("range") is None  # the whole object was fetched to be stored


def test_a_range_miss_is_cut_from_a_large_streamed_body(start_edge, origin_a) -> None:
    rule = {"name": "bytes", "when": {"path_prefix": ["/bytes/"]}, "cache": True, "edge_ttl": "1h"}
    edge = start_edge(site_config(origin_a.address, zone={"cache": {"rules": [rule]}}))
    size = 3 * 1024 * 1024  # many origin reads: the range spans several of them
    target = f"/bytes/{size}"
    partial = edge.get(target, headers=[("Range", "bytes=100000-2999999")])
    assert partial.status == 206
    assert partial.header("content-range") == f"bytes 100000-2999999/{size}"
    assert partial.body == pattern_bytes(size)[100000:3000000]
    suffix = edge.get(target, headers=[("Range", "bytes=-10")])
    assert suffix.header("og-cache-status") == "HIT" and suffix.body == pattern_bytes(size)[-10:]


def test_a_body_larger_than_the_memory_tier_streams_whole_and_is_not_stored(
    start_edge, origin_a
) -> None:
    # No disk tier: the memory tier's size bounds what can be kept, whatever the zone allows.
    rule = {"name": "big", "when": {"path_prefix": ["/bytes/", "/chunked/"]}, "cache": True,
            "edge_ttl": "1h"}
    zone = {"cache": {"rules": [rule]}}
    edge = start_edge(site_config(origin_a.address, zone=zone, cache={"memory": "1MB"}))
    size = 2 * 1000 * 1000
    for target in (f"/bytes/{size}", f"/chunked/{size}"):  # length known up front, and not
        replies = [edge.get(target) for _ in range(2)]
        assert [len(r.body) for r in replies] == [size, size], target
        assert all(r.body == pattern_bytes(size) for r in replies)
        assert sum(1 for r in origin_a.requests if r.target == target) == 2


def test_a_large_memory_hit_is_written_in_slices_and_a_client_leaving_is_an_abort(
    start_edge, origin_a
) -> None:
    rule = {"name": "big", "when": {"path_prefix": ["/bytes/"]}, "cache": True, "edge_ttl": "1h"}
    edge = start_edge(site_config(origin_a.address, zone={"cache": {"rules": [rule]}}))
    size = 3 * 1024 * 1024 + 7
    target = f"/bytes/{size}"
    edge.get(target)
    hit = edge.get(target)
    assert hit.header("og-cache-status") == "HIT" and hit.body == pattern_bytes(size)
    with socket.socket() as slow:  # a small receive buffer, reads a little, then leaves
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(5)
        slow.connect(("127.0.0.1", edge.port))
        slow.sendall(build("GET", target, host="site.test"))
        slow.recv(1024)
        time.sleep(0.2)  # the edge fills the socket buffers and waits on the client
    entry = edge.wait_for_log(lambda e: e.get("path") == target and e["outcome"] == "client_abort")
    assert entry["cache"] == "HIT" and entry["bytes_out"] < size
    assert "internal error" not in edge.stderr()


def test_a_fill_whose_client_leaves_still_completes_and_is_stored(start_edge, origin_a) -> None:
    # Spec §8.1: the edge finishes a cacheable download after its client disconnects, so one
    # visitor who gives up cannot make the next ones go to the origin again.
    rule = {"name": "big", "when": {"path_prefix": ["/bytes/"]}, "cache": True, "edge_ttl": "1h"}
    edge = start_edge(site_config(origin_a.address, zone={"cache": {"rules": [rule]}}))
    size = 8 * 1024 * 1024
    target = f"/bytes/{size}"
    with socket.socket() as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(5)
        slow.connect(("127.0.0.1", edge.port))
        slow.sendall(build("GET", target, host="site.test"))
        slow.recv(1024)
        time.sleep(0.2)  # the edge pauses the origin behind the slow client
    edge.wait_for_log(lambda e: e.get("path") == target and e["outcome"] == "client_abort")
    hit = edge.get(target)
    assert hit.header("og-cache-status") == "HIT" and hit.body == pattern_bytes(size)
    assert sum(1 for r in origin_a.requests if r.target == target) == 1


def test_a_range_miss_gets_the_full_200_when_the_range_cannot_be_cut(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    several = edge.get(
        cacheable("multi.js", "Cache-Control:max-age=300"), headers=[("Range", "bytes=0-1,4-5")]
    )
    assert several.status == 200 and several.header("content-range") is None
    unsatisfiable = edge.get(
        cacheable("far.js", "Cache-Control:max-age=300"), headers=[("Range", "bytes=9000-")]
    )
    assert unsatisfiable.status == 200
    other_version = edge.get(
        cacheable("ifrange.js", "Cache-Control:max-age=300", 'ETag:"new"'),
        headers=[("Range", "bytes=0-1"), ("If-Range", '"old"')],
    )
    assert other_version.status == 200 and other_version.header("og-cache-status") == "MISS"


def test_head_is_answered_from_a_cached_get(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("head.png", "Cache-Control:max-age=300", "Content-Type:image/png")
    full = edge.get(target)
    head = edge.request("HEAD", target)
    assert head.header("og-cache-status") == "HIT"
    assert head.body == b""
    assert head.header("content-length") == str(len(full.body))
    assert seen(origin_a, "head.png") == 1


def test_an_unsafe_request_invalidates_the_cached_uri(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("inval.js", "Cache-Control:max-age=300")
    edge.get(target)
    assert edge.get(target).header("og-cache-status") == "HIT"
    assert edge.request("POST", target, body=b"x").status == 200
    assert edge.get(target).header("og-cache-status") == "MISS"


def test_a_post_redirecting_to_the_root_invalidates_only_the_root(start_edge, origin_a) -> None:
    # RFC 9111 §4.4 invalidates the target and Location URIs themselves, not what lies under
    # them: a login form posting to / and redirecting to / must not empty the host's cache.
    edge = start_edge(site_config(origin_a.address))
    kept = [cacheable(n, "Cache-Control:max-age=300") for n in ("kept.css", "deep/kept.js")]
    for target in kept:
        edge.get(target)
    post = edge.request("POST", cacheable("login", "Location:/", status=302), body=b"x=1")
    assert post.status == 302
    assert [edge.get(t).header("og-cache-status") for t in kept] == ["HIT", "HIT"]


def test_a_body_cut_short_of_a_content_length_with_trailing_space_is_not_stored(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    for _ in range(2):
        with Client(edge.port) as client:
            client.send(build("GET", "/raw/short-spaced-length.css", host="site.test"))
            with pytest.raises(ClientError, match="body bytes missing"):
                client.read_reply()
    assert len(origin_a.requests) == 2


def test_origin_trailer_fields_are_neither_relayed_nor_stored(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    replies = [edge.get("/raw/trailers.css") for _ in range(2)]
    assert [r.header("og-cache-status") for r in replies] == ["MISS", "HIT"]
    for reply in replies:
        assert reply.body == b"hello"
        assert [reply.header(n) for n in ("x-injected", "access-control-allow-origin")] == [
            None,
            None,
        ]
        assert reply.header("set-cookie") is None


def test_an_invalid_location_after_an_unsafe_request_is_ignored(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("badloc.js", "Cache-Control:max-age=300")
    edge.get(target)
    deleted = edge.request("DELETE", cacheable("badloc.js", "Location:http://[::1"))
    assert deleted.status == 200
    assert edge.get(target).header("og-cache-status") == "MISS"


def test_dates_in_year_zero_are_invalid_not_errors(start_edge, origin_a) -> None:
    year_zero = "Sat, 01 Jan 0000 00:00:00 GMT"
    edge = start_edge(site_config(origin_a.address))
    expired = cacheable("y0.css", f"Expires:{year_zero}")  # an invalid Expires: already stale
    replies = [edge.get(expired) for _ in range(2)]
    assert [r.status for r in replies] == [200, 200]
    assert seen(origin_a, "y0.css") == 2
    target = cacheable("ims0.css", "Cache-Control:max-age=300", f"Last-Modified:{year_zero}")
    edge.get(target)
    conditional = edge.get(target, headers=[("If-Modified-Since", year_zero)])
    assert (conditional.status, conditional.header("og-cache-status")) == (200, "HIT")
    assert json.loads(edge.admin("/status").body)["in_flight"] == 0


def test_cache_tag_is_hidden_from_clients_and_purges_by_tag(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("tagged.css", "Cache-Control:max-age=300", "Cache-Tag:Product-7, all")
    first = edge.get(target)
    assert first.header("cache-tag") is None
    assert edge.get(target).header("og-cache-status") == "HIT"
    result = purge(edge, {"tags": ["product-7"]})
    assert result["removed"] == 1
    assert edge.get(target).header("og-cache-status") == "MISS"


def test_purge_by_url_finds_objects_under_a_rule_key_and_non_ascii_paths(
    start_edge, origin_a
) -> None:
    rule = {"name": "only h", "when": {"path_prefix": ["/cacheable/"]},
            "key": {"query": "include", "query_params": ["h"]}}
    edge = start_edge(site_config(origin_a.address, zone={"cache": {"rules": [rule]}}))
    keyed = cacheable("keyed.css", "Cache-Control:max-age=300")
    accented = cacheable("caf%C3%A9.css", "Cache-Control:max-age=300")
    bracketed = cacheable("b[1].css", "Cache-Control:max-age=300") + "&h=X-A:[]"
    edge.get(keyed + "&utm=1")
    for target in (accented, bracketed):
        edge.get(target)
    assert edge.get(keyed + "&utm=2").header("og-cache-status") == "HIT"  # utm not in the key
    result = purge(edge, {"files": [f"http://site.test{keyed}&utm=3",
                                    "http://site.test" + accented.replace("caf%C3%A9", "café"),
                                    f"http://site.test{bracketed}"]})
    assert result["removed"] == 3
    statuses = [edge.get(t).header("og-cache-status") for t in (keyed, accented, bracketed)]
    assert statuses == ["MISS"] * 3


def test_purge_by_url_prefix_host_and_everything(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    one = cacheable("p1.css", "Cache-Control:max-age=300")
    two = cacheable("p2.css", "Cache-Control:max-age=300")
    for target in (one, two):
        edge.get(target)
    assert purge(edge, {"files": [f"http://site.test{one}"]})["removed"] == 1
    assert edge.get(one).header("og-cache-status") == "MISS"
    assert edge.get(two).header("og-cache-status") == "HIT"
    assert purge(edge, {"prefixes": ["site.test/cacheable"]})["removed"] == 2
    edge.get(one)
    assert purge(edge, {"hosts": ["site.test"]})["removed"] == 1
    edge.get(two)
    assert purge(edge, {"purge_everything": True})["removed"] == 1


def test_a_malformed_purge_is_refused_and_removes_nothing(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("keep.css", "Cache-Control:max-age=300")
    edge.get(target)
    reply = request(
        edge.admin_port,
        "POST",
        "/purge",
        host="127.0.0.1",
        headers=[("Content-Type", "application/json"), ("Connection", "close")],
        body=json.dumps({"prefixes": ["site.test/a?b=1"], "tags": ["ok"]}).encode(),
    )
    assert reply.status == 400
    assert edge.get(target).header("og-cache-status") == "HIT"


def test_vary_star_is_never_stored_and_accept_encoding_variants_are_normalised(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    star = cacheable("star.js", "Cache-Control:max-age=300", "Vary:*")
    assert edge.get(star).header("og-cache-status") == "BYPASS"
    varied = cacheable("enc.js", "Cache-Control:max-age=300", "Vary:Accept-Encoding")
    edge.get(varied, headers=[("Accept-Encoding", "gzip, deflate")])
    same_bucket = edge.get(varied, headers=[("Accept-Encoding", "deflate, gzip")])
    assert same_bucket.header("og-cache-status") == "HIT"
    other = edge.get(varied, headers=[("Accept-Encoding", "identity")])
    assert other.header("og-cache-status") == "MISS"


def test_a_just_modified_file_without_cache_control_gets_the_default_ttl(
    start_edge, origin_a
) -> None:
    # Spec §8.1: no freshness headers ⇒ the default TTL by status (2 h for a 200), not the
    # RFC 9111 heuristic, which would make a file modified a second ago stale at once.
    just_now = email.utils.formatdate(time.time() - 1, usegmt=True)
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("deployed.js", f"Last-Modified:{just_now}", 'ETag:"d1"')
    assert edge.get(target).header("og-cache-status") == "MISS"
    hit = edge.get(target)
    assert hit.header("og-cache-status") == "HIT"
    assert seen(origin_a, "deployed.js") == 1


def test_with_default_ttls_off_only_the_heuristic_applies(start_edge, origin_a) -> None:
    # Modified in the second the response is dated: the heuristic gives no freshness at all.
    now = email.utils.formatdate(time.time(), usegmt=True)
    edge = start_edge(site_config(origin_a.address, zone={"cache": {"default_ttls": False}}))
    target = cacheable("heuristic.js", f"Date:{now}", f"Last-Modified:{now}", 'ETag:"h1"')
    edge.get(target)
    assert edge.get(target).header("og-cache-status") == "REVALIDATED"
