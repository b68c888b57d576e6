#!/usr/bin/env bash
# Cache-hit throughput: originguard's cache vs nginx proxy_cache, side by side, one process
# (one worker) each, 1 KiB and 100 KiB objects served from the cache.
#   bash bench/cache_bench.sh [seconds] [connections]
# Prints requests/s, p50/p99 per object size and the ratio originguard / nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
WORK=$(mktemp -d /tmp/og-cache-bench.XXXXXX)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x .venv/bin/originguard ] || make install

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(free_port); NGINX_CACHE=$(free_port); OG=$(free_port); OG_ADMIN=$(free_port)

chmod 755 "$WORK"
mkdir -m 755 "$WORK/www" "$WORK/nginx-cache"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/www/1k.css"
head -c 102400 /dev/zero | tr '\0' 'x' > "$WORK/www/100k.css"

# The origin (nginx, a separate server block of the same process) marks objects fresh for an
# hour; both caches then answer every request from their store.
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon on;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    proxy_cache_path $WORK/nginx-cache keys_zone=bench:10m max_size=256m;
    upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
    server {
        listen 127.0.0.1:$ORIGIN;
        location / { root $WORK/www; add_header Cache-Control "max-age=3600"; }
    }
    server {
        listen 127.0.0.1:$NGINX_CACHE;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
NGINX
cat > "$WORK/originguard.yaml" <<YAML
listen: "127.0.0.1:$OG"
admin:
  listen: "127.0.0.1:$OG_ADMIN"
access_log:
  enabled: false
zones:
  - name: bench
    hostnames: [bench.local]
    pools:
      - name: main
        max_idle_connections: 128
        origins:
          - address: "127.0.0.1:$ORIGIN"
YAML

"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -g "pid $WORK/nginx.pid;"
.venv/bin/originguard serve -c "$WORK/originguard.yaml" --log-level warning 2> "$WORK/og.err" &
echo $! > "$WORK/og.pid"
for port in $ORIGIN $NGINX_CACHE $OG; do
  for _ in $(seq 100); do curl -fs -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$port/1k.css" && break; sleep 0.1; done
done
# Fill both caches and check that the next answer is a hit.
for object in 1k.css 100k.css; do
  for port in $NGINX_CACHE $OG; do curl -fs -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$port/$object"; done
  ng=$(curl -fs -D - -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$NGINX_CACHE/$object" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status" {print $2}')
  og=$(curl -fs -D - -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$OG/$object" | tr -d '\r' | awk -F': ' 'tolower($1)=="og-cache-status" {print $2}')
  echo "$object: nginx $ng, originguard $og"
done

run() {  # name url -> prints a line, stores rps
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: bench.local" "$2" > "$WORK/$1.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/$1.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$1.txt")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/$1.txt" | tr '\n' ' ')
  printf '%-26s %12s req/s   p50 %-9s p99 %-9s %s\n' "$1" "$rps" "$p50" "$p99" "$errors"
  echo "$rps" > "$WORK/$1.rps"
}

echo "wrk -t2 -c$CONNS -d${DURATION}s, cache hits, loopback, $(nproc) cores"
for object in 1k 100k; do
  run "nginx proxy_cache $object" "http://127.0.0.1:$NGINX_CACHE/$object.css"
  run "originguard $object" "http://127.0.0.1:$OG/$object.css"
done
[ -s "$WORK/og.err" ] && cat "$WORK/og.err"
python3 - "$WORK" <<'PY'
import sys, pathlib
w = pathlib.Path(sys.argv[1])
for size in ("1k", "100k"):
    og = float((w / f"originguard {size}.rps").read_text())
    ng = float((w / f"nginx proxy_cache {size}.rps").read_text())
    print(f"{size:>5}: originguard {og:>10.0f}  nginx proxy_cache {ng:>10.0f}  ratio {og / ng:.2f}")
PY
