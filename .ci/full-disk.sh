#!/usr/bin/env bash
# Full disk under the real daemon (tests/it/full_disk.rs says what it proves). Needs root: mounts
# a small tmpfs for the data directory, runs the test (ignored in plain `cargo test`) with
# FULL_DISK_DIR pointing at it, and unmounts it again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-target}"

if [ "$(id -u)" != 0 ] || ! command -v mount >/dev/null; then
  echo "full-disk: needs root and mount(8); not run" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/wagate-full-disk.XXXXXX")
cleanup() {
  umount "$dir" 2>/dev/null || true
  rmdir "$dir" 2>/dev/null || true
}
trap cleanup EXIT
mount -t tmpfs -o size=48m,mode=0700 wagate-full-disk "$dir"

FULL_DISK_DIR="$dir" cargo test -p wagate --features wagate/trust-wa-mock --test it \
  -- full_disk:: --ignored --nocapture
