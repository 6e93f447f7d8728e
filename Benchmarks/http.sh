#!/usr/bin/env bash
# HTTP check and get_info against nginx answering the same fixed JSON for the same paths, with
# wrk (same threads, connections, duration, keep-alive), keys drawn at random from 1,000,000.
# Also resident memory of the server holding them, against Redis holding the same records.
# Usage: Benchmarks/http.sh   (KEYS, DURATION, THREADS, CONNECTIONS, EVENT_LOOPS override)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
DURATION=${DURATION:-10}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-64}
EVENT_LOOPS=${EVENT_LOOPS:-1}
for tool in nginx wrk redis-server curl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx wrk redis-server curl; break; }
done
swift build -c release --product apikeyd
(cd Benchmarks && swift build -c release --product DurabilityBenchmark)
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/http.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-http.XXXXXX)
trap 'pkill -f "apikeyd serve --port 18092" || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" || true; redis-cli -p 6392 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, apikeyd --event-loops $EVENT_LOOPS, nginx worker_processes 1"
Benchmarks/.build/release/DurabilityBenchmark "$work/store" "$KEYS" 0 "$work/records.resp" "$work/keys.txt" 2>/dev/null | head -2

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18093;
    location /api/guest/serviceapikey/check { default_type "application/json; charset=utf-8"; return 200 '{"result": true, "error": null}'; }
    location /api/guest/serviceapikey/get_info { default_type "application/json; charset=utf-8"; return 200 '{"result": {"valid": 1, "config": {"monthlyLimit": 250, "tier": "pro"}}, "error": null}'; }
  }
}
CONF
nginx -c "$work/nginx.conf"
.build/release/apikeyd serve --port 18092 --data-dir "$work/store" --admin-token bench --event-loops "$EVENT_LOOPS" \
  --rate-burst 1000000000 --rate-per-second 1000000000 2>/dev/null &
until curl -sf http://127.0.0.1:18092/health >/dev/null; do sleep 0.05; done
pid=$(pgrep -f "apikeyd serve --port 18092")
echo "apikeyd RSS with $KEYS keys: $(awk '/VmRSS/{print $2}' /proc/$pid/status) kB"
for path in check get_info; do
  for target in "apikeyd http://127.0.0.1:18092" "nginx http://127.0.0.1:18093"; do
    set -- $target
    echo "== $path, $1"
    APIKEYD_KEYS="$work/keys.txt" APIKEYD_PATH=$path wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
      -s Benchmarks/wrk/keys.lua "$2" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
  done
done
kill $pid
redis-server --port 6392 --save "" --appendonly no --daemonize yes --logfile "$work/redis.log" --dir "$work"
until redis-cli -p 6392 ping >/dev/null 2>&1; do sleep 0.01; done
redis-cli -p 6392 --pipe < "$work/records.resp" | tail -1
rpid=$(pgrep -f "redis-server.*6392")
echo "redis with the same records: used_memory $(redis-cli -p 6392 info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r') bytes, RSS $(awk '/VmRSS/{print $2}' /proc/$rpid/status) kB"
