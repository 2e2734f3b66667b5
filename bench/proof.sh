#!/usr/bin/env bash
# The proof table, one markdown table on stdout (progress on stderr):
# - the stripped x86_64 release binary (default features, as shipped);
# - RSS of `wagate run` with 1, 10 and 50 sessions paired with wa-mock, connected and idle,
#   beside the floor: as many bare whatsapp-rust clients (in-memory stores, nothing else) in
#   one process (examples/bare_clients.rs), paired and idle the same way;
# - send-accept latency (benches/send_accept.rs) and webhook delivery beside a raw POST loop
#   (benches/webhook_throughput.rs), as those benches print them;
# - process start to the first QR (a new data directory, one unpaired session), and restart
#   to connected (one paired session: SIGTERM, start, until /api/sessions/ID says
#   connected), each the median of PROOF_REPEAT runs (default 5), polled every 20 ms.
#
# wagate talks to wa-mock only when built with the trust-wa-mock feature, so the RSS and
# timing rows use that build (same code otherwise); the size row is of the default build.
#
# usage: bench/proof.sh                  (builds what it needs: release, benches, example)
#   PROOF_SIZE_BIN=path      a default-feature release wagate (stripped here on a copy);
#   PROOF_SIZE_LABEL=text    what that binary is, for the row (default "x86_64, default features")
#   PROOF_WAGATE=path PROOF_WAMOCK=path   trust-wa-mock release wagate and release wa-mock
#   PROOF_FLOOR=path         the release bare_clients example
#   PROOF_COUNTS="1 10 50"  PROOF_REPEAT=5  PROOF_SETTLE=15 (seconds idle before sampling RSS)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/mock-lib.sh

COUNTS="${PROOF_COUNTS:-1 10 50}"
REPEAT="${PROOF_REPEAT:-5}"
SETTLE="${PROOF_SETTLE:-15}"
work=$(mktemp -d "${TMPDIR:-/tmp}/wagate-proof.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "proof: $*" >&2; }

# --- builds -------------------------------------------------------------------------------
# The default build first: the trust-wa-mock build below puts its own binary back in place.
SIZE_LABEL="${PROOF_SIZE_LABEL:-x86_64, default features}"
if [ -z "${PROOF_SIZE_BIN:-}" ]; then
  cargo build --release -p wagate >&2
  cp "$CARGO_TARGET_DIR/release/wagate" "$work/wagate-default"
  PROOF_SIZE_BIN="$work/wagate-default"
fi
cp "$PROOF_SIZE_BIN" "$work/wagate-stripped"
strip "$work/wagate-stripped"
size=$(stat -c %s "$work/wagate-stripped")
mock_build
if [ -z "${PROOF_FLOOR:-}" ]; then
  cargo build --release --features trust-wa-mock --example bare_clients >&2
  PROOF_FLOOR="$CARGO_TARGET_DIR/release/examples/bare_clients"
fi

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR+1)/2] : int((v[NR/2] + v[NR/2+1]) / 2) }'; }
minmax() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }
# Median of 5 RSS samples a second apart, KiB.
rss_settled() {
  local pid=$1
  for _ in 1 2 3 4 5; do rss_kib "$pid"; sleep 1; done | median
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

mock_start "$work"
pids+=("$MOCK_PID")

# --- RSS: N paired idle sessions, then N bare clients ------------------------------------
declare -A W_RSS F_RSS W_STATES
for n in $COUNTS; do
  log "RSS with $n sessions"
  d="$work/rss-$n"
  mkdir -p "$d"
  wagate_config "$d"
  KEY=$(wagate_cli "$d" key create --scope admin)
  # shellcheck disable=SC2046
  add_sessions "$d" $(seq -f 's%g' 1 "$n")
  wagate_run "$d"
  pids+=("$WAGATE_PID")
  poll 30 curl -sf "$API/api/health"
  # Ten pairings at a time.
  batch=()
  for i in $(seq 1 "$n"); do
    pair_session "s$i" >/dev/null &
    batch+=($!)
    if [ ${#batch[@]} = 10 ] || [ "$i" = "$n" ]; then
      for p in "${batch[@]}"; do wait "$p"; done
      batch=()
    fi
  done
  sleep "$SETTLE"
  W_RSS[$n]=$(rss_settled "$WAGATE_PID")
  W_STATES[$n]=$(api GET /api/sessions | jq -r '[.[] | select(.state == "connected")] | length')
  log "wagate, $n sessions (${W_STATES[$n]} connected): RSS ${W_RSS[$n]} KiB"
  if [ "$n" = 1 ]; then
    # Restart to connected, on this paired session.
    for _ in $(seq 1 "$REPEAT"); do
      stop "$WAGATE_PID"
      t0=$(now_ms)
      wagate_run "$d"
      pids+=("$WAGATE_PID")
      poll 60 is_connected s1
      echo $(($(now_ms) - t0)) >>"$work/restart.ms"
    done
  fi
  stop "$WAGATE_PID"

  log "RSS with $n bare clients"
  "$PROOF_FLOOR" --admin "$MOCK" --count "$n" >"$d/floor.out" 2>"$d/floor.err" &
  fpid=$!
  pids+=("$fpid")
  poll $((60 + 10 * n)) grep -q ready "$d/floor.out"
  sleep "$SETTLE"
  F_RSS[$n]=$(rss_settled "$fpid")
  log "floor, $n bare clients: RSS ${F_RSS[$n]} KiB"
  stop "$fpid"
done

# --- process start to first QR: a new data directory each time ---------------------------
log "start to first QR"
for r in $(seq 1 "$REPEAT"); do
  d="$work/qr-$r"
  mkdir -p "$d"
  wagate_config "$d"
  KEY=$(wagate_cli "$d" key create --scope admin)
  add_sessions "$d" s1
  t0=$(now_ms)
  wagate_run "$d"
  pids+=("$WAGATE_PID")
  poll 60 qr_code s1
  echo $(($(now_ms) - t0)) >>"$work/qr.ms"
  stop "$WAGATE_PID"
done

# --- the benches (same machine, same run) ---------------------------------------------------
# With the feature of the builds above, so they share every compiled dependency (the benches
# never reach WhatsApp: their sessions point at a closed port).
log "benches"
cargo bench --features trust-wa-mock --bench send_accept >"$work/send_accept.txt"
cargo bench --features trust-wa-mock --bench webhook_throughput >"$work/webhook.txt"

# --- the table ------------------------------------------------------------------------------
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo "### wagate proof table"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $cpu, $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr) $(uname -m), $(rustc --version | cut -d' ' -f1-2); wa-mock on loopback"
echo
echo "| measure | wagate | floor | wagate / floor |"
echo "|---|---:|---:|---:|"
printf '| stripped release binary (%s) | %.2f MiB (%s bytes) | | |\n' "$SIZE_LABEL" \
  "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')" "$size"
for n in $COUNTS; do
  printf '| RSS, %s paired idle session%s (%s connected) | %s MiB | %s MiB bare whatsapp-rust | %.2fx |\n' \
    "$n" "$([ "$n" = 1 ] || echo s)" "${W_STATES[$n]}" "$(mib "${W_RSS[$n]}")" "$(mib "${F_RSS[$n]}")" \
    "$(awk -v w="${W_RSS[$n]}" -v f="${F_RSS[$n]}" 'BEGIN { print w / f }')"
done
first=${COUNTS%% *}
last=${COUNTS##* }
if [ "$first" != "$last" ]; then
  printf '| RSS per extra session (%s to %s) | %s MiB | %s MiB | |\n' "$first" "$last" \
    "$(awk -v a="${W_RSS[$first]}" -v b="${W_RSS[$last]}" -v n=$((last - first)) 'BEGIN { printf "%.2f", (b - a) / n / 1024 }')" \
    "$(awk -v a="${F_RSS[$first]}" -v b="${F_RSS[$last]}" -v n=$((last - first)) 'BEGIN { printf "%.2f", (b - a) / n / 1024 }')"
fi
# send_accept prints "| rate | w50 µs | w99 µs | f50 µs | f99 µs | ratio |" rows.
awk -F'|' '$2 ~ /^ *[0-9]+ *$/ {
  for (i = 2; i <= 7; i++) gsub(/^ +| +$/, "", $i)
  printf "| send-accept latency p50 / p99 at %s req/s (202, durable in redb) | %s / %s | %s / %s axum handler | %s (p50) |\n", $2, $3, $4, $5, $6, $7
}' "$work/send_accept.txt"
raw=$(awk '/raw unsigned POST loop/ { print $NF }' "$work/webhook.txt")
drain=$(awk '/signed, durable deliveries/ { print $NF }' "$work/webhook.txt")
printf '| webhook deliveries per second (signed, durable, backlog drain) | %s/s | %s/s raw unsigned POST loop | %.2fx |\n' \
  "$drain" "$raw" "$(awk -v a="$drain" -v b="$raw" 'BEGIN { print a / b }')"
awk '/^p50 .* ms/ { printf "| webhook event-to-delivery p50 / p99 at 50 events/s | %s / %s ms | | |\n", $2, $5 }' "$work/webhook.txt"
printf '| process start to first QR (new data dir; median of %s, range) | %s ms (%s) | | |\n' \
  "$REPEAT" "$(median <"$work/qr.ms")" "$(minmax <"$work/qr.ms")"
printf '| restart to connected (SIGTERM, start, until connected; median of %s, range) | %s ms (%s) | | |\n' \
  "$REPEAT" "$(median <"$work/restart.ms")" "$(minmax <"$work/restart.ms")"
