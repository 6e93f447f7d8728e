#!/usr/bin/env bash
# `make conformance`: validates docs/openapi.yaml and holds a real `apikeyd serve` to it with
# schemathesis (every check but negative_data_rejection: the FOSSBilling envelope answers bad
# parameters with HTTP 200 by design), EXAMPLES test cases per operation (at least 100).
# Tools go into a virtual environment of their own, .build/conformance/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${EXAMPLES:-100}
venv=.build/conformance/venv
if [ ! -x "$venv/bin/schemathesis" ] || [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet schemathesis==4.32.5 openapi-spec-validator==0.9.0
fi
"$venv/bin/openapi-spec-validator" docs/openapi.yaml
swift build --product apikeyd
work=$(mktemp -d /tmp/apikeyd-conformance.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin_token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
.build/debug/apikeyd serve --host 127.0.0.1 --port "$port" --data-dir "$work/store" --admin-token "$admin_token" --no-rate-limit \
  ${SERVE_ARGS:-} 2>"$work/server.log" &
pid=$!
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { cat "$work/server.log"; exit 1; }
# A client with a token, so that the client role's calls get past authentication; with a number
# schemathesis will not draw for its own token_reset calls (it tries 1 and the largest first).
client_id=4820193746051
client_token=$(curl -sf -u "admin:$admin_token" "http://127.0.0.1:$port/api/admin/client/token_reset?client_id=$client_id" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["api_token"])')
cat >"$work/schemathesis.toml" <<TOML
[auth.openapi.admin]
username = "admin"
password = "$admin_token"

[auth.openapi.client]
username = "client"
password = "$client_token"
TOML
status=0
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run docs/openapi.yaml \
  --url "http://127.0.0.1:$port" --checks all --exclude-checks negative_data_rejection \
  --max-examples "$EXAMPLES" --seed "${SEED:-1}" --no-color ${SCHEMATHESIS_ARGS:-} || status=$?
kill -0 "$pid" 2>/dev/null || { echo "the server died:"; cat "$work/server.log"; status=1; }
exit $status
