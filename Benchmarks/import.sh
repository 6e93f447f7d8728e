#!/usr/bin/env bash
# The FOSSBilling import figures, each beside its MariaDB baseline measured in the same run:
#   1. a mysqldump of a FOSSBilling database (client, client_order, service_apikey) with ORDERS
#      API-key orders, written by Benchmarks/fossbilling-dump.py (not timed);
#   2. MariaDB loading that dump (`mariadb fossbilling < dump.sql`) into a private mariadbd with
#      Debian's default settings (InnoDB; nothing tuned), 3 runs, each into a new database;
#   3. `apikeyd import --format fossbilling` of the same dump into a new data directory, 3 runs;
#   4. `apikeyd serve` start-up until /health answers, 3 runs each, on the imported directory and
#      on one holding the same records made by create calls (Benchmarks/Tools/CreateFromExport:
#      the import exported, each record created again with its order, client, config, status and
#      expiry, each client token reset, then the snapshot of close; no journal records either);
#   5. the ratios: import / MariaDB load (goal < 1), start-up imported / created (goal <= 1).
# The dump is read from the page cache by both importers (it was just written).
# Usage: Benchmarks/import.sh   (ORDERS, SEED override the size; RESULTS the output file, by
# default Benchmarks/results/import.txt; SKIP_BUILD=1 uses the binaries already built;
# SKIP_APIKEYD=1 measures only the generator and MariaDB, steps 1 and 2; APIKEYD=path runs
# another apikeyd binary).
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS=${ORDERS:-1000000}
SEED=${SEED:-1}
RUNS=3
SKIP_BUILD=${SKIP_BUILD:-}
SKIP_APIKEYD=${SKIP_APIKEYD:-}
RESULTS=${RESULTS:-Benchmarks/results/import.txt}
APIKEYD=${APIKEYD:-.build/release/apikeyd}
export PATH="$PATH:/usr/sbin:/usr/local/sbin"
for tool in mariadbd mariadb mariadb-install-db curl python3; do
  command -v $tool >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client curl python3
    break
  }
done
if [ -z "$SKIP_BUILD" ] && [ -z "$SKIP_APIKEYD" ]; then
  swift build -c release --product apikeyd --static-swift-stdlib
  (cd Benchmarks && swift build -c release --product CreateFromExport)
fi
mkdir -p "$(dirname "$RESULTS")"
exec > >(tee "$RESULTS") 2>&1
work=$(mktemp -d /tmp/apikeyd-import.XXXXXX)
pid=""
dbpid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  if [ -n "$dbpid" ]; then
    kill "$dbpid" 2>/dev/null || true
    wait "$dbpid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "$(mariadbd --version | sed 's/ *for .*//'); $(python3 --version)"

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== 1. FOSSBilling dump: $ORDERS API-key orders (seed $SEED) =="
dump="$work/fossbilling.sql"
start=$(now)
Benchmarks/fossbilling-dump.py --orders "$ORDERS" --seed "$SEED" --style extended \
  --output "$dump" --expected "$work/expected.jsonl"
end=$(now)
expected=$(tail -1 "$work/expected.jsonl")
keys=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["summary"]["imported"])' "$expected")
echo "dump: $(stat -c %s "$dump") bytes, $(grep -c '^INSERT INTO' "$dump") INSERT statements, written in $(ms "$start" "$end") ms (not counted)"
echo "expected: $expected"

echo "== 2. MariaDB: mariadb fossbilling < dump.sql ($RUNS runs) =="
mariadb-install-db --datadir="$work/mysql" --user=root --auth-root-authentication-method=normal \
  --skip-test-db >"$work/mysql-install.log" 2>&1 || { cat "$work/mysql-install.log"; exit 1; }
# Debian's configuration (/etc/mysql) applies; only the locations are private to this run.
mariadbd --user=root --datadir="$work/mysql" --socket="$work/mysql.sock" --skip-networking \
  --pid-file="$work/mysql.pid" --log-error="$work/mysql.err" 2>>"$work/mysql.err" &
dbpid=$!
db() { mariadb --socket="$work/mysql.sock" --user=root "$@"; }
for _ in $(seq 600); do
  db -e 'SELECT 1' >/dev/null 2>&1 && break
  kill -0 "$dbpid" 2>/dev/null || { cat "$work/mysql.err"; exit 1; }
  sleep 0.1
done
db -e 'SELECT 1' >/dev/null || { cat "$work/mysql.err"; exit 1; }
echo "server: $(db -N -e 'SELECT CONCAT(VERSION(), ", buffer pool ", @@innodb_buffer_pool_size DIV 1048576, " MiB, flush_log_at_trx_commit ", @@innodb_flush_log_at_trx_commit, ", log_bin ", @@log_bin)')"
loads=()
for run in $(seq $RUNS); do
  # as FOSSBilling's installer creates its database
  db -e 'DROP DATABASE IF EXISTS fossbilling; CREATE DATABASE fossbilling CHARACTER SET utf8 COLLATE utf8_general_ci'
  sync
  start=$(now)
  db fossbilling <"$dump"
  end=$(now)
  loads+=("$(ms "$start" "$end")")
  echo "mariadb load $run: ${loads[-1]} ms"
done
echo "mariadb rows: $(db -N fossbilling -e "SELECT CONCAT((SELECT COUNT(*) FROM client), ' clients, ', (SELECT COUNT(*) FROM client_order), ' orders, ', (SELECT COUNT(*) FROM service_apikey), ' service_apikey')")"
db -e 'DROP DATABASE fossbilling'
kill "$dbpid"
wait "$dbpid" 2>/dev/null || true
dbpid=""
rm -rf "$work/mysql"
load_median=$(median "${loads[@]}")
echo "mariadb load median: $load_median ms"

if [ -n "$SKIP_APIKEYD" ]; then
  echo "== 3-5 skipped (SKIP_APIKEYD) =="
  exit 0
fi

echo "== 3. apikeyd import --format fossbilling ($RUNS runs) =="
imports=()
for run in $(seq $RUNS); do
  rm -rf "$work/imported"
  sync
  start=$(now)
  "$APIKEYD" import --data-dir "$work/imported" --format fossbilling "$dump"
  end=$(now)
  imports+=("$(ms "$start" "$end")")
  echo "apikeyd import $run: ${imports[-1]} ms ($(du -sb "$work/imported" | cut -f1) bytes on disk)"
done
import_median=$(median "${imports[@]}")
echo "apikeyd import median: $import_median ms"

echo "== 4. server start-up until ready ($RUNS runs each) =="
"$APIKEYD" export --data-dir "$work/imported" --output "$work/export.jsonl" 2>/dev/null
Benchmarks/.build/release/CreateFromExport "$work/export.jsonl" "$work/created"
rm -f "$work/export.jsonl"
startup_ms=""
startup() {
  local name=$1 directory=$2 port times=() start end rss
  port=$(free_port)
  for run in $(seq $RUNS); do
    start=$(now)
    "$APIKEYD" serve --port "$port" --data-dir "$directory" --admin-token bench 2>/dev/null &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do
      kill -0 "$pid" 2>/dev/null || { echo "apikeyd serve on the $name directory exited"; exit 1; }
      [ $(( $(now) - start )) -lt 300000000000 ] || { echo "apikeyd serve on the $name directory not ready in 300 s"; exit 1; }
      sleep 0.005
    done
    end=$(now)
    rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
    kill -9 $pid
    wait $pid 2>/dev/null || true
    pid=""
    times+=("$(ms "$start" "$end")")
    echo "apikeyd start-up $name $run: ${times[-1]} ms (RSS ${rss} kB)"
  done
  startup_ms=$(median "${times[@]}")
}
startup imported "$work/imported"
startup_imported=$startup_ms
startup created "$work/created"
startup_created=$startup_ms
echo "start-up median: imported $startup_imported ms, created ($keys create calls) $startup_created ms"

echo "== 5. ratios =="
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
echo "import / mariadb load: $(ratio "$import_median" "$load_median") ($import_median ms / $load_median ms; goal < 1)"
echo "start-up imported / created: $(ratio "$startup_imported" "$startup_created") ($startup_imported ms / $startup_created ms; goal <= 1)"
