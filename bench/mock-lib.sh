# Shared by bench/proof.sh and bench/soak.sh (sourced, not run): the release binaries, a
# wa-mock process, a wagate daemon configured for it, and pairing a session through the API
# with the mock phone scanning its QR. Needs curl, jq and python3 (for a free port).

# The release binaries (built with the trust-wa-mock feature, which wagate needs to talk to
# wa-mock; never the shipped build). PROOF_WAGATE / PROOF_WAMOCK skip the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-target}"
mock_build() {
  if [ -z "${PROOF_WAGATE:-}" ] || [ -z "${PROOF_WAMOCK:-}" ]; then
    cargo build --release --workspace --features wagate/trust-wa-mock >&2
  fi
  WAGATE="${PROOF_WAGATE:-$CARGO_TARGET_DIR/release/wagate}"
  WAMOCK="${PROOF_WAMOCK:-$CARGO_TARGET_DIR/release/wa-mock}"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }
# Poll `cmd...` every 20 ms until it succeeds; fail after $1 seconds.
poll() {
  local secs=$1; shift
  local end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { echo "timed out: $*" >&2; return 1; }
    sleep 0.02
  done
}

# mock_start DIR: wa-mock on a free port; sets MOCK (base URL), MOCK_PID, and MOCK_CA (the media
# host's certificate, written to DIR/mock-ca.pem).
mock_start() {
  local dir=$1 port
  port=$(free_port)
  RUST_LOG=warn "$WAMOCK" --listen "127.0.0.1:$port" >"$dir/wa-mock.log" 2>&1 &
  MOCK_PID=$!
  MOCK="http://127.0.0.1:$port"
  poll 20 curl -sf "$MOCK/admin/accounts"
  MOCK_CA="$dir/mock-ca.pem"
  curl -sf "$MOCK/admin/media-cert" >"$MOCK_CA"
}

# wagate_config DIR [EXTRA_TOML]: DIR/wagate.toml for a daemon on a free port against wa-mock;
# sets API (base URL). Fast pacing (the defaults wait seconds per message).
wagate_config() {
  local dir=$1 extra=${2:-} port
  port=$(free_port)
  API="http://127.0.0.1:$port"
  mkdir -p "$dir/data"
  cat >"$dir/wagate.toml" <<EOF
[store]
data_dir = "$dir/data"
[api]
addr = "127.0.0.1:$port"
[whatsapp]
url = "${MOCK/http:/ws:}/ws/chat"
trust_ca_file = "$MOCK_CA"
[display]
terminal_qr = false
[discovery]
enabled = false
[log]
level = "warn,whatsapp_rust=off"
[pacing]
min_delay_ms = 1
max_delay_ms = 10
typing_cps = 1000
typing_max_ms = 20
per_minute = 100000
per_hour = 100000
per_day = 1000000
warmup = []
duplicate_action = "off"
$extra
EOF
}

# wagate_cli DIR ARGS...: the CLI on DIR's config.
wagate_cli() { local dir=$1; shift; "$WAGATE" --config "$dir/wagate.toml" "$@"; }

# add_sessions DIR ID...: creates and enables sessions with the CLI (before `run`).
add_sessions() {
  local dir=$1 id; shift
  for id in "$@"; do wagate_cli "$dir" session add "$id" >/dev/null; done
  for id in "$@"; do wagate_cli "$dir" session start "$id" >/dev/null; done
}

# wagate_run DIR: starts the daemon in the background; sets WAGATE_PID.
wagate_run() {
  local dir=$1
  "$WAGATE" --config "$dir/wagate.toml" run >>"$dir/wagate.log" 2>&1 &
  WAGATE_PID=$!
}

api() { # api METHOD PATH [JSON]
  local m=$1 p=$2
  if [ $# -ge 3 ]; then
    curl -sS -X "$m" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      --data-binary "$3" "$API$p"
  else
    curl -sS -X "$m" -H "Authorization: Bearer $KEY" "$API$p"
  fi
}
session_state() { api GET "/api/sessions/$1" | jq -r .state; }
is_connected() { [ "$(session_state "$1")" = connected ]; }
qr_code() { # prints the session's current QR code, fails while there is none
  local c
  c=$(curl -sf -H "Authorization: Bearer $KEY" -H 'Accept: application/json' \
    "$API/api/sessions/$1/qr" | jq -er .code) || return 1
  printf '%s' "$c"
}

# pair_session ID: creates (if needed) and pairs the session (the mock phone scans its QR);
# prints its phone JID.
pair_session() {
  local id=$1 code
  api POST /api/sessions "{\"id\":\"$id\"}" >/dev/null
  poll 60 qr_code "$id"
  code=$(qr_code "$id")
  curl -sf -X POST --data-binary "$code" "$MOCK/admin/scan" | jq -r '.phone + "@s.whatsapp.net"'
  poll 60 is_connected "$id"
}
