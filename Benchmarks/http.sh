#!/usr/bin/env bash
# HTTP check and get_info against nginx answering the same fixed JSON for the same paths, with
# wrk (same threads, connections, duration, keep-alive), keys drawn at random from 1,000,000.
# Also each server's CPU time per request (user and kernel, from /proc: on two cores wrk needs
# one of them, so the rates of two fast servers meet at wrk's limit and CPU per request shows the
# difference), and resident memory of the server holding the keys against Redis holding the same
# records.
# Usage: Benchmarks/http.sh   (KEYS, DURATION, THREADS, CONNECTIONS, EVENT_LOOPS, ROUNDS override)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
DURATION=${DURATION:-10}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-64}
EVENT_LOOPS=${EVENT_LOOPS:-1}
ROUNDS=${ROUNDS:-5}
for tool in nginx wrk redis-server curl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx wrk redis-server curl; break; }
done
swift build -c release --product apikeyd
(cd Benchmarks && swift build -c release --product DurabilityBenchmark)
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/http.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-http.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" || true; redis-cli -p 6392 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, apikeyd --event-loops $EVENT_LOOPS, nginx worker_processes 1"
Benchmarks/.build/release/DurabilityBenchmark "$work/store" "$KEYS" 0 "$work/records.resp" "$work/keys.txt" 2>/dev/null | head -2
shuf "$work/keys.txt" > "$work/keys-shuffled.txt"   # keys.lua takes them in file order

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
pid=$!
until curl -sf http://127.0.0.1:18092/health >/dev/null; do sleep 0.05; done
nginx_worker=$(pgrep -P "$(cat "$work/nginx.pid")")
ticks=$(getconf CLK_TCK)
echo "apikeyd RSS with $KEYS keys: $(awk '/VmRSS/{print $2}' /proc/$pid/status) kB"
# ROUNDS alternations of apikeyd and nginx per endpoint, so both see the same moments of a shared
# machine; the summary gives each one's median rate, latencies and CPU per request, and the ratios.
summary=""
for path in check get_info; do
  for round in $(seq "$ROUNDS"); do
    for target in "apikeyd http://127.0.0.1:18092 $pid" "nginx http://127.0.0.1:18093 $nginx_worker"; do
      set -- $target
      read -r user_before system_before < <(awk '{print $14, $15}' "/proc/$3/stat")
      result=$(APIKEYD_KEYS="$work/keys-shuffled.txt" APIKEYD_PATH=$path wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        --latency -s Benchmarks/wrk/keys.lua "$2")
      read -r user_after system_after < <(awk '{print $14, $15}' "/proc/$3/stat")
      if grep -qE "Non-2xx|Socket errors" <<<"$result"; then echo "$result" | grep -E "Non-2xx|Socket errors"; fi
      # requests/s, p50 and p99 in milliseconds, user and kernel CPU microseconds per request
      line=$(awk -v user=$((user_after - user_before)) -v kernel=$((system_after - system_before)) -v ticks="$ticks" '
        /Requests\/sec/ {rate = $2}
        /requests in/ {requests = $1}
        / 50%| 99%/ {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000
                     if ($1 == "50%") p50 = v; else p99 = v}
        END {u = user / ticks * 1e6 / requests; k = kernel / ticks * 1e6 / requests
             printf "%.0f %.2f %.2f %.2f %.2f %.2f", rate, p50, p99, u, k, u + k}' <<<"$result")
      echo "$path round $round $1: $line (req/s, p50 ms, p99 ms, CPU us/req: user, kernel, total)"
      summary+="$path $1 $line"$'\n'
    done
  done
done
echo "== medians of $ROUNDS rounds"
for path in check get_info; do
  for server in apikeyd nginx; do
    median() { grep "^$path $server " <<<"$summary" | awk -v f="$1" '{print $f}' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
    printf -v "${path}_${server}" "%s" "$(median 3)"
    echo "$path, $server: $(median 3) req/s, p50 $(median 4) ms, p99 $(median 5) ms, CPU per request: user $(median 6) us, kernel $(median 7) us, total $(median 8) us"
    printf -v "${path}_${server}_cpu" "%s" "$(median 8)"
  done
  ours=${path}_apikeyd; theirs=${path}_nginx
  echo "$path: apikeyd / nginx = $(awk -v a="${!ours}" -v b="${!theirs}" 'BEGIN {printf "%.2f", a / b}')"
  ours=${path}_apikeyd_cpu; theirs=${path}_nginx_cpu
  echo "$path: CPU per request, apikeyd / nginx = $(awk -v a="${!ours}" -v b="${!theirs}" 'BEGIN {printf "%.2f", a / b}')"
done
echo "get_info / check (apikeyd): $(awk -v a="$get_info_apikeyd" -v b="$check_apikeyd" 'BEGIN {printf "%.2f", a / b}')"
kill $pid
pid=""
redis-server --port 6392 --save "" --appendonly no --daemonize yes --logfile "$work/redis.log" --dir "$work"
until redis-cli -p 6392 ping >/dev/null 2>&1; do sleep 0.01; done
redis-cli -p 6392 --pipe < "$work/records.resp" | tail -1
rpid=$(redis-cli -p 6392 info server | awk -F: '/^process_id:/{print $2}' | tr -d '\r')
echo "redis with the same records: used_memory $(redis-cli -p 6392 info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r') bytes, RSS $(awk '/VmRSS/{print $2}' /proc/$rpid/status) kB"
