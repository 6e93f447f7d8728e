#!/usr/bin/env bash
# Durable metering: apikeyd's verify with --fsync always against Redis doing the same job the way a
# shop would without apikeyd, with appendfsync always: one Lua script per request that GETs the
# key's record and INCRBYs a monthly counter (taking the use back when it passes the limit). The
# same 1,000,000 keys in both, 64 connections each (wrk -t1 for apikeyd, redis-benchmark for
# Redis), ROUNDS alternations; medians of rate and p50.
# Usage: Benchmarks/verify-durable.sh   (KEYS, DURATION, ROUNDS, REQUESTS: redis-benchmark's count)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
for tool in redis-server redis-benchmark wrk curl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server wrk curl; break; }
done
swift build -c release --product apikeyd --static-swift-stdlib
(cd Benchmarks && swift build -c release --product DurabilityBenchmark)
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/verify-durable.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-verify.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; redis-cli -p 6393 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
Benchmarks/.build/release/DurabilityBenchmark "$work/store" "$KEYS" 0 "$work/records.resp" "$work/keys.txt" 2>/dev/null | head -2
shuf "$work/keys.txt" > "$work/keys-shuffled.txt"

.build/release/apikeyd serve --port 18095 --data-dir "$work/store" --admin-token bench --event-loops 1 \
  --fsync always --no-rate-limit 2>/dev/null &
pid=$!
until curl -sf http://127.0.0.1:18095/health >/dev/null; do sleep 0.05; done

# Redis: the same number of records as k:<12 digits> (redis-benchmark's __rand_int__ form), loaded
# without an AOF, then the AOF turned on (rewritten from memory) with appendfsync always.
redis-server --port 6393 --save "" --appendonly no --daemonize yes --logfile "$work/redis.log" --dir "$work"
until redis-cli -p 6393 ping >/dev/null 2>&1; do sleep 0.01; done
awk -v n="$KEYS" 'BEGIN {
  value = "{\"order_id\": 1, \"client_id\": 1, \"config\": {\"custom_monthlyLimit\": 250, \"custom_tier\": \"pro\"}, \"status\": \"active\", \"expires_at\": null}"
  for (i = 0; i < n; i++) {
    key = sprintf("k:%012d", i)
    printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, length(value), value
  }
}' | redis-cli -p 6393 --pipe | tail -1
redis-cli -p 6393 config set appendonly yes >/dev/null
until redis-cli -p 6393 info persistence | grep -q "aof_rewrite_in_progress:0" \
  && redis-cli -p 6393 info persistence | grep -q "aof_rewrite_scheduled:0"; do sleep 0.2; done
redis-cli -p 6393 config set appendfsync always >/dev/null
sha=$(redis-cli -p 6393 script load "
local record = redis.call('GET', KEYS[1])
if not record then return -1 end
local used = redis.call('INCRBY', KEYS[2], ARGV[2])
if used > tonumber(ARGV[1]) then redis.call('DECRBY', KEYS[2], ARGV[2]); return 0 end
return used")
echo "redis: $(redis-cli -p 6393 dbsize) keys, appendonly $(redis-cli -p 6393 config get appendonly | tail -1), appendfsync $(redis-cli -p 6393 config get appendfsync | tail -1)"

summary=""
for round in $(seq "$ROUNDS"); do
  result=$(APIKEYD_KEYS="$work/keys-shuffled.txt" APIKEYD_PATH=verify APIKEYD_SPELLING=get \
    wrk -t1 -c64 -d"${DURATION}s" --latency -s Benchmarks/wrk/keys.lua http://127.0.0.1:18095)
  if grep -qE "Non-2xx|Socket errors" <<<"$result"; then echo "$result" | grep -E "Non-2xx|Socket errors"; fi
  line=$(awk '/Requests\/sec/ {rate = $2}
    / 50%/ {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; p50 = v}
    END {printf "%.0f %.2f", rate, p50}' <<<"$result")
  echo "round $round apikeyd verify --fsync always: $line (req/s, p50 ms)"
  summary+="apikeyd $line"$'\n'
  result=$(redis-benchmark -p 6393 -c 64 -n "$REQUESTS" -r "$KEYS" --csv \
    EVALSHA "$sha" 2 "k:__rand_int__" "u:__rand_int__:2026-12" 1000000000 1 | tail -1)
  line=$(awk -F'","' '{gsub(/"/, "", $2); gsub(/"/, "", $5); printf "%.0f %.2f", $2, $5}' <<<"$result")
  echo "round $round redis EVALSHA GET+INCRBY appendfsync always: $line (req/s, p50 ms)"
  summary+="redis $line"$'\n'
done
median() { grep "^$1 " <<<"$summary" | awk -v f="$2" '{print $f}' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "== medians of $ROUNDS rounds"
echo "apikeyd: $(median apikeyd 2) req/s, p50 $(median apikeyd 3) ms"
echo "redis: $(median redis 2) req/s, p50 $(median redis 3) ms"
awk -v a="$(median apikeyd 2)" -v b="$(median redis 2)" 'BEGIN {printf "apikeyd / redis = %.2f\n", a / b}'
used=$(curl -s -u admin:bench "http://127.0.0.1:18095/api/admin/serviceapikey/usage?key=$(head -1 "$work/keys-shuffled.txt")")
echo "a key's usage after the run: $used"
