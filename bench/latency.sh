#!/usr/bin/env bash
# Added latency at a fixed request rate: wrk with a per-connection delay (open-ish loop),
# nginx proxy_pass vs originguard in front of the same nginx origin, one process each.
#   bash bench/latency.sh RATE [seconds] [connections]   e.g. bash bench/latency.sh 21000 10 64
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:?requests per second}
DURATION=${2:-10}
CONNS=${3:-32}
WORK=$(mktemp -d /tmp/og-lat.XXXXXX)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(free_port); NGINX_PROXY=$(free_port); OG=$(free_port); OG_ADMIN=$(free_port)
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/1k"
sed -e "s|@ORIGIN@|$ORIGIN|g" -e "s|@PROXY@|$NGINX_PROXY|g" -e "s|@WORK@|$WORK|g" \
  bench/nginx.conf.in > "$WORK/nginx.conf"
sed -e "s|@ORIGIN@|$ORIGIN|g" -e "s|@OG@|$OG|g" -e "s|@ADMIN@|$OG_ADMIN|g" \
  bench/originguard.yaml.in > "$WORK/originguard.yaml"
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -g "pid $WORK/nginx.pid;"
.venv/bin/originguard serve -c "$WORK/originguard.yaml" --log-level warning 2> "$WORK/og.err" &
echo $! > "$WORK/og.pid"
for port in $ORIGIN $NGINX_PROXY $OG; do
  for _ in $(seq 100); do curl -fs -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$port/1k" && break; sleep 0.1; done
done
# Each connection waits CONNS/RATE seconds between requests: RATE requests/s in all.
delay_ms=$(python3 -c "print(max(1, round($CONNS * 1000 / $RATE)))")
cat > "$WORK/paced.lua" <<LUA
function delay() return $delay_ms end
LUA
run() {
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/paced.lua" -H "Host: bench.local" "$2" > "$WORK/$1.txt"
  printf '%-18s %10s req/s   p50 %-9s p99 %-9s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt")" \
    "$(awk '$1=="50%" {print $2}' "$WORK/$1.txt")" "$(awk '$1=="99%" {print $2}' "$WORK/$1.txt")"
}
echo "target $RATE req/s ($CONNS connections, ${delay_ms} ms apart), ${DURATION}s, 1 KiB"
run "origin direct" "http://127.0.0.1:$ORIGIN/1k"  # what a proxy's p99 is added to
run "nginx proxy_pass" "http://127.0.0.1:$NGINX_PROXY/1k"
run "originguard" "http://127.0.0.1:$OG/1k"
