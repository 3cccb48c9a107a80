#!/usr/bin/env bash
# Latency of the province-wide statistics over HTTP, on an existing database.
#   DATABASE_URL=postgres://... bench/stats_latency.sh [requests] [year]
# Starts the release `danbao serve` on that database, logs in as the province supervisor
# `sup.jx` (a `danbao demo` database; password DEMO_PASSWORD, default the demo's), and times
# the summary grouped by city and the repayment rate. Prints median and p99 in milliseconds.
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL to a danbao database (e.g. one made by danbao demo)}"
n=${1:-50}
year=${2:-$(($(date +%Y) - 1))}
bin=${DANBAO_BIN:-target/release/danbao}
[ -x "$bin" ] || cargo build --release --bin danbao
port=${PORT:-18181}
password=${DEMO_PASSWORD:-Demo password 2026}
log=$(mktemp)
DANBAO_JWT_SECRET=bench-secret-0123456789abcdef0123456789 \
DANBAO_DATA_KEY=${DANBAO_DATA_KEY:-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff} \
  "$bin" serve --listen "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
token=$(curl -fsS "http://127.0.0.1:$port/v1/auth/token" -H 'content-type: application/json' \
  -d "{\"username\":\"sup.jx\",\"password\":\"$password\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
loans=$(psql "$DATABASE_URL" -tAc "select count(*) from loans")
measure() {
  local name=$1 path=$2
  curl -fsS -o /dev/null -H "authorization: Bearer $token" "http://127.0.0.1:$port$path"  # warm
  for _ in $(seq 1 "$n"); do
    curl -fsS -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $token" "http://127.0.0.1:$port$path"
  done | python3 -c "
import sys
t = sorted(float(x) * 1000 for x in sys.stdin)
p = lambda q: t[min(len(t) - 1, int(q * len(t)))]
print(f'| $name | {len(t)} | {p(0.5):.1f} | {p(0.99):.1f} |')
"
}
echo "database: $loans loans; period $year; $n requests each"
echo "| request | n | p50 ms | p99 ms |"
echo "| --- | --- | --- | --- |"
measure "summary, province, by city" "/v1/stats/summary?region=360000&from=$year-01-01&to=$year-12-31&as_of=$year-12-31&group_by=region"
measure "repayment rate, province" "/v1/stats/repayment-rate?region=360000&from=$year-01-01&to=$year-12-31&as_of=$year-12-31"
measure "summary, province, by month" "/v1/stats/summary?region=360000&from=$year-01-01&to=$year-12-31&as_of=$year-12-31&group_by=month"
