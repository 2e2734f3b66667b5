#!/usr/bin/env bash
# Schemathesis against a live `wagate run`: every operation of /api/openapi.json with
# generated (valid and invalid) requests; fails on any 5xx or any answer the document does not
# describe (status code, content type, headers, body schema).
#
#   .ci/schemathesis.sh            # CI form: a bounded number of examples per operation
#   MAX_EXAMPLES=500 .ci/schemathesis.sh
#
# Knobs (not WAGATE_*: wagate refuses unknown WAGATE_ variables): MAX_EXAMPLES (default 25),
# WAGATE_BIN_PATH (a built wagate; default: `cargo build` the debug binary), KEEP_TMP=1.
# DELETE /api/keys/{id} is left out: the stateful phase finds the run's own admin key in
# GET /api/keys and revokes it, after which every operation only answers 401.
# Installs the pinned schemathesis into a venv in the temp dir (python3 with venv and pip).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${MAX_EXAMPLES:-25}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-target}"

if [ -n "${WAGATE_BIN_PATH:-}" ]; then
  bin=$WAGATE_BIN_PATH
else
  cargo build --quiet --bin wagate
  bin=$CARGO_TARGET_DIR/debug/wagate
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wagate-schemathesis.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

venv=${SCHEMATHESIS_VENV:-${TMPDIR:-/tmp}/wagate-schemathesis-venv-$SCHEMATHESIS_VERSION}
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
# The daemon's environment: a temp data dir, WhatsApp on a closed port (sessions only retry).
# `env` execs wagate, so `$!` below is the daemon's own pid.
daemon=(env -i PATH="$PATH"
  WAGATE_DATA_DIR="$tmp/data"
  WAGATE_API_ADDR="$addr"
  WAGATE_WHATSAPP_URL="ws://127.0.0.1:9/ws/chat"
  WAGATE_DISPLAY__BACKEND=none
  WAGATE_DISPLAY__TERMINAL_QR=false
  WAGATE_LOG=warn
  "$bin")
mkdir -p "$tmp/data"
key=$("${daemon[@]}" key create --scope admin)
"${daemon[@]}" run >"$tmp/wagate.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  if curl -fsS "http://$addr/api/health" >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/wagate.log"; exit 1; }
  sleep 0.1
done
curl -fsS "http://$addr/api/health" >/dev/null || { echo "wagate did not come up" >&2; exit 1; }

# Path parameters: the session the daemon made at start (`default`) instead of random ids that
# only ever meet 404, so the operations under a session run their validation for real.
cat >"$tmp/schemathesis.toml" <<'TOML'
[parameters]
"path.sid" = "default"
TOML

# Schemathesis keeps a failure cache in its working directory: run it in the temp dir.
cd "$tmp"
status=0
"$venv/bin/schemathesis" --config-file "$tmp/schemathesis.toml" run "http://$addr/api/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "$MAX_EXAMPLES" \
  ${EXTRA_ARGS:-} \
  --workers 1 \
  --seed 1 \
  --exclude-operation-id deleteApiKeysId \
  --continue-on-failure \
  --generation-database none \
  --report junit --report-dir "$tmp/report" \
  || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "wagate died during the run:" >&2
  tail -50 "$tmp/wagate.log" >&2
  status=1
fi
if grep -q "panicked" "$tmp/wagate.log"; then
  echo "wagate logged a panic:" >&2
  grep -A5 "panicked" "$tmp/wagate.log" >&2
  status=1
fi
exit "$status"
