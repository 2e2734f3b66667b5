#!/usr/bin/env bash
# 100k malformed raw HTTP requests against the real wagate binary (bench/malformed_http.py):
# starts `wagate run` on a temp data dir (WhatsApp on a closed port), makes an admin key, runs
# the requests while sampling the daemon's RSS, prints the table. Knobs: REQUESTS (100000),
# WAGATE_BIN_PATH (a built wagate; default: `cargo build` the debug binary), SLOWLORIS (200).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-target}"
if [ -n "${WAGATE_BIN_PATH:-}" ]; then
  bin=$WAGATE_BIN_PATH
else
  cargo build --quiet --bin wagate
  bin=$CARGO_TARGET_DIR/debug/wagate
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wagate-malformed.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
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
status=0
python3 bench/malformed_http.py --addr "$addr" --pid "$pid" --key "$key" \
  -n "${REQUESTS:-100000}" --slowloris "${SLOWLORIS:-200}" || status=$?
if grep -q "panicked" "$tmp/wagate.log"; then
  echo "wagate logged a panic:" >&2
  grep -A5 "panicked" "$tmp/wagate.log" >&2
  status=1
fi
exit "$status"
