#!/usr/bin/env bash
# Waiting-room overhead for already-admitted visitors: requests/s through a room vs the same
# route without one, side by side, on one originguard process in front of an nginx origin.
#   bash bench/waiting_room_bench.sh [seconds per run, 5] [connections, 32] [rounds, 6]
# One zone serves room.local (covered by a room) and plain.local (no room), same origin, same
# 1 KiB file. The admitted ticket comes from the edge itself (one curl), then every wrk request
# carries it; the session lasts 30 min, so it stays valid for the whole run. Rounds alternate
# plain/room so drift (CPU frequency, neighbours) hits both sides alike.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNS=${2:-32}
ROUNDS=${3:-6}
WORK=$(mktemp -d /tmp/og-wrbench.XXXXXX)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx is required as the origin (apt-get install nginx)"; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(free_port); OG=$(free_port); OG_ADMIN=$(free_port)
chmod 755 "$WORK"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/1k"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon on;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$ORIGIN reuseport; location / { root $WORK; } }
}
CONF
cat > "$WORK/originguard.yaml" <<CONF
listen: "127.0.0.1:$OG"
admin: {listen: "127.0.0.1:$OG_ADMIN"}
access_log: {enabled: false}
zones:
  - name: bench
    hostnames: [room.local, plain.local]
    pools:
      - name: main
        max_idle_connections: 128
        origins: [{address: "127.0.0.1:$ORIGIN"}]
    waiting_room:
      keys: [{id: bench, secret: "\${OG_BENCH_ROOM_KEY}"}]
      rooms:
        - name: bench
          host: room.local
          total_active_users: 1000
          new_users_per_minute: 1000
          session_duration: 30m
CONF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -g "pid $WORK/nginx.pid;"
OG_BENCH_ROOM_KEY=$(head -c 24 /dev/urandom | base64) \
  .venv/bin/originguard serve -c "$WORK/originguard.yaml" --log-level warning 2> "$WORK/og.err" &
echo $! > "$WORK/og.pid"
for _ in $(seq 100); do curl -fs -o /dev/null -H "Host: plain.local" "http://127.0.0.1:$OG/1k" && break; sleep 0.1; done

COOKIE=$(curl -fs -D - -o /dev/null -H "Host: room.local" "http://127.0.0.1:$OG/1k" \
  | awk 'tolower($1)=="set-cookie:" {sub(/;.*/, "", $2); print $2}' | tr -d '\r')
[ -n "$COOKIE" ] || { echo "no ticket from the room"; cat "$WORK/og.err"; exit 1; }
# Admitted, not queued: the origin answers with the file.
curl -fs -H "Host: room.local" -H "Cookie: $COOKIE" "http://127.0.0.1:$OG/1k" | grep -q '^x' \
  || { echo "the ticket does not admit"; exit 1; }

run() {  # name host [cookie] -> rps on stdout
  local extra=()
  [ -n "${3:-}" ] && extra=(-H "Cookie: $3")
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $2" "${extra[@]}" \
    "http://127.0.0.1:$OG/1k" > "$WORK/$1.txt"
  if grep -q "Non-2xx" "$WORK/$1.txt"; then echo "non-2xx answers in $1:"; cat "$WORK/$1.txt"; exit 1; fi
  awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt"
}

fresh_cookie() {  # a browser keeps the re-sealed ticket; wrk cannot, so refresh it per round
  local new
  new=$(curl -fs -D - -o /dev/null -H "Host: room.local" -H "Cookie: $COOKIE" "http://127.0.0.1:$OG/1k" \
    | awk 'tolower($1)=="set-cookie:" {sub(/;.*/, "", $2); print $2}' | tr -d '\r')
  [ -n "$new" ] && COOKIE=$new
  return 0
}

echo "wrk -t1 -c$CONNS -d${DURATION}s per run, 1 KiB file, loopback, $(nproc) cores, $ROUNDS rounds"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run warmup plain.local > /dev/null
printf '%-6s %14s %14s %9s\n' round "no room" "admitted" overhead
for round in $(seq "$ROUNDS"); do
  fresh_cookie
  if [ $((round % 2)) -eq 1 ]; then
    plain=$(run "plain$round" plain.local); room=$(run "room$round" room.local "$COOKIE")
  else
    room=$(run "room$round" room.local "$COOKIE"); plain=$(run "plain$round" plain.local)
  fi
  echo "$round $plain $room" >> "$WORK/rounds"
  awk -v r="$round" -v p="$plain" -v m="$room" \
    'BEGIN {printf "%-6s %10.0f r/s %10.0f r/s %8.1f%%\n", r, p, m, (p - m) / p * 100}'
done
awk '{p += $2; m += $3} END {printf "%-6s %10.0f r/s %10.0f r/s %8.1f%%\n", "mean", p/NR, m/NR, (p - m) / p * 100}' "$WORK/rounds"
awk '{print ($2 - $3) / $2 * 100}' "$WORK/rounds" | sort -n \
  | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
         printf "median overhead of the rounds: %.1f%%\n", m}'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -fs "http://127.0.0.1:$OG_ADMIN/waiting-rooms" | python3 -c 'import json, sys
room = json.load(sys.stdin)["rooms"][0]
print("room after the runs: active_users", room["active_users"], "queued_users", room["queued_users"])'
curl -fs "http://127.0.0.1:$OG_ADMIN/metrics" | grep -E "^og_waiting_room_(admissions|queue_pages)_total" || true

# The gate alone, in process: microseconds per admitted request (no network, no origin).
.venv/bin/python - <<'PY'
import asyncio, time
from types import SimpleNamespace
from originguard.exchange import Exchange
from originguard.http.messages import RequestHead
from originguard.protect.waiting_room.gate import RoomGate, rooms_of
from originguard.protect.waiting_room.registry import RoomRegistry
from originguard.protect.waiting_room.section import WaitingRoomSection

section = WaitingRoomSection.model_validate({
    "keys": [{"id": "k", "secret": "bench-secret-0123456789"}],
    "rooms": [{"name": "r", "host": "room.local", "total_active_users": 10,
               "new_users_per_minute": 10}],
})
registry = RoomRegistry()
gate = RoomGate({"z": rooms_of("z", section, registry)}, registry)

def exchange(cookie: bytes | None) -> Exchange:
    headers = [(b"host", b"room.local")] + ([(b"cookie", cookie)] if cookie else [])
    head = RequestHead(b"GET", b"/1k", b"/1k", b"", b"1.1", headers, b"room.local")
    ex = Exchange(SimpleNamespace(scheme=b"http"), head, None, "r", 0.0, client_ip="127.0.0.1")
    ex.zone = SimpleNamespace(name="z")
    return ex

async def main() -> None:
    first = exchange(None)
    await gate.on_request(first)
    seated = exchange(first.waiting_room_cookie.split(b";")[0])
    n = 100_000
    started = time.perf_counter()
    for _ in range(n):
        await gate.on_request(seated)
    print(f"gate in process: {(time.perf_counter() - started) / n * 1e6:.2f} µs per admitted request")

asyncio.run(main())
PY
