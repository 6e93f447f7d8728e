#!/usr/bin/env bash
# Memory under churn (issue 10): a real `apikeyd serve` holding KEYS keys, each updated and then
# reset ROUNDS times with configs of 150-249 bytes (the hostile pass' measurement), then
# LARGE_ROUNDS times with configs of every size up to the 16 KiB maximum; the server's RSS is
# sampled after each phase. A second binary (BASELINE=path, e.g. the previous build) runs the same load in the same
# run for comparison.
# Usage: Benchmarks/churn.sh   (KEYS, ROUNDS, BASELINE override); output also goes to
# Benchmarks/results/churn.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000}
ROUNDS=${ROUNDS:-120}
LARGE_ROUNDS=${LARGE_ROUNDS:-20}
BASELINE=${BASELINE:-}
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
swift build -c release --product apikeyd --static-swift-stdlib
mkdir -p Benchmarks/results
exec > >(tee Benchmarks/results/churn.txt) 2>&1
work=$(mktemp -d /tmp/apikeyd-churn.XXXXXX)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "$KEYS keys; every key updated, then reset, $ROUNDS times with small configs, $LARGE_ROUNDS times with large ones"

run() {
  local name=$1 binary=$2 port=$3
  "$binary" serve --port "$port" --data-dir "$work/$name" --admin-token churn --no-rate-limit \
    --snapshot-journal-bytes 1073741824 --snapshot-interval-seconds 0 2>/dev/null &
  local pid=$!
  server=$pid
  until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.02; done
  python3 - "$port" "$pid" "$KEYS" "$ROUNDS" "$LARGE_ROUNDS" "$name" <<'EOF'
import base64, http.client, json, random, sys
port, pid, keys, small_rounds, large_rounds, name = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
auth = "Basic " + base64.b64encode(b"admin:churn").decode()
connection = http.client.HTTPConnection("127.0.0.1", port)
def call(method, body):
    connection.request("POST", "/api/admin/serviceapikey/" + method, json.dumps(body),
                       {"Authorization": auth, "Content-Type": "application/json"})
    answer = json.loads(connection.getresponse().read())
    if answer["error"] is not None:
        raise SystemExit(f"{method}: {answer['error']}")
def rss():
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
random.seed(10)
for order in range(1, keys + 1):
    call("create", {"order_id": order, "client_id": 1})
print(f"{name}: {keys} keys created: RSS {rss():.1f} MB", flush=True)
for label, low, high, rounds in (("configs of 150-249 bytes", 150, 249, small_rounds), ("configs of 0-16,300 bytes", 0, 16300, large_rounds)):
    for round in range(rounds):
        for order in range(1, keys + 1):
            size = random.randint(low, high)
            call("update", {"order_id": order, "config": {"custom_pad": "x" * max(0, size - 17)}})
    print(f"{name}: after {rounds * keys} updates with {label}: RSS {rss():.1f} MB", flush=True)
    for round in range(rounds):
        for order in range(1, keys + 1):
            call("reset", {"order_id": order})
    print(f"{name}: after {rounds * keys} resets: RSS {rss():.1f} MB", flush=True)
EOF
  kill "$pid"; wait "$pid" 2>/dev/null || true
  server=""
}

run this .build/release/apikeyd 18190
if [ -n "$BASELINE" ]; then run baseline "$BASELINE" 18191; fi
