#!/usr/bin/env bash
# The HTTP cache conformance suite (npm package http-cache-tests) against originguard as a
# shared cache: the suite's origin server, originguard in front of it caching every path
# (origin freshness respected), and the suite's command-line client against the edge.
#   bash bench/cache-tests.sh [test-id]
# Prints passed/failed counts per kind (required, optimal, check) and the failing required and
# optimal tests with the suite's message. With a test id, runs that one test verbosely.
# The package is installed under $CACHE_TESTS_DIR (default /tmp/og-cache-tests), never here.
# Set KEEP_RESULTS=path to keep the raw JSON results.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VERSION=0.4.5
CT_DIR=${CACHE_TESTS_DIR:-/tmp/og-cache-tests}
TEST_ID=${1:-}
WORK=$(mktemp -d /tmp/og-cache-tests-run.XXXXXX)
trap 'for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; rm -rf "$WORK"' EXIT

PKG="$CT_DIR/node_modules/http-cache-tests"
if [ ! -f "$PKG/package.json" ] || ! grep -q "\"version\": \"$VERSION\"" "$PKG/package.json"; then
  mkdir -p "$CT_DIR"
  (cd "$CT_DIR" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && npm install --no-audit --no-fund --silent "http-cache-tests@$VERSION")
fi
[ -x .venv/bin/originguard ] || make install

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(free_port); OG=$(free_port); OG_ADMIN=$(free_port)

# The suite's origin. Its configuration comes from npm_config_* variables (as `npm run` sets).
(cd "$PKG" && npm_config_protocol=http npm_config_port=$ORIGIN \
  npm_config_pidfile="$WORK/origin.pid" exec node server/server.mjs) > "$WORK/origin.log" 2>&1 &
echo $! > "$WORK/origin-shell.pid"

# The client addresses the edge as http://localhost:PORT, so the zone owns "localhost"
# (zones match names, not addresses). Every path is eligible and the origin's freshness wins.
# Two product defaults are turned off so the suite measures RFC 9111 rather than them:
# `default_ttls: false` drops the spec §8.2 default TTLs for responses without freshness (the
# Last-Modified heuristic applies; otherwise, with a validator they are stored to be
# revalidated, without one not at all), and strong ETags are passed unchanged, not weakened.
cat > "$WORK/originguard.yaml" <<YAML
listen: "127.0.0.1:$OG"
admin:
  listen: "127.0.0.1:$OG_ADMIN"
access_log:
  enabled: false
cache:
  memory: 256MB
zones:
  - name: cachetests
    hostnames: [localhost]
    pools:
      - name: main
        origins:
          - address: "127.0.0.1:$ORIGIN"
    cache:
      default_ttls: false
      rules:
        - name: everything
          when: {path_prefix: [/]}
          cache: true
          edge_ttl_mode: respect_origin
          respect_strong_etags: true
YAML
.venv/bin/originguard serve -c "$WORK/originguard.yaml" --log-level warning 2> "$WORK/og.err" &
echo $! > "$WORK/og.pid"
for port in $ORIGIN $OG; do
  for _ in $(seq 100); do
    curl -s -o /dev/null -H "Host: localhost" "http://127.0.0.1:$port/state/none" && break
    sleep 0.1
  done
done

# localhost must reach the IPv4 listener.
export NODE_OPTIONS="--dns-result-order=ipv4first"
cd "$PKG"
if [ -n "$TEST_ID" ]; then
  npm_config_base="http://localhost:$OG" npm_config_id="$TEST_ID" npm_package_config_id="" \
    node --no-warnings cli.mjs
  exit 0
fi
npm_config_base="http://localhost:$OG" npm_config_id="" npm_package_config_id="" \
  node --no-warnings cli.mjs > "$WORK/results.json"
[ -s "$WORK/og.err" ] && { echo "--- originguard stderr"; head -40 "$WORK/og.err"; }
if [ -n "${KEEP_RESULTS:-}" ]; then
  case $KEEP_RESULTS in /*) cp "$WORK/results.json" "$KEEP_RESULTS" ;; *) cp "$WORK/results.json" "$ROOT/$KEEP_RESULTS" ;; esac
fi

cat > "$WORK/summary.mjs" <<'JS'
// Counts as cache-tests.fyi shows them: a test whose dependency did not pass is not failed
// but "dependency not met" (its result would not mean what the test says).
import fs from 'fs'
import tests from './tests/index.mjs'
import surrogate from './tests/surrogate-control.mjs'
import { determineTestResult } from './lib/display.mjs'

const results = JSON.parse(fs.readFileSync(process.argv[2]))
const suites = [...tests, surrogate]
const names = { '✅': 'passed', Y: 'passed', '⛔️': 'failed', '⚠️': 'failed', N: 'failed',
  '🔹': 'setup', '⚪️': 'dependency', '↻': 'retry', '⁉️': 'harness', '-': 'untested' }
const counts = {}
const failing = []
for (const suite of suites) {
  for (const test of suite.tests) {
    if (test.browser_only) continue
    const kind = test.kind || 'required'
    const group = suite === surrogate ? `${kind} (surrogate-control)` : kind
    const outcome = names[determineTestResult(suites, test.id, results)[2]]
    const row = counts[group] || (counts[group] = {})
    row[outcome] = (row[outcome] || 0) + 1
    if (outcome !== 'passed' && outcome !== 'dependency' && kind !== 'check') {
      const detail = Array.isArray(results[test.id]) ? results[test.id].join(': ') : outcome
      failing.push(`${kind.padEnd(8)} ${outcome.padEnd(7)} ${test.id}  ${detail}`)
    }
  }
}
for (const line of failing) console.log(line)
console.log('')
for (const [group, row] of Object.entries(counts).sort()) {
  const total = Object.values(row).reduce((a, b) => a + b, 0)
  const rest = Object.entries(row).filter(([k]) => k !== 'passed' && k !== 'failed')
    .map(([k, v]) => `${k} ${v}`).join(', ')
  console.log(`${group.padEnd(30)} passed ${String(row.passed || 0).padStart(3)}  failed ` +
    `${String(row.failed || 0).padStart(3)}  of ${total}${rest ? `  (${rest})` : ''}`)
}
JS
cp "$WORK/summary.mjs" "$PKG/og-summary.mjs"
node --no-warnings "$PKG/og-summary.mjs" "$WORK/results.json"
