#!/usr/bin/env bash
# Run every fuzz target for SECS seconds each (default 180), one after the other, and print
# runs, seconds and crashes per target. Nightly only: `cargo install cargo-fuzz` first.
#   fuzz/run.sh                 # all targets
#   SECS=600 fuzz/run.sh qr     # one target, longer
# New corpus entries go to fuzz/corpus-run/<t> (git-ignored); the committed seeds in
# fuzz/corpus/<t> are read only. Crashes land in fuzz/artifacts/<t> (git-ignored).
set -uo pipefail
cd "$(dirname "$0")"
SECS=${SECS:-180}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-fuzz-target}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(compose recipient config qr api_json api_multipart)
cargo +nightly fuzz build -s none
printf '%-14s %10s %8s %8s\n' target runs seconds crashes
for t in "${targets[@]}"; do
  mkdir -p "corpus-run/$t" "artifacts/$t"
  log=$(mktemp)
  start=$(date +%s)
  cargo +nightly fuzz run -s none "$t" "corpus-run/$t" "corpus/$t" -- \
    -max_total_time="$SECS" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "artifacts/$t" -type f | wc -l)
  printf '%-14s %10s %8s %8s\n' "$t" "${runs:-?}" "$secs" "$crashes"
  if [ "$rc" != 0 ]; then
    echo "  $t exited $rc; the end of its log:"; tail -30 "$log" | sed 's/^/  /'
  fi
  rm -f "$log"
done
