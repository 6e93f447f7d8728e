#!/usr/bin/env bash
# The embedding figures of Examples/weather-api, with wrk against one Hummingbird server
# (Examples/weather-api's weather-benchmark, release build) serving the example's forecast route
# three ways, in the same rounds:
#   open     no key;
#   noop     no key, behind a middleware that only calls the route (Hummingbird's own cost of a
#            middleware layer);
#   guarded  the key verified in-process by APIKeyMiddleware (cost 1), as the example does;
#   many     as guarded, but each request with the next of 10,000 keys (Benchmarks/wrk/header-keys.lua):
#            one hot key makes both event loops take the same key's usage lock on every verify;
#   checked  the key checked in-process (APIKeyGuard's check mode: status and expiry, no metering);
#   http     the key verified by calling a real `apikeyd serve` over loopback from the handler
#            (GET /api/guest/serviceapikey/verify, AsyncHTTPClient with its connection pool),
#            as a FOSSBilling shop guards a route today.
# Ratios: guarded / open (goal >= 0.95) and guarded / http. On two cores wrk, the server and (for
# http) apikeyd share the CPU; each server's CPU time per request comes from /proc.
# Usage: Benchmarks/embedding.sh   (DURATION, CONNECTIONS, THREADS, ROUNDS; SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
for tool in wrk curl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk curl; break; }
done
if [ -z "${SKIP_BUILD:-}" ]; then
  swift build -c release --product apikeyd --static-swift-stdlib
  (cd Examples/weather-api && swift build -c release --product weather-benchmark)
fi
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/embedding.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-embedding.XXXXXX)
apikeyd_pid=""
bench_pid=""
trap '[ -n "$apikeyd_pid" ] && kill "$apikeyd_pid" 2>/dev/null; [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, each route once a round"

.build/release/apikeyd serve --port 18096 --data-dir "$work/store" --admin-token bench --no-rate-limit \
  >"$work/apikeyd.log" 2>&1 &
apikeyd_pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18096/health >/dev/null && break; sleep 0.1; done
remote_key=$(curl -sf -u admin:bench http://127.0.0.1:18096/api/admin/serviceapikey/create \
  -H 'Content-Type: application/json' -d '{"client_id": 1, "config": {"custom_tier": "pro"}}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["api_key"])')

BENCH_PORT=18097 BENCH_KEYS_FILE="$work/keys.txt" BENCH_APIKEYD_URL=http://127.0.0.1:18096 \
  Examples/weather-api/.build/release/weather-benchmark >"$work/bench.log" 2>&1 &
bench_pid=$!
for _ in $(seq 100); do grep -q '^key: ' "$work/bench.log" 2>/dev/null && curl -s -o /dev/null http://127.0.0.1:18097/open/forecast?city=Oslo && break; sleep 0.1; done
local_key=$(sed -n 's/^key: //p' "$work/bench.log")
for route in "open/forecast?city=Oslo -" "guarded/forecast?city=Oslo $local_key" "http/forecast?city=Oslo $remote_key"; do
  set -- $route
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $2" "http://127.0.0.1:18097/$1")
  [ "$status" = 200 ] || { echo "route $1 answered $status"; cat "$work/bench.log"; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A rates cpu
for round in $(seq "$ROUNDS"); do
  for route in open noop guarded many checked http; do
    case $route in
      open | noop) key=-;;
      guarded | checked | many) key=$local_key;;
      http) key=$remote_key;;
    esac
    before_bench=$(cpu_ticks "$bench_pid"); before_apikeyd=$(cpu_ticks "$apikeyd_pid")
    if [ "$route" = many ]; then
      output=$(WRK_KEYS="$work/keys.txt" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s Benchmarks/wrk/header-keys.lua \
        "http://127.0.0.1:18097/guarded/forecast?city=Oslo")
    else
      output=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -H "X-API-Key: $key" "http://127.0.0.1:18097/$route/forecast?city=Oslo")
    fi
    after_bench=$(cpu_ticks "$bench_pid"); after_apikeyd=$(cpu_ticks "$apikeyd_pid")
    rate=$(awk '/Requests\/sec/ {print $2}' <<<"$output")
    requests=$(awk '/requests in/ {print $1}' <<<"$output")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$output")
    [ -z "$non2xx" ] || { echo "$route: $non2xx answers were not 2xx"; exit 1; }
    ticks=$(( after_bench - before_bench + after_apikeyd - before_apikeyd ))
    us=$(awk -v t="$ticks" -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    printf 'round %d %-8s %10.0f requests/s  %6s us CPU a request (server%s)\n' "$round" "$route" "$rate" "$us" \
      "$([ $route = http ] && echo ' + apikeyd' || true)"
    rates[$route]="${rates[$route]:-} $rate"
    cpu[$route]="${cpu[$route]:-} $us"
  done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
open=$(median "${rates[open]}"); noop=$(median "${rates[noop]}"); guarded=$(median "${rates[guarded]}")
checked=$(median "${rates[checked]}"); http=$(median "${rates[http]}"); many=$(median "${rates[many]}")
echo "median requests/s: open $open, noop $noop, guarded $guarded, many $many, checked $checked, http $http"
echo "median us CPU a request: open $(median "${cpu[open]}"), noop $(median "${cpu[noop]}"), guarded $(median "${cpu[guarded]}"), many $(median "${cpu[many]}"), checked $(median "${cpu[checked]}"), http $(median "${cpu[http]}") (server + apikeyd)"
awk -v o="$open" -v n="$noop" -v g="$guarded" -v m="$many" -v c="$checked" -v h="$http" 'BEGIN {
  printf "guarded / open: %.3fx (goal >= 0.95)\n", g / o
  printf "guarded / noop (the guard against an empty middleware layer): %.3fx\n", g / n
  printf "guarded, 10,000 keys / open: %.3fx\n", m / o
  printf "checked / open: %.3fx\n", c / o
  printf "guarded / http (in-process against a loopback HTTP verify): %.2fx\n", g / h
}'
