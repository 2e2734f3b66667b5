#!/usr/bin/env bash
# Footprint report: stripped release binary size, and the resident memory and CPU time of
# `wagate run` with 1 and with 20 sessions. No WhatsApp server is reachable (the URL points at a
# closed local port), so every session sits in whatsapp-rust's reconnect backoff: this measures
# the idle cost of a session, not traffic.
#
# usage: bench/footprint.sh            (builds the release binary first)
#        FOOTPRINT_BIN=path bench/footprint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-target}"
if [ -z "${FOOTPRINT_BIN:-}" ]; then
  cargo build --release -p wagate >&2
  FOOTPRINT_BIN="$CARGO_TARGET_DIR/release/wagate"
fi
SETTLE="${SETTLE:-8}"      # seconds after start before sampling
WINDOW="${WINDOW:-10}"     # seconds of CPU accounting while idle
tick=$(getconf CLK_TCK)

# A port nothing listens on.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export WAGATE_WHATSAPP_URL="ws://127.0.0.1:$port/ws/chat"
export WAGATE_DISPLAY__TERMINAL_QR=false
export WAGATE_LOG=warn,whatsapp_rust=off
export WAGATE_API_ADDR=127.0.0.1:0

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

measure() {
  local n=$1 dir
  dir=$(mktemp -d)
  export WAGATE_DATA_DIR="$dir"
  # Claim the device (sessions only start once an API key exists).
  "$FOOTPRINT_BIN" key create --scope admin >/dev/null
  for i in $(seq 1 "$n"); do "$FOOTPRINT_BIN" session add "s$i" >/dev/null; done
  "$FOOTPRINT_BIN" session list >/dev/null
  for i in $(seq 1 "$n"); do "$FOOTPRINT_BIN" session start "s$i" >/dev/null; done
  "$FOOTPRINT_BIN" run 2>/dev/null &
  local pid=$!
  sleep "$SETTLE"
  local rss c0 c1
  rss=$(rss_kib "$pid")
  c0=$(cpu_ticks "$pid"); sleep "$WINDOW"; c1=$(cpu_ticks "$pid")
  local states
  states=$("$FOOTPRINT_BIN" session list | awk '{print $2}' | sort | uniq -c | tr -s ' ' | tr '\n' ',' )
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$dir"
  printf '| %-8s | %8s MiB | %6.2f %% | %s\n' "$n" "$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" \
    "$(awk -v d=$((c1 - c0)) -v t="$tick" -v w="$WINDOW" 'BEGIN{printf "%.2f", 100*d/t/w}')" "$states"
}

size=$(stat -c %s "$FOOTPRINT_BIN")
echo "wagate footprint  ($(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores)"
printf 'stripped release binary: %s bytes (%.2f MiB)\n\n' "$size" "$(awk -v s="$size" 'BEGIN{print s/1048576}')"
echo "| sessions | RSS          | CPU idle | states"
echo "|----------|--------------|----------|-------"
measure 1
measure 20
