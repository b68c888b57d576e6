#!/usr/bin/env bash
# Pass-through throughput: originguard vs nginx proxy_pass, side by side, one process each.
#   bash bench/run.sh [seconds] [connections]
# Installs wrk and nginx from Debian when missing. Prints requests/s, p50/p99 and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
WORK=$(mktemp -d /tmp/og-bench.XXXXXX)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${need[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x .venv/bin/originguard ] || make install

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(free_port); NGINX_PROXY=$(free_port); OG=$(free_port); OG_ADMIN=$(free_port)
BARE=$(free_port)

chmod 755 "$WORK"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/1k"
sed -e "s|@ORIGIN@|$ORIGIN|g" -e "s|@PROXY@|$NGINX_PROXY|g" -e "s|@WORK@|$WORK|g" \
  bench/nginx.conf.in > "$WORK/nginx.conf"
sed -e "s|@ORIGIN@|$ORIGIN|g" -e "s|@OG@|$OG|g" -e "s|@ADMIN@|$OG_ADMIN|g" \
  bench/originguard.yaml.in > "$WORK/originguard.yaml"

"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -g "pid $WORK/nginx.pid;"
.venv/bin/originguard serve -c "$WORK/originguard.yaml" --log-level warning 2> "$WORK/og.err" &
echo $! > "$WORK/og.pid"
.venv/bin/python bench/baseline_passthrough.py "$BARE" "$ORIGIN" &
echo $! > "$WORK/bare.pid"
for port in $ORIGIN $NGINX_PROXY $OG $BARE; do
  for _ in $(seq 100); do curl -fs -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$port/1k" && break; sleep 0.1; done
done

run() {  # name url -> "rps p50 p99"
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: bench.local" "$2" > "$WORK/$1.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/$1.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$1.txt")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/$1.txt" | tr '\n' ' ')
  printf '%-28s %12s req/s   p50 %-9s p99 %-9s %s\n' "$1" "$rps" "$p50" "$p99" "$errors"
  echo "$rps" > "$WORK/$1.rps"
}

[ -s "$WORK/og.err" ] && cat "$WORK/og.err"
echo "wrk -t2 -c$CONNS -d${DURATION}s, 1 KiB response, loopback, $(nproc) cores"
curl -fs -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$OG/1k"  # warm the origin connection pool
run "origin (nginx, direct)" "http://127.0.0.1:$ORIGIN/1k"
run "nginx proxy_pass" "http://127.0.0.1:$NGINX_PROXY/1k"
run "bare uvloop+httptools" "http://127.0.0.1:$BARE/1k"
run "originguard" "http://127.0.0.1:$OG/1k"
python3 - "$WORK" <<'PY'
import sys, pathlib
w = pathlib.Path(sys.argv[1])
og = float((w / "originguard.rps").read_text())
ng = float((w / "nginx proxy_pass.rps").read_text())
bare = float((w / "bare uvloop+httptools.rps").read_text())
print(f"ratio originguard / nginx proxy_pass = {og / ng:.2f}")
print(f"ratio originguard / bare Python pass-through = {og / bare:.2f}")
PY
