#!/usr/bin/env bash
# HTTP check, get_info and verify against nginx answering the same fixed JSON for the same paths, with
# wrk (same threads, connections, duration, keep-alive), keys drawn at random from 1,000,000.
# check is asked in each way FOSSBilling's documentation allows: GET ...?key=K, POST with the
# JSON body {"key": "K"}, POST with the form body key=K. With PREVIOUS=<path of an apikeyd
# binary> (an earlier build), that server answers the same requests too, in the same rounds.
# verify (cost 1, each key's config has a monthly limit) is asked in the same three ways, and
# compared with GET check.
# Also each server's CPU time per request (user and kernel, from /proc: on two cores wrk needs
# one of them, so the rates of two fast servers meet at wrk's limit and CPU per request shows the
# difference), and resident memory of the server holding the keys against Redis holding the same
# records.
# With VARIANT_ARGS="<serve options>" the same build also runs with those options added, as
# "variant", in the same rounds: VARIANT_ARGS=--no-metrics measures what metrics cost.
# Usage: Benchmarks/http.sh   (KEYS, DURATION, THREADS, CONNECTIONS, EVENT_LOOPS, ROUNDS, PREVIOUS, VARIANT_ARGS,
# ROWS: endpoint:spelling pairs, e.g. ROWS="check:get check:json")
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
DURATION=${DURATION:-10}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-64}
EVENT_LOOPS=${EVENT_LOOPS:-1}
ROUNDS=${ROUNDS:-5}
PREVIOUS=${PREVIOUS:-}
VARIANT_ARGS=${VARIANT_ARGS:-}
for tool in nginx wrk redis-server curl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx wrk redis-server curl; break; }
done
swift build -c release --product apikeyd --static-swift-stdlib
(cd Benchmarks && swift build -c release --product DurabilityBenchmark)
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/http.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-http.XXXXXX)
pid=""
previous_pid=""
variant_pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$previous_pid" ] && kill "$previous_pid" 2>/dev/null; [ -n "$variant_pid" ] && kill "$variant_pid" 2>/dev/null; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" || true; redis-cli -p 6392 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, apikeyd --event-loops $EVENT_LOOPS, nginx worker_processes 1"
[ -n "$PREVIOUS" ] && echo "previous: $PREVIOUS"
[ -n "$VARIANT_ARGS" ] && echo "variant: this build with $VARIANT_ARGS"
Benchmarks/.build/release/DurabilityBenchmark "$work/store" "$KEYS" 0 "$work/records.resp" "$work/keys.txt" 2>/dev/null | head -2
shuf "$work/keys.txt" > "$work/keys-shuffled.txt"   # keys.lua takes them in file order
[ -n "$PREVIOUS" ] && cp -a "$work/store" "$work/store-previous"   # each server locks its own
[ -n "$VARIANT_ARGS" ] && cp -a "$work/store" "$work/store-variant"

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
    location /api/guest/serviceapikey/verify { default_type "application/json; charset=utf-8"; return 200 '{"result": {"valid": 1, "code": "VALID", "config": {"monthlyLimit": 250, "tier": "pro"}, "usage": {"limit": 250, "used": 1, "remaining": 249, "reset_at": "2027-01-01 00:00:00"}}, "error": null}'; }
  }
}
CONF
nginx -c "$work/nginx.conf"
.build/release/apikeyd serve --port 18092 --data-dir "$work/store" --admin-token bench --event-loops "$EVENT_LOOPS" \
  --rate-burst 1000000000 --rate-per-second 1000000000 2>/dev/null &
pid=$!
until curl -sf http://127.0.0.1:18092/health >/dev/null; do sleep 0.05; done
servers=("apikeyd http://127.0.0.1:18092 $pid")
if [ -n "$PREVIOUS" ]; then
  "$PREVIOUS" serve --port 18094 --data-dir "$work/store-previous" --admin-token bench --event-loops "$EVENT_LOOPS" \
    --rate-burst 1000000000 --rate-per-second 1000000000 2>/dev/null &
  previous_pid=$!
  until curl -sf http://127.0.0.1:18094/health >/dev/null; do sleep 0.05; done
  servers+=("previous http://127.0.0.1:18094 $previous_pid")
fi
if [ -n "$VARIANT_ARGS" ]; then
  # shellcheck disable=SC2086 # the options are words
  .build/release/apikeyd serve --port 18095 --data-dir "$work/store-variant" --admin-token bench --event-loops "$EVENT_LOOPS" \
    --rate-burst 1000000000 --rate-per-second 1000000000 $VARIANT_ARGS 2>/dev/null &
  variant_pid=$!
  until curl -sf http://127.0.0.1:18095/health >/dev/null; do sleep 0.05; done
  servers+=("variant http://127.0.0.1:18095 $variant_pid")
fi
nginx_worker=$(pgrep -P "$(cat "$work/nginx.pid")")
ticks=$(getconf CLK_TCK)
echo "apikeyd RSS with $KEYS keys: $(awk '/VmRSS/{print $2}' /proc/$pid/status) kB"
servers+=("nginx http://127.0.0.1:18093 $nginx_worker")
# ROUNDS alternations of the servers per row, so all see the same moments of a shared machine;
# the summary gives each one's median rate, latencies and CPU per request, and the ratios.
rows=${ROWS:-"check:get check:json check:form get_info:get verify:get verify:json verify:form"}
summary=""
for row in $rows; do
  path=${row%%:*}
  spelling=${row##*:}
  for round in $(seq "$ROUNDS"); do
    for target in "${servers[@]}"; do
      set -- $target
      read -r user_before system_before < <(awk '{print $14, $15}' "/proc/$3/stat")
      result=$(APIKEYD_KEYS="$work/keys-shuffled.txt" APIKEYD_PATH=$path APIKEYD_SPELLING=$spelling \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s Benchmarks/wrk/keys.lua "$2")
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
      echo "$path $spelling round $round $1: $line (req/s, p50 ms, p99 ms, CPU us/req: user, kernel, total)"
      summary+="$path-$spelling $1 $line"$'\n'
    done
  done
done
echo "== medians of $ROUNDS rounds"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
for row in $rows; do
  name=${row/:/-}
  for target in "${servers[@]}"; do
    server=${target%% *}
    median() { grep "^$name $server " <<<"$summary" | awk -v f="$1" '{print $f}' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
    printf -v "rate_${name//-/_}_${server}" "%s" "$(median 3)"
    printf -v "cpu_${name//-/_}_${server}" "%s" "$(median 8)"
    echo "$name, $server: $(median 3) req/s, p50 $(median 4) ms, p99 $(median 5) ms, CPU per request: user $(median 6) us, kernel $(median 7) us, total $(median 8) us"
  done
  for server in apikeyd ${PREVIOUS:+previous} ${VARIANT_ARGS:+variant}; do
    rate=rate_${name//-/_}_$server; nginx=rate_${name//-/_}_nginx
    cpu=cpu_${name//-/_}_$server; nginx_cpu=cpu_${name//-/_}_nginx
    echo "$name: $server / nginx = $(ratio "${!rate}" "${!nginx}"), CPU per request $server / nginx = $(ratio "${!cpu}" "${!nginx_cpu}")"
  done
done
for server in apikeyd ${PREVIOUS:+previous}; do
  get=rate_check_get_$server
  if [ -z "${!get:-}" ]; then continue; fi
  for other in check_json:"POST JSON check" check_form:"POST form check" get_info_get:"get_info" \
    verify_get:"GET verify" verify_json:"POST JSON verify" verify_form:"POST form verify"; do
    rate=rate_${other%%:*}_$server
    if [ -n "${!rate:-}" ]; then echo "$server: ${other#*:} / GET check = $(ratio "${!rate}" "${!get}")"; fi
  done
done
if [ -n "$PREVIOUS" ]; then
  for row in $rows; do
    name=${row/:/-}
    ours=rate_${name//-/_}_apikeyd; theirs=rate_${name//-/_}_previous
    echo "$name: apikeyd / previous = $(ratio "${!ours}" "${!theirs}")"
  done
  kill "$previous_pid"
  previous_pid=""
fi
if [ -n "$VARIANT_ARGS" ]; then
  for row in $rows; do
    name=${row/:/-}
    ours=rate_${name//-/_}_apikeyd; theirs=rate_${name//-/_}_variant
    ours_cpu=cpu_${name//-/_}_apikeyd; theirs_cpu=cpu_${name//-/_}_variant
    echo "$name: apikeyd / variant ($VARIANT_ARGS) = $(ratio "${!ours}" "${!theirs}"), CPU per request = $(ratio "${!ours_cpu}" "${!theirs_cpu}")"
  done
  kill "$variant_pid"
  variant_pid=""
fi
kill $pid
pid=""
redis-server --port 6392 --save "" --appendonly no --daemonize yes --logfile "$work/redis.log" --dir "$work"
until redis-cli -p 6392 ping >/dev/null 2>&1; do sleep 0.01; done
redis-cli -p 6392 --pipe < "$work/records.resp" | tail -1
rpid=$(redis-cli -p 6392 info server | awk -F: '/^process_id:/{print $2}' | tr -d '\r')
echo "redis with the same records: used_memory $(redis-cli -p 6392 info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r') bytes, RSS $(awk '/VmRSS/{print $2}' /proc/$rpid/status) kB"
