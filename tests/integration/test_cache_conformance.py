"""RFC 9111 behaviours the http-cache-tests conformance suite (bench/cache-tests.sh) found
missing, end to end through the edge. The origin route /cacheable/<name>?h=Name:Value sends
the headers asked for and a body naming the origin's request count, so a HIT shows an old
count."""

from __future__ import annotations

from urllib.parse import quote

from support.edge import site_config


def cacheable(name: str, *headers: str, status: int = 200) -> str:
    query = "&".join("h=" + quote(h, safe="") for h in headers)
    if status != 200:
        query += f"&status={status}"
    return f"/cacheable/{name}?{query}"


def seen(origin, name: str) -> int:
    return sum(1 for r in origin.requests if r.target.startswith(f"/cacheable/{name}"))


def test_age_from_the_origin_makes_an_old_response_stale_rfc9111_4_2_3(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("aged.css", "Cache-Control:max-age=3600", "Age:7200",
                       "Content-Type:text/css")  # fmt: skip
    edge.get(target)
    second = edge.get(target)
    assert second.header("og-cache-status") != "HIT"
    assert seen(origin_a, "aged.css") == 2


def test_age_on_a_hit_includes_the_age_the_origin_sent_rfc9111_5_1(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("young.css", "Cache-Control:max-age=3600", "Age:30",
                       "Content-Type:text/css")  # fmt: skip
    edge.get(target)
    second = edge.get(target)
    assert second.header("og-cache-status") == "HIT"
    assert int(second.header("age") or "0") >= 30
    assert seen(origin_a, "young.css") == 1


def test_unknown_status_with_explicit_freshness_is_served_from_cache_rfc9111_3(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("odd.css", "Cache-Control:max-age=3600", "Content-Type:text/css",
                       status=599)  # fmt: skip
    first = edge.get(target)
    second = edge.get(target)
    assert (first.status, second.status) == (599, 599)
    assert second.header("og-cache-status") == "HIT"
    assert second.body == first.body
    target = cacheable("odd-mu.css", "Cache-Control:max-age=3600, must-understand",
                       "Content-Type:text/css", status=599)  # fmt: skip
    edge.get(target)
    assert edge.get(target).header("og-cache-status") != "HIT"
    assert seen(origin_a, "odd-mu.css") == 2


def test_vary_accept_language_in_another_order_and_case_is_a_hit_rfc9111_4_1(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("lang.css", "Cache-Control:max-age=3600", "Vary:Accept-Language",
                       "Content-Type:text/css")  # fmt: skip
    edge.get(target, headers=[("Accept-Language", "en, de")])
    again = edge.get(target, headers=[("Accept-Language", "De,EN")])
    other = edge.get(target, headers=[("Accept-Language", "fr")])
    assert again.header("og-cache-status") == "HIT"
    assert other.header("og-cache-status") == "MISS"
    assert seen(origin_a, "lang.css") == 2


def test_cdn_cache_control_lets_the_edge_cache_what_cache_control_forbids_rfc9213(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("cdn.css", "Cache-Control:no-store", "CDN-Cache-Control:max-age=600",
                       "Content-Type:text/css")  # fmt: skip
    edge.get(target)
    second = edge.get(target)
    assert second.header("og-cache-status") == "HIT"
    assert seen(origin_a, "cdn.css") == 1
    # Downstream caches still get the origin's Cache-Control, and CDN-Cache-Control is
    # forwarded for CDN caches further down (RFC 9213 §3).
    assert second.header("cache-control") == "no-store"
    assert second.header("cdn-cache-control") == "max-age=600"


def test_surrogate_control_no_store_wins_over_a_fresh_cache_control(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("sc.css", "Cache-Control:max-age=10000", "Surrogate-Control:no-store",
                       "Content-Type:text/css")  # fmt: skip
    edge.get(target)
    assert edge.get(target).header("og-cache-status") != "HIT"
    assert seen(origin_a, "sc.css") == 2


def test_cache_fills_announce_the_surrogate_capability_and_drop_the_clients(
    start_edge, origin_a
) -> None:
    edge = start_edge(site_config(origin_a.address))
    edge.get(cacheable("cap.css", "Cache-Control:max-age=600"),
             headers=[("Surrogate-Capability", 'evil="Surrogate/1.0"')])  # fmt: skip

    request = next(r for r in origin_a.requests if r.target.startswith("/cacheable/cap.css"))
    assert request.header_values("surrogate-capability") == ['originguard="Surrogate/1.0"']


def test_serving_stale_follows_the_targeted_field_not_cache_control_rfc9213(
    start_edge, origin_a
) -> None:
    # Stale on arrival (Age 100 > 10): Cache-Control alone would allow serving it stale while
    # revalidating, but CDN-Cache-Control, which decides for this edge, does not.
    edge = start_edge(site_config(origin_a.address))
    target = cacheable("swr.css", "Cache-Control:max-age=10, stale-while-revalidate=600",
                       "CDN-Cache-Control:max-age=10", "Age:100", 'ETag:"v1"',
                       "Content-Type:text/css")  # fmt: skip
    edge.get(target)
    second = edge.get(target)

    assert second.header("og-cache-status") in ("EXPIRED", "REVALIDATED")
    assert seen(origin_a, "swr.css") == 2
