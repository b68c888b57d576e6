#!/usr/bin/env bash
# Requests/s through the real edge with 0, 20 and 200 custom rules, each with 5 rate-limit
# rules, beside the same edge with no security section; side by side in one run.
#   bash bench/rules_edge.sh [seconds per round] [connections] [rounds]
# The custom rules are bench/rules_bench.py's templates and none matches wrk's request, so
# every rule is evaluated; the 5 rate limits match it (with a limit no run reaches), so every
# request is also counted five times. Rounds alternate the four edges so a busy host skews
# them alike; the best round of each is printed with its ratio to the edge without rules.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNS=${2:-64}
ROUNDS=${3:-3}
WORK=$(mktemp -d /tmp/og-rules-bench.XXXXXX)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v wrk >/dev/null && [ -x "$NGINX" ] || { echo "needs wrk and nginx (see bench/run.sh)"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

chmod 755 "$WORK"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/1k"
ORIGIN=$(free_port)
sed -e "s|@ORIGIN@|$ORIGIN|g" -e "s|@PROXY@|$(free_port)|g" -e "s|@WORK@|$WORK|g" \
  bench/nginx.conf.in > "$WORK/nginx.conf"
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -g "pid $WORK/nginx.pid;"

NAMES=("no security section" "0 rules + 5 rate limits" "20 rules + 5 rate limits" "200 rules + 5 rate limits")
RULES=(none 0 20 200)
PORTS=()
for i in "${!RULES[@]}"; do
  port=$(free_port); PORTS+=("$port")
  sed -e "s|@ORIGIN@|$ORIGIN|g" -e "s|@OG@|$port|g" -e "s|@ADMIN@|$(free_port)|g" \
    bench/originguard.yaml.in > "$WORK/og$i.yaml"
  if [ "${RULES[$i]}" != none ]; then
    .venv/bin/python - "${RULES[$i]}" >> "$WORK/og$i.yaml" <<'PY'
import sys
sys.path.insert(0, "bench")
from rules_bench import TEMPLATES

count = int(sys.argv[1])
print("    security:")
if count:
    print("      rules:")
for i in range(count):
    expression = TEMPLATES[i % len(TEMPLATES)].format(i=i % 250)
    print(f"        - {{name: rule {i}, action: block, expression: '{expression}'}}")
print("      rate_limits:")
for i in range(5):
    print(f"        - name: limit {i}")
    print(f"          expression: 'http.request.method eq \"GET\" and not"
          f" starts_with(http.request.uri.path, \"/s{i}\")'")
    print("          characteristics: [ip.src]")
    print("          period: 60s")
    print("          requests_per_period: 1000000000")
print("lists:\n  office: [192.0.2.0/24]")  # top level again, after the zone
PY
  fi
  .venv/bin/originguard serve -c "$WORK/og$i.yaml" --log-level warning 2> "$WORK/og$i.err" &
  echo $! > "$WORK/og$i.pid"
done
for port in "$ORIGIN" "${PORTS[@]}"; do
  for _ in $(seq 100); do curl -fs -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$port/1k" && break; sleep 0.1; done
done
for i in "${!RULES[@]}"; do [ -s "$WORK/og$i.err" ] && cat "$WORK/og$i.err"; done

echo "wrk -t2 -c$CONNS -d${DURATION}s x $ROUNDS rounds, 1 KiB response, loopback, $(nproc) cores"
for round in $(seq "$ROUNDS"); do
  for i in "${!RULES[@]}"; do
    wrk -t2 -c"$CONNS" -d"${DURATION}s" -H "Host: bench.local" "http://127.0.0.1:${PORTS[$i]}/1k" > "$WORK/wrk$i.$round"
    awk '/Requests\/sec/ {print $2}' "$WORK/wrk$i.$round" >> "$WORK/rps$i"
    if grep -q "Non-2xx" "$WORK/wrk$i.$round"; then echo "${NAMES[$i]}: non-2xx answers!"; fi
  done
done
.venv/bin/python - "$WORK" "${NAMES[@]}" <<'PY'
import pathlib, sys
work, names = pathlib.Path(sys.argv[1]), sys.argv[2:]
best = [max(float(x) for x in (work / f"rps{i}").read_text().split()) for i in range(len(names))]
for i, name in enumerate(names):
    rounds = " ".join(f"{float(x):.0f}" for x in (work / f"rps{i}").read_text().split())
    ratio = best[i] / best[1]
    print(f"{name:<28}{best[i]:>10.0f} req/s  {ratio:5.2f} of 0 rules   (rounds: {rounds})")
print(f"cost of 200 rules: {1 - best[3] / best[1]:.1%} of throughput; of 20 rules: "
      f"{1 - best[2] / best[1]:.1%}")
PY
