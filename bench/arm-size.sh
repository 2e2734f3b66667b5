#!/usr/bin/env bash
# Appliance binary sizes: builds wagate with the size-tuned release profile (Cargo.toml:
# opt-level "z", fat LTO, one codegen unit, panic=abort, stripped) and the SPI display, for
# the ARM targets of the Raspberry Pi images, and prints one row per target. The goal is
# 8 MiB or less, stripped, with everything in.
#
# It links as the Buildroot package does (buildroot/package/wagate/wagate.mk): with rust-lld,
# which ships with the Rust toolchain, packing relative relocations (RELR; glibc 2.36 or
# newer, which the binary then requires by version) and folding identical functions. The
# binary stays position-independent. LINK=gnu links with the cross gcc's GNU ld instead.
#
# usage: bench/arm-size.sh                 aarch64, armv7 and thumbv7neon (Thumb-2, same boards)
#        bench/arm-size.sh TARGET ...       some targets
#        OPT_LEVEL=s bench/arm-size.sh      compare another opt-level (CARGO_PROFILE_RELEASE_OPT_LEVEL)
#
# Needs the cross toolchains of .cargo/config.toml (gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf) and the Rust targets. A cold build takes 10-25 minutes a target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-target}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf thumbv7neon-unknown-linux-gnueabihf)
if [ -n "${OPT_LEVEL:-}" ]; then
  export CARGO_PROFILE_RELEASE_OPT_LEVEL="$OPT_LEVEL"
fi
opt=$(sed -n '/^\[profile.release\]/,/^\[/s/^opt-level = "\(.*\)"/\1/p' Cargo.toml)
opt=${OPT_LEVEL:-$opt}
goal=$((8 * 1024 * 1024))
link=${LINK:-lld}
if [ "$link" = lld ]; then
  gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
  [ -x "$gcc_ld/ld.lld" ] || { echo "no rust-lld in this toolchain ($gcc_ld); LINK=gnu" >&2; exit 1; }
  lld_flags="-C link-arg=-fuse-ld=lld -C link-arg=-B$gcc_ld -C link-arg=-Wl,-z,pack-relative-relocs -C link-arg=-Wl,--icf=all"
fi

rows=()
for t in "${targets[@]}"; do
  start=$(date +%s)
  var="CARGO_TARGET_$(echo "$t" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
  if [ "$link" = lld ]; then export "$var=$lld_flags"; else unset "$var"; fi
  cargo build --locked --release --features spi --target "$t" >&2
  secs=$(( $(date +%s) - start ))
  bin="$CARGO_TARGET_DIR/$t/release/wagate"
  bytes=$(stat -c %s "$bin")
  if [ "$bytes" -le "$goal" ]; then verdict="yes"; else verdict="no"; fi
  stripped="yes"
  if file "$bin" 2>/dev/null | grep -q 'not stripped'; then stripped="NO"; fi
  rows+=("$(printf '| %-32s | %-3s | %10s | %8s | %-8s | %-11s | %6ss |' \
    "$t" "$opt" "$bytes" "$(awk -v b="$bytes" 'BEGIN{printf "%.2f", b/1048576}')" \
    "$stripped" "$verdict" "$secs")")
done

echo
echo "wagate $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1), release profile, features spi, linked with $link"
printf '| %-32s | %-3s | %10s | %8s | %-8s | %-11s | %7s |\n' \
  target opt bytes MiB stripped "<= 8 MiB" build
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "-----" \
  "$(printf -- '-%.0s' {1..12})" "----------" "----------" "-------------" "---------"
printf '%s\n' "${rows[@]}"
