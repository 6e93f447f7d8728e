#!/usr/bin/env bash
# The durability figures (issue 3), each beside its Redis baseline measured in the same run:
#   1. snapshot write time and size, and in-process start-up (snapshot + journal replay);
#   2. server start-up until it answers, apikeyd (snapshot + journal) against Redis (RDB);
#   3. durable write throughput: apikeyd --fsync always against Redis appendfsync always,
#      16 concurrent clients each.
# Usage: Benchmarks/durability.sh   (KEYS, JOURNAL, DURATION override the sizes); the output is
# also written to Benchmarks/results/durability.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
JOURNAL=${JOURNAL:-100000}
DURATION=${DURATION:-10}
CLIENTS=16
for tool in redis-server redis-benchmark wrk curl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server wrk curl; break; }
done
swift build -c release --product apikeyd --static-swift-stdlib
(cd Benchmarks && swift build -c release --product DurabilityBenchmark)
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/durability.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-durability.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; redis-cli -p 6390 shutdown nosave >/dev/null 2>&1 || true; redis-cli -p 6391 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"

echo "== 1. in-process: $KEYS keys, snapshot, $JOURNAL journal records, cold start =="
Benchmarks/.build/release/DurabilityBenchmark "$work/store" "$KEYS" "$JOURNAL" "$work/records.resp" 2>/dev/null

now() { date +%s%N; }

echo "== 2. server start-up until ready (3 runs each) =="
for run in 1 2 3; do
  start=$(now)
  .build/release/apikeyd serve --port 18090 --data-dir "$work/store" --admin-token bench 2>/dev/null &
  pid=$!
  until curl -sf http://127.0.0.1:18090/health >/dev/null; do sleep 0.005; done
  end=$(now)
  rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  kill -9 $pid; wait $pid 2>/dev/null || true
  pid=""
  echo "apikeyd start-up $run: $(( (end - start) / 1000000 )) ms (RSS ${rss} kB)"
done
mkdir -p "$work/redis"
redis-server --port 6390 --dir "$work/redis" --save "" --appendonly no --daemonize yes --logfile "$work/redis.log"
until redis-cli -p 6390 ping >/dev/null 2>&1; do sleep 0.01; done
redis-cli -p 6390 --pipe < "$work/records.resp" | tail -1
redis-cli -p 6390 save >/dev/null
echo "redis: $(redis-cli -p 6390 dbsize) keys, RDB $(stat -c %s "$work/redis/dump.rdb") bytes"
redis-cli -p 6390 shutdown nosave >/dev/null 2>&1 || true
sleep 0.5
for run in 1 2 3; do
  start=$(now)
  redis-server --port 6390 --dir "$work/redis" --save "" --appendonly no --daemonize no --logfile "$work/redis.log" &
  pid=$!
  until [ "$(redis-cli -p 6390 ping 2>/dev/null)" = "PONG" ]; do sleep 0.005; done
  end=$(now)
  rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  echo "redis start-up $run: $(( (end - start) / 1000000 )) ms (RSS ${rss} kB, $(redis-cli -p 6390 dbsize) keys)"
  redis-cli -p 6390 shutdown nosave >/dev/null 2>&1 || true
  wait $pid 2>/dev/null || true
  pid=""
done

echo "== 3. durable writes, $CLIENTS clients, ${DURATION}s =="
.build/release/apikeyd serve --port 18091 --data-dir "$work/writes" --admin-token bench --fsync always --no-rate-limit 2>/dev/null &
pid=$!
until curl -sf http://127.0.0.1:18091/health >/dev/null; do sleep 0.01; done
APIKEYD_AUTH=$(printf 'admin:bench' | base64) wrk -t2 -c$CLIENTS -d${DURATION}s --latency -s Benchmarks/wrk/create.lua http://127.0.0.1:18091 \
  | grep -E "Requests/sec|Latency |50%|99%|failures|requests in"
kill $pid; wait $pid 2>/dev/null || true
pid=""
mkdir -p "$work/redis-aof"
redis-server --port 6391 --dir "$work/redis-aof" --save "" --appendonly yes --appendfsync always --daemonize yes --logfile "$work/redis-aof.log"
until redis-cli -p 6391 ping >/dev/null 2>&1; do sleep 0.01; done
redis-benchmark -p 6391 -c $CLIENTS -t set -d 200 -r 1000000 -n 60000 --csv | tail -1
