#!/usr/bin/env bash
# Soak: the release wagate daemon under mixed load through wa-mock for SOAK_MINUTES (default
# 30): two sessions paired by the mock phone send each other seven kinds of message (text,
# image, document, location, contact, poll, link preview), so each session also receives;
# every event goes as a signed webhook to a local receiver; API reads (session list, message
# status, queue, webhook list) go between the sends. Every SOAK_SAMPLE seconds (default 30)
# the daemon's RSS and the redb file's size go into a CSV in the temp dir.
#
# Verdict "flat", for RSS and for the redb file each: after the first quarter (warm-up), the
# median of the last quarter's samples is within SOAK_TOLERANCE % (default 10) of the median
# of the second quarter's. The redb file is bounded by the retention of message records, of
# the webhook delivery log and events, and of whatsapp-rust's per-message records; a short soak
# reaches small bounds only, so the daemon keeps SOAK_KEEP (default 100) finished sent and
# received messages, and ten times as many deliveries, events, sent-message copies and message
# secrets, pruned every minute ([store] retention_interval_minutes). The file's size is also
# given per message handled.
#
# At the end, examples/redb_tables (if built: `cargo build --release --example redb_tables`, or
# SOAK_TABLES=path) prints the redb file's tables by size.
#
# usage: bench/soak.sh                     (builds the release binaries first)
#        PROOF_WAGATE=path PROOF_WAMOCK=path SOAK_MINUTES=30 bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/mock-lib.sh
mock_build

MINUTES="${SOAK_MINUTES:-30}"
SAMPLE="${SOAK_SAMPLE:-30}"
TOL="${SOAK_TOLERANCE:-10}"
GAP="${SOAK_GAP:-0.5}" # seconds between two sends

dir=$(mktemp -d "${TMPDIR:-/tmp}/wagate-soak.XXXXXX")
csv="$dir/soak.csv"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

mock_start "$dir"
pids+=("$MOCK_PID")

# The webhook receiver: answers 204 to every POST and counts them in a file.
rport=$(free_port)
cat >"$dir/receiver.py" <<'EOF'
import http.server, sys
count = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        count += 1
        with open(sys.argv[2], "w") as f:
            f.write(str(count))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$dir/receiver.py" "$rport" "$dir/received" &
pids+=($!)
echo 0 >"$dir/received"

# Retention bounds a short run reaches (the appliance keeps 20,000 messages, hourly).
keep="${SOAK_KEEP:-100}"
export WAGATE_STORE__MESSAGE_RETENTION_MAX="$keep"
export WAGATE_STORE__RETENTION_INTERVAL_MINUTES=1
export WAGATE_WEBHOOKS__RETENTION_MAX_DELIVERIES=$((keep * 10))
export WAGATE_WEBHOOKS__RETENTION_MAX_EVENTS=$((keep * 10))
export WAGATE_STORE__WA_MESSAGE_RECORDS_MAX=$((keep * 10))
wagate_config "$dir"
KEY=$(wagate_cli "$dir" key create --scope admin)
add_sessions "$dir" a b
wagate_run "$dir"
pids+=("$WAGATE_PID")
poll 30 curl -sf "$API/api/health"
a_jid=$(pair_session a)
b_jid=$(pair_session b)
api POST /api/webhooks "{\"url\":\"http://127.0.0.1:$rport/hook\"}" >/dev/null

png_b64=$( (printf '\x89PNG\r\n\x1a\n'; head -c 4000 /dev/urandom) | base64 -w0)
pdf_b64=$( (printf '%%PDF-1.4\n'; head -c 6000 /dev/urandom) | base64 -w0)

# One send; prints the message id (empty if refused, which the summary counts).
send() { # send SESSION KIND JSON-WITHOUT-TO TO
  local body
  body=$(jq -c --arg to "$4" '. + {to: $to}' <<<"$3")
  api POST "/api/sessions/$1/messages/$2" "$body" | jq -r '.id // empty'
}

load() {
  set +e
  local i=0 from to id
  while :; do
    i=$((i + 1))
    if [ $((i % 2)) = 0 ]; then from=a to=$b_jid; else from=b to=$a_jid; fi
    case $((i % 7)) in
      0) id=$(send $from text "{\"text\":\"soak message $i\"}" "$to") ;;
      1) id=$(send $from image "{\"base64\":\"$png_b64\",\"caption\":\"pic $i\"}" "$to") ;;
      2) id=$(send $from location '{"latitude":51.5007,"longitude":-0.1246,"name":"Big Ben"}' "$to") ;;
      3) id=$(send $from contact '{"name":"Ada Lovelace","phones":["+44 7700 900123"]}' "$to") ;;
      4) id=$(send $from poll "{\"question\":\"Lunch $i?\",\"options\":[\"pizza\",\"soup\"]}" "$to") ;;
      5) id=$(send $from document "{\"base64\":\"$pdf_b64\",\"file_name\":\"n$i.pdf\"}" "$to") ;;
      6) id=$(send $from link_preview "{\"text\":\"read $i\",\"url\":\"https://example.com/$i\",\"title\":\"t\"}" "$to") ;;
    esac
    if [ -n "$id" ]; then echo ok >>"$dir/sends"; else echo refused >>"$dir/sends"; fi
    # Reads between the sends.
    api GET /api/sessions >/dev/null
    [ -n "$id" ] && api GET "/api/sessions/$from/messages/$id" >/dev/null
    if [ $((i % 10)) = 0 ]; then
      api GET "/api/sessions/$from/queue" >/dev/null
      api GET /api/webhooks >/dev/null
    fi
    sleep "$GAP"
  done
}
load &
load_pid=$!
pids+=("$load_pid")

redb="$dir/data/wagate.redb"
[ -f "$redb" ] || redb=$(find "$dir/data" -name '*.redb' | head -1)
echo "t_s,rss_kib,redb_bytes,sends,webhooks_received" >"$csv"
echo "soak: $MINUTES min, sampling every ${SAMPLE}s into $csv" >&2
start=$(date +%s)
end=$((start + MINUTES * 60))
while :; do
  t=$(($(date +%s) - start))
  kill -0 "$WAGATE_PID" 2>/dev/null || { echo "wagate exited" >&2; exit 1; }
  sends=$( [ -f "$dir/sends" ] && wc -l <"$dir/sends" || echo 0)
  echo "$t,$(rss_kib "$WAGATE_PID"),$(stat -c %s "$redb"),$sends,$(cat "$dir/received")" >>"$csv"
  [ "$(date +%s)" -lt "$end" ] || break
  sleep "$SAMPLE"
done
kill "$load_pid" 2>/dev/null || true

refused=$(grep -c refused "$dir/sends" || true)
states=$(api GET /api/sessions | jq -r '[.[] | .id + ":" + .state] | join(",")' 2>/dev/null || true)

# first/peak/last and the quarter medians, per column (2: RSS, 3: redb).
summary() {
  awk -F, -v col="$1" -v tol="$TOL" -v unit="$2" -v div="$3" '
    NR == 1 { next }
    { v[++n] = $col; if ($col > peak) peak = $col }
    function median(lo, hi,   m, i, j, t, a) {
      m = 0; for (i = lo; i <= hi; i++) a[++m] = v[i]
      for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
      return m % 2 ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
    }
    END {
      q = int(n / 4); if (q < 1) q = 1
      m2 = median(q + 1, 2 * q); m4 = median(n - q + 1, n)
      d = m2 > 0 ? 100 * (m4 - m2) / m2 : 0
      printf "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %+.1f %% | %s |\n", unit, v[1]/div, peak/div, v[n]/div, m2/div, m4/div, d, (d <= tol && d >= -tol) ? "flat" : "NOT flat"
    }' "$csv"
}
last=$(tail -1 "$csv")
n_sends=$(cut -d, -f4 <<<"$last")
n_hooks=$(cut -d, -f5 <<<"$last")
echo
echo "wagate soak ($(date -u +%Y-%m-%d), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores): $MINUTES min, $(($(wc -l <"$csv") - 1)) samples every ${SAMPLE}s"
echo "mixed load: $n_sends sends accepted ($refused refused) between two sessions through wa-mock, $n_hooks webhooks received, API reads between sends; sessions at the end: $states"
echo
echo "| measure | first | peak | last | 2nd-quarter median | last-quarter median | change | verdict (±$TOL %) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
summary 2 "RSS (MiB)" 1024
summary 3 "redb file (MiB)" 1048576
awk -F, -v s="$n_sends" 'NR == 2 { f = $3 } END { if (s > 0) printf "\nredb growth: %.0f bytes per accepted message over the run\n", ($3 - f) / s }' "$csv"
echo "CSV: $csv"

# Where the file's bytes are (redb locks the file: stop the daemon first).
tables="${SOAK_TABLES:-$CARGO_TARGET_DIR/release/examples/redb_tables}"
if [ -x "$tables" ]; then
  kill -TERM "$WAGATE_PID" 2>/dev/null || true
  wait "$WAGATE_PID" 2>/dev/null || true
  echo
  "$tables" "$redb"
fi
