"""Operating the edge: access log, admin API, SIGHUP reload, SIGTERM drain, `originguard check`."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from support.client import Client, ClientError, build, request
from support.edge import Edge, run_cli, site_config
from support.origin import Origin, refused_address

pytestmark = pytest.mark.integration

TOKEN = "s3cret-admin-token-for-tests"


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the Prometheus samples of `name` that carry `labels` (0 when none)."""
    pattern = rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$"
    total = 0.0
    for found in re.finditer(pattern, text, re.M):
        present = found.group(1) or ""
        if all(f'{key}="{value}"' in present for key, value in labels.items()):
            total += float(found.group(2))
    return total


def wait_until_refused(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.02)
    raise AssertionError(f"port {port} still accepts connections")


@dataclass
class Observed:
    """An edge whose site pool is a refused address then origin `b`, watched by several
    tests; metric assertions work on differences, so the tests may run in any order."""

    edge: Edge
    down: str
    b: Origin


@pytest.fixture(scope="module")
def observed(module_edges) -> Iterator[Observed]:
    b, down = Origin("b").start(), refused_address()
    edge = module_edges(site_config(down, b.address, node_id="edge-7"))
    yield Observed(edge, down, b)
    b.stop()


# -- access log --------------------------------------------------------------------------------


def test_access_log_line_describes_the_exchange(observed: Observed) -> None:
    edge = observed.edge
    replies = [edge.request("POST", f"/orders?n={i}", body=b"12345") for i in range(2)]
    retried = next(r for r in replies if len(edge.log_for_ray(r.header("og-ray"))["attempts"]) == 2)

    entry = edge.log_for_ray(retried.header("og-ray"))

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["time"])
    assert entry["client_ip"] == "127.0.0.1"
    assert entry["zone"] == "site"
    assert (entry["method"], entry["host"]) == ("POST", "site.test")
    assert entry["path"].startswith("/orders?n=")
    assert entry["status"] == 200
    assert entry["outcome"] == "retried"
    assert [(a["origin"], a["status"], a["error"]) for a in entry["attempts"]] == [
        (observed.down, 521, "refused"), (observed.b.address, 200, "")
    ]
    assert all(a["seconds"] >= 0 for a in entry["attempts"])
    assert entry["bytes_in"] == 5
    assert entry["bytes_out"] == len(retried.body)
    assert entry["seconds"] >= entry["upstream_seconds"] >= 0


def test_refused_request_is_logged_with_its_reason(observed: Observed) -> None:
    with Client(observed.edge.port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: site.test\r\nContent-Length: 0x5\r\n\r\n")
        reply = client.read_reply()

    entry = observed.edge.log_for_ray(reply.header("og-ray"))

    assert entry["status"] == 400
    assert entry["outcome"] == "bad_request"
    assert entry["client_ip"] == "127.0.0.1"
    assert entry["reason"]


# -- admin API ---------------------------------------------------------------------------------


def test_metrics_count_requests_attempts_failovers_and_rejections(observed: Observed) -> None:
    edge, down, b = observed.edge, observed.down, observed.b
    before = edge.admin("/metrics").text
    for i in range(4):
        assert edge.get(f"/m{i}").status == 200
    assert edge.get("/", host="nowhere.test").status == 421
    with Client(edge.port) as client:
        client.send(b"GET / HTTP/1.1\r\n\r\n")
        assert client.read_reply().status == 400

    reply = edge.admin("/metrics")

    def grew(name: str, **labels: str) -> float:
        return metric(reply.text, name, **labels) - metric(before, name, **labels)

    assert reply.status == 200
    assert reply.header("content-type").startswith("text/plain")
    assert grew("og_requests_total", zone="site", status_class="2xx") == 4
    assert grew("og_requests_total", status_class="4xx", outcome="no_zone") == 1
    assert grew("og_origin_attempts_total", origin=b.address, result="ok") == 4
    refused = grew("og_origin_attempts_total", origin=down, result="refused")
    assert refused >= 1
    assert grew("og_failover_retries_total", zone="site", code="521") == refused
    assert grew("og_rejected_requests_total", status="400") == 1
    assert grew("og_request_duration_seconds_count", zone="site") == 4
    assert grew("og_origin_response_seconds_count", zone="site") == 4
    assert "og_open_connections" in reply.text
    assert metric(reply.text, "og_in_flight_requests") == 0


def test_a_failure_with_no_other_origin_to_try_is_not_counted_as_a_retry(start_edge) -> None:
    edge = start_edge(site_config(refused_address()))
    before = edge.admin("/metrics").text
    assert edge.get("/alone").status == 521
    after = edge.admin("/metrics").text
    assert metric(after, "og_failover_retries_total", zone="site", code="521") == metric(
        before, "og_failover_retries_total", zone="site", code="521"
    )


def test_a_taken_listen_address_is_a_one_line_error_and_exit_1(tmp_path) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = site_config("127.0.0.1:9", listen=[f"127.0.0.1:{port}"])
        path = tmp_path / "busy.yaml"
        path.write_text(yaml.safe_dump(config))
        result = run_cli("serve", "-c", str(path))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_lists_zones_pools_and_origins(observed: Observed) -> None:
    edge = observed.edge
    edge.get("/")

    document = json.loads(edge.admin("/status").body)

    assert document["node_id"] == "edge-7"
    assert document["listen"] == [f"127.0.0.1:{edge.port}"]
    [zone] = document["zones"]
    assert zone["name"] == "site"
    assert zone["hostnames"] == ["site.test"]
    [pool] = zone["pools"]
    assert pool["name"] == "main"
    assert pool["steering"] == "round_robin"
    origins = pool["origins"]
    assert [o["address"] for o in origins] == [observed.down, observed.b.address]
    assert [o["idle_connections"] for o in origins][0] == 0
    assert [o["idle_connections"] for o in origins][1] >= 1
    assert document["in_flight"] == 0


def test_healthz_answers_ok(observed: Observed) -> None:
    reply = observed.edge.admin("/healthz")

    assert reply.status == 200
    assert json.loads(reply.body) == {"status": "ok"}


def edge_with_token(start_edge, origin: Origin) -> Edge:
    """An edge whose admin API wants TOKEN (read from the environment, as in production)."""
    config = site_config(origin.address)
    config["admin"]["token"] = "${OG_TEST_ADMIN_TOKEN}"
    return start_edge(config, env={"OG_TEST_ADMIN_TOKEN": TOKEN})


def test_admin_token_is_required_when_configured(start_edge, origin_a) -> None:
    edge = edge_with_token(start_edge, origin_a)

    anonymous = edge.admin("/metrics")
    wrong = edge.admin("/status", token="not-the-token-at-all")
    right = edge.admin("/status", token=TOKEN)
    health = edge.admin("/healthz")

    assert anonymous.status == 401
    assert anonymous.header("www-authenticate") == "Bearer"
    assert "og_requests" not in anonymous.text
    assert wrong.status == 401
    assert right.status == 200
    with Client(edge.admin_port) as client:  # bytes that are not UTF-8: still a plain 401
        client.send(b"GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \xff\xfe\r\n\r\n")
        assert client.read_reply().status == 401
    nested = request(edge.admin_port, "POST", "/purge", host="127.0.0.1",
                     headers=[("Authorization", f"Bearer {TOKEN}")],
                     body=b"[" * 100_000 + b"]" * 100_000)
    assert nested.status == 400
    assert json.loads(right.body)["zones"][0]["name"] == "site"
    assert health.status == 200


# -- SIGHUP reload ------------------------------------------------------------------------------


def test_purge_command_removes_a_url_and_explains_a_miss_or_a_missing_token(
    start_edge, origin_a
) -> None:
    edge = edge_with_token(start_edge, origin_a)
    edge.get("/cacheable/p.css?h=Cache-Control:max-age%3D300")
    admin = f"http://127.0.0.1:{edge.admin_port}"
    env = {**os.environ, "OG_ADMIN_TOKEN": TOKEN}
    url = "site.test/cacheable/p.css?h=Cache-Control:max-age%3D300"

    anonymous = run_cli("purge", "--admin", admin, "--url", f"http://{url}",
                        env={k: v for k, v in env.items() if k != "OG_ADMIN_TOKEN"})
    other_scheme = run_cli("purge", "--admin", admin, "--url", f"https://{url}", env=env)
    purged = run_cli("purge", "--admin", admin, "--url", f"http://{url}", env=env)

    assert anonymous.returncode == 1 and "OG_ADMIN_TOKEN is not set" in anonymous.stderr
    assert other_scheme.returncode == 0 and json.loads(other_scheme.stdout)["removed"] == 0
    assert "http:// and https:// are cached apart" in other_scheme.stderr
    assert purged.returncode == 0 and json.loads(purged.stdout)["removed"] == 1
    assert edge.get("/cacheable/p.css?h=Cache-Control:max-age%3D300").header(
        "og-cache-status"
    ) == "MISS"


def test_valid_reload_swaps_origins_without_dropping_an_in_flight_request(
    start_edge, origin_a, origin_b
) -> None:
    edge = start_edge(site_config(origin_a.address))
    with Client(edge.port) as slow, Client(edge.port) as kept:
        assert kept.request("GET", "/before").header("x-origin") == "a"
        slow.send(build("GET", "/hold/reload"))
        origin_a.wait_for_requests(2)

        log = edge.reload(site_config(origin_b.address))

        after_on_kept = kept.request("GET", "/after")
        after_new = edge.get("/fresh")
        origin_a.release("reload")
        slow_reply = slow.read_reply()

    assert "configuration reloaded" in log
    assert slow_reply.status == 200
    assert slow_reply.body == b"released reload"
    assert after_on_kept.header("x-origin") == "b"
    assert after_new.header("x-origin") == "b"
    assert metric(edge.admin("/metrics").text, "og_config_reloads_total", result="ok") == 1


def test_reloads_under_traffic_cause_no_client_errors(start_edge, origin_a, origin_b) -> None:
    edge = start_edge(site_config(origin_a.address))
    statuses: list[int] = []
    errors: list[str] = []
    done = threading.Event()

    def visitor() -> None:
        with Client(edge.port) as client:
            while not done.is_set():
                try:
                    statuses.append(client.request("GET", "/during").status)
                except (ClientError, OSError) as error:
                    errors.append(repr(error))
                    return

    threads = [threading.Thread(target=visitor) for _ in range(3)]
    for thread in threads:
        thread.start()
    for addresses in ([origin_b.address], [origin_a.address, origin_b.address],
                      [origin_a.address]):
        edge.reload(site_config(*addresses))
    done.set()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert len(statuses) > 0
    assert set(statuses) == {200}
    assert "Traceback" not in edge.stderr()


def test_reload_with_a_changed_timeout_applies_it(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))

    edge.reload(site_config(origin_a.address, zone={"timeouts": {"response_head": "300ms"}}))
    reply = edge.get("/hold/forever")

    assert reply.status == 524


def test_invalid_reload_is_logged_with_file_and_line_and_changes_nothing(
    start_edge, origin_a, origin_b
) -> None:
    edge = start_edge(site_config(origin_a.address))
    bad = yaml.safe_dump(site_config(origin_b.address), sort_keys=False).replace(
        "- address:", "- adress:"
    )
    line = 1 + bad.splitlines().index(next(x for x in bad.splitlines() if "adress" in x))

    log = edge.reload(bad)
    reply = edge.get("/still")

    assert "configuration reloaded" not in log
    found = edge.wait_for_stderr(r"reload rejected: (\S+?):(\d+): (\S+): (.+)$")
    path, at, field, _message = found.groups()
    assert path == str(edge.config_path)
    assert int(at) == line
    assert field.startswith("zones.0.pools.0.origins.0")
    assert reply.status == 200
    assert reply.header("x-origin") == "a"
    assert metric(edge.admin("/metrics").text, "og_config_reloads_total", result="rejected") == 1


def test_a_reload_that_moves_the_admin_api_is_rejected_and_the_token_still_holds(
    start_edge, origin_a
) -> None:
    edge = edge_with_token(start_edge, origin_a)
    moved = site_config(origin_a.address)
    moved["admin"] = {"listen": "127.0.0.2:0"}  # loopback: valid without a token

    edge.reload(yaml.safe_dump(moved))

    edge.wait_for_stderr(r"reload rejected: admin.listen changed")
    assert edge.admin("/status").status == 401
    assert edge.admin("/status", token=TOKEN).status == 200


def test_reload_with_broken_yaml_changes_nothing(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))

    edge.reload("zones: [\n  - name: site\n    hostnames: [site.test\n")
    reply = edge.get("/")

    edge.wait_for_stderr(rf"reload rejected: {re.escape(str(edge.config_path))}:\d+: ")
    assert reply.status == 200


# -- SIGTERM drain --------------------------------------------------------------------------------


def test_sigterm_lets_an_in_flight_request_finish_then_exits_0(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address))
    with Client(edge.port) as idle, Client(edge.port) as slow:
        assert idle.request("GET", "/warm").status == 200
        slow.send(build("GET", "/hold/drain"))
        origin_a.wait_for_requests(2)

        edge.terminate()
        wait_until_refused(edge.port)
        idle_closed = idle.is_closed()
        health = edge.admin("/healthz")
        origin_a.release("drain")
        reply = slow.read_reply()
        slow_closed = slow.is_closed()

    assert idle_closed
    assert health.status == 503
    assert json.loads(health.body) == {"status": "draining"}
    assert reply.status == 200
    assert reply.body == b"released drain"
    assert reply.header("connection") == "close"
    assert slow_closed
    assert edge.wait(10) == 0


def test_sigterm_gives_up_on_a_stuck_request_at_the_drain_deadline(start_edge, origin_a) -> None:
    edge = start_edge(site_config(origin_a.address, limits={"drain_timeout": "500ms"}))
    with Client(edge.port) as stuck:
        stuck.send(build("GET", "/hold/never"))
        origin_a.wait_for_requests(1)
        started = time.monotonic()

        edge.terminate()
        code = edge.wait(10)
        with pytest.raises(ClientError):
            stuck.read_reply()

    assert code == 0
    assert 0.4 < time.monotonic() - started < 5


# -- originguard check ----------------------------------------------------------------------------


def test_check_prints_the_normalised_config_with_secrets_redacted(tmp_path, origin_a) -> None:
    config = site_config(origin_a.address)
    config["admin"]["token"] = "${OG_TEST_ADMIN_TOKEN}"
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))

    result = run_cli("check", "-c", str(path), env={**os.environ, "OG_TEST_ADMIN_TOKEN": TOKEN})

    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert TOKEN not in result.stdout
    assert printed["admin"]["token"] == "***"
    zone = printed["zones"][0]
    assert zone["failover_codes"] == [521, 522, 523]
    origin = zone["pools"][0]["origins"][0]
    assert (origin["address"], origin["weight"], origin["enabled"]) == (
        origin_a.address, 1.0, True
    )
    assert "timeouts" in zone and "connect" in zone["timeouts"]
    assert "limits" in printed


def test_check_rejects_a_bad_config_with_file_line_path_and_message(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "zones:\n"
        "  - name: site\n"
        "    hostnames: [site.test]\n"
        "    pools:\n"
        "      - name: main\n"
        "        origins:\n"
        "          - address: 127.0.0.1:8080\n"
        "            weight: 2\n"
    )

    result = run_cli("check", "-c", str(path))

    assert result.returncode == 1
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:8: zones.0.pools.0.origins.0.weight: ")
    assert "Traceback" not in result.stderr


def test_check_names_an_unknown_key_at_its_line(tmp_path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("listen: 127.0.0.1:8080\nzone:\n  - name: site\n")

    result = run_cli("check", "-c", str(path))

    assert result.returncode == 1
    assert f"{path}:2: zone: " in result.stderr

