#!/usr/bin/env bash
# Multi-node mode's figures (issue 16), each beside its single-node baseline in the same run, on
# the same 1,000,000 records (Benchmarks/Tools/DurabilityBenchmark's):
#   1. start-up until /health answers 200: a node with an empty data directory loading the whole
#      table from PostgreSQL, the same node restarting from its cache (local snapshot + change
#      position), and a single-node server starting from its snapshot;
#   2. check throughput: one cluster node against the single-node server, wrk GET check, keys
#      drawn at random, rounds alternating between the two;
#   3. write throughput, 16 clients creating keys: through PostgreSQL (its defaults: fsync on,
#      synchronous_commit on) against the single-node journal with --fsync always.
# PostgreSQL is a throwaway cluster of the script's own (initdb, pg_ctl on a free port, as the
# postgres user when run as root), removed at the end.
# Usage: Benchmarks/cluster.sh   (KEYS, DURATION, ROUNDS, CONNECTIONS override); the output is
# also written to Benchmarks/results/cluster.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
CLIENTS=16
PGPORT=${PGPORT:-55433}
for tool in wrk curl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk curl; break; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
swift build -c release --product apikeyd --static-swift-stdlib
(cd Benchmarks && swift build -c release --product DurabilityBenchmark)
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/cluster.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-cluster.XXXXXX)
chmod 755 "$work"
pids=()
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  as_postgres "$PGBIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), $KEYS keys, wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, apikeyd --event-loops 1"

mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
as_postgres "$PGBIN/initdb" -D "$work/pg/data" -A trust -U postgres --no-sync >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o "-p $PGPORT -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
psql() { "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -At "$@"; }
URL="postgres://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable"

Benchmarks/.build/release/DurabilityBenchmark "$work/single" "$KEYS" 0 "$work/records.resp" "$work/keys.txt" 2>/dev/null | head -2
shuf "$work/keys.txt" > "$work/keys-shuffled.txt"

now() { date +%s%N; }
# serve NAME PORT DIR ARGS...: starts a server in the background, waits for /health 200, and
# prints how long that took; its pid is in $pid.
serve() {
  local name=$1 port=$2 dir=$3
  shift 3
  local start
  start=$(now)
  .build/release/apikeyd serve --port "$port" --data-dir "$dir" --admin-token bench --event-loops 1 --no-rate-limit "$@" \
    2>>"$work/$name.log" &
  pid=$!
  pids+=("$pid")
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || { echo "$name died:"; tail -5 "$work/$name.log"; exit 1; }
    sleep 0.01
  done
  started_ms=$(( ($(now) - start) / 1000000 ))
  rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# The cluster's schema, made by a node's first start, then the same records as the single
# node's, in the same order (order IDs 1...KEYS, the same clients and configs).
serve schema 18100 "$work/schema-node" --postgres "$URL" --node-name schema
stop "$pid"
start=$(now)
psql -q <<SQL
CREATE TEMPORARY TABLE bench_keys (order_id bigserial, api_key text);
\copy bench_keys (api_key) FROM '$work/keys.txt'
INSERT INTO apikeyd.keys (order_id, client_id, api_key, config, status, expires_at, created_at, updated_at)
SELECT order_id, (order_id - 1) % 50000 + 1, api_key,
  '{"custom_monthlyLimit":' || 250 * ((order_id - 1) % 40 + 1) || ',"custom_tier":"'
    || (ARRAY['free', 'starter', 'pro', 'enterprise'])[(order_id - 1) % 4 + 1] || '"}',
  'active', NULL, (extract(epoch FROM now()) * 1e9)::bigint, (extract(epoch FROM now()) * 1e9)::bigint
FROM bench_keys;
SQL
echo "loaded $(psql -c 'SELECT count(*) FROM apikeyd.keys') rows into PostgreSQL in $(( ($(now) - start) / 1000000 )) ms"
psql -q -c "VACUUM ANALYZE apikeyd.keys"

echo "== 1. start-up until /health answers 200, $KEYS keys =="
for run in $(seq 1 "$ROUNDS"); do
  rm -rf "$work/node"
  serve node 18101 "$work/node" --postgres "$URL" --node-name bench
  echo "cluster node, empty data directory (whole table from PostgreSQL) $run: $started_ms ms, RSS $rss_kb kB"
  stop "$pid"
done
for run in $(seq 1 "$ROUNDS"); do
  serve node 18101 "$work/node" --postgres "$URL" --node-name bench
  echo "cluster node, from its cache $run: $started_ms ms, RSS $rss_kb kB"
  stop "$pid"
done
for run in $(seq 1 "$ROUNDS"); do
  serve single 18102 "$work/single"
  echo "single node, from its snapshot $run: $started_ms ms, RSS $rss_kb kB"
  stop "$pid"
done

echo "== 2. check throughput (requests/s), GET check, random keys =="
serve node 18101 "$work/node" --postgres "$URL" --node-name bench
node_pid=$pid
serve single 18102 "$work/single"
single_pid=$pid
rate() {
  APIKEYD_KEYS="$work/keys-shuffled.txt" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s Benchmarks/wrk/keys.lua "$1" \
    | awk '/Requests\/sec/{printf "%d", $2}'
}
cluster_rates=()
single_rates=()
for round in $(seq 1 "$ROUNDS"); do
  single_rates+=("$(rate http://127.0.0.1:18102)")
  cluster_rates+=("$(rate http://127.0.0.1:18101)")
  echo "round $round: single node ${single_rates[-1]}, cluster node ${cluster_rates[-1]}"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
single_median=$(median "${single_rates[@]}")
cluster_median=$(median "${cluster_rates[@]}")
echo "check medians: single node $single_median, cluster node $cluster_median, ratio $(awk -v a="$cluster_median" -v b="$single_median" 'BEGIN {printf "%.3f", a / b}')x"
stop "$single_pid"

echo "== 3. writes, $CLIENTS clients creating keys, ${DURATION}s =="
creates() {
  APIKEYD_AUTH=$(printf 'admin:bench' | base64) wrk -t1 -c$CLIENTS -d"${DURATION}s" --latency -s Benchmarks/wrk/create.lua "$1" \
    | grep -E "Requests/sec|50%|99%|failures"
}
echo "cluster node (one transaction on PostgreSQL per write):"
creates http://127.0.0.1:18101
stop "$node_pid"
serve single 18102 "$work/single" --fsync always
echo "single node, --fsync always:"
creates http://127.0.0.1:18102
stop "$pid"
