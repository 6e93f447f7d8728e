#!/usr/bin/env bash
# HTTPS check throughput: apikeyd serving TLS itself (swift-nio-ssl) beside nginx serving the
# same fixed JSON over TLS with the same self-signed certificate, with wrk over keep-alive
# connections (the handshake is paid once per connection), and the same two over plain HTTP for
# what TLS costs each. Keys drawn at random from KEYS.
# Usage: Benchmarks/https.sh   (KEYS, DURATION, THREADS, CONNECTIONS, EVENT_LOOPS, ROUNDS)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-100000}
DURATION=${DURATION:-10}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-64}
EVENT_LOOPS=${EVENT_LOOPS:-1}
ROUNDS=${ROUNDS:-3}
for tool in nginx wrk curl openssl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx wrk curl openssl; break; }
done
swift build -c release --product apikeyd --static-swift-stdlib
(cd Benchmarks && swift build -c release --product DurabilityBenchmark)
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/https.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-https.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" || true; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, apikeyd --event-loops $EVENT_LOOPS, nginx worker_processes 1, $(openssl version)"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
Benchmarks/.build/release/DurabilityBenchmark "$work/store" "$KEYS" 0 "$work/records.resp" "$work/keys.txt" 2>/dev/null | head -1
shuf "$work/keys.txt" > "$work/keys-shuffled.txt"
cp -a "$work/store" "$work/store-plain"

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18193;
    listen 127.0.0.1:18194 ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /api/guest/serviceapikey/check { default_type "application/json; charset=utf-8"; return 200 '{"result": true, "error": null}'; }
  }
}
CONF
nginx -c "$work/nginx.conf"
common=(--admin-token bench --event-loops "$EVENT_LOOPS" --rate-burst 1000000000 --rate-per-second 1000000000)
.build/release/apikeyd serve --port 18191 --data-dir "$work/store" "${common[@]}" \
  --tls-certificate "$work/cert.pem" --tls-private-key "$work/key.pem" 2>/dev/null &
pids+=($!)
https_pid=$!
.build/release/apikeyd serve --port 18192 --data-dir "$work/store-plain" "${common[@]}" 2>/dev/null &
pids+=($!)
http_pid=$!
until curl -sf --cacert "$work/cert.pem" https://127.0.0.1:18191/health >/dev/null; do sleep 0.05; done
until curl -sf http://127.0.0.1:18192/health >/dev/null; do sleep 0.05; done
nginx_worker=$(pgrep -P "$(cat "$work/nginx.pid")")
ticks=$(getconf CLK_TCK)
servers=("apikeyd-https https://127.0.0.1:18191 $https_pid" "nginx-https https://127.0.0.1:18194 $nginx_worker"
  "apikeyd-http http://127.0.0.1:18192 $http_pid" "nginx-http http://127.0.0.1:18193 $nginx_worker")
summary=""
for round in $(seq "$ROUNDS"); do
  for target in "${servers[@]}"; do
    set -- $target
    read -r user_before system_before < <(awk '{print $14, $15}' "/proc/$3/stat")
    result=$(APIKEYD_KEYS="$work/keys-shuffled.txt" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
      -s Benchmarks/wrk/keys.lua "$2")
    read -r user_after system_after < <(awk '{print $14, $15}' "/proc/$3/stat")
    if grep -qE "Non-2xx|Socket errors" <<<"$result"; then echo "$result" | grep -E "Non-2xx|Socket errors"; fi
    line=$(awk -v user=$((user_after - user_before)) -v kernel=$((system_after - system_before)) -v ticks="$ticks" '
      /Requests\/sec/ {rate = $2}
      /requests in/ {requests = $1}
      / 50%| 99%/ {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000
                   if ($1 == "50%") p50 = v; else p99 = v}
      END {u = user / ticks * 1e6 / requests; k = kernel / ticks * 1e6 / requests
           printf "%.0f %.2f %.2f %.2f %.2f %.2f", rate, p50, p99, u, k, u + k}' <<<"$result")
    echo "round $round $1: $line (req/s, p50 ms, p99 ms, CPU us/req: user, kernel, total)"
    summary+="$1 $line"$'\n'
  done
done
echo "== medians of $ROUNDS rounds"
for target in "${servers[@]}"; do
  server=${target%% *}
  median() { grep "^$server " <<<"$summary" | awk -v f="$1" '{print $f}' | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
  printf -v "rate_${server//-/_}" "%s" "$(median 2)"
  printf -v "cpu_${server//-/_}" "%s" "$(median 7)"
  echo "$server: $(median 2) req/s, p50 $(median 3) ms, p99 $(median 4) ms, CPU per request: user $(median 5) us, kernel $(median 6) us, total $(median 7) us"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "HTTPS check: apikeyd / nginx = $(ratio "$rate_apikeyd_https" "$rate_nginx_https"), CPU per request apikeyd / nginx = $(ratio "$cpu_apikeyd_https" "$cpu_nginx_https")"
echo "HTTP check: apikeyd / nginx = $(ratio "$rate_apikeyd_http" "$rate_nginx_http")"
echo "TLS keeps: apikeyd HTTPS / HTTP = $(ratio "$rate_apikeyd_https" "$rate_apikeyd_http"), nginx HTTPS / HTTP = $(ratio "$rate_nginx_https" "$rate_nginx_http")"
