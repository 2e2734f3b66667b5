#!/usr/bin/env bash
# Check this BR2_EXTERNAL tree against a Buildroot checkout, without building or downloading
# anything: Buildroot lists the defconfigs, loads each one (every option must survive: a
# `savedefconfig` round trip gives the committed file back byte for byte), selects wagate with
# systemd and Rust, and parses package/wagate/wagate.mk.
#
#   buildroot/validate.sh BUILDROOT_DIR [OUTPUT_DIR]
#
# OUTPUT_DIR (default: a new temporary directory) gets one O= output directory per defconfig.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -f "$1/Makefile" ] || [ ! -d "$1/package" ]; then
  echo "usage: $0 BUILDROOT_DIR [OUTPUT_DIR]   (BUILDROOT_DIR: a Buildroot checkout)" >&2
  exit 2
fi
BR=$(cd "$1" && pwd)
EXT=$(cd "$(dirname "$0")" && pwd)
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "Buildroot: $BR ($(git -C "$BR" describe --always 2>/dev/null || echo 'not a git checkout'))"
echo "external:  $EXT"

# 1. The defconfigs are listed under this external tree.
list=$(make -s -C "$BR" O="$OUT/list" BR2_EXTERNAL="$EXT" list-defconfigs)
echo "$list" | sed -n '/^External configs/,$p'
defconfigs=$(cd "$EXT/configs" && ls -- *_defconfig)
for d in $defconfigs; do
  echo "$list" | grep -q "^  $d " || fail "$d is not listed"
done

for d in $defconfigs; do
  o="$OUT/${d%_defconfig}"
  # 2. It loads.
  make -s -C "$BR" O="$o" BR2_EXTERNAL="$EXT" "$d" > "$o.log" 2>&1 || { cat "$o.log"; fail "make $d"; }
  # 3. wagate with systemd, Rust for the target, the board files of this tree.
  for want in BR2_PACKAGE_WAGATE=y BR2_INIT_SYSTEMD=y BR2_PACKAGE_HOST_RUSTC=y \
      BR2_PACKAGE_RPI_FIRMWARE=y BR2_TARGET_ROOTFS_EXT2_4=y BR2_PACKAGE_HOST_GENIMAGE=y; do
    grep -qx "$want" "$o/.config" || fail "$d: $want not set in .config"
  done
  grep -q '^BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE=".*board/wagate/config_' "$o/.config" \
    || fail "$d: config.txt is not this tree's"
  cfgtxt=$(sed -n 's/^BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE="$(BR2_EXTERNAL_WAGATE_PATH)\/\(.*\)"/\1/p' "$o/.config")
  grep -qx 'dtparam=spi=on' "$EXT/$cfgtxt" || fail "$d: $cfgtxt does not enable SPI"
  # 4. savedefconfig round trip: Buildroot writes back exactly the committed defconfig.
  make -s -C "$BR" O="$o" savedefconfig BR2_DEFCONFIG="$o.saved" >> "$o.log" 2>&1 \
    || { cat "$o.log"; fail "savedefconfig $d"; }
  diff -u "$EXT/configs/$d" "$o.saved" || fail "$d: savedefconfig differs (an option was dropped or the file is not canonical)"
  # 5. The package's make file: what Buildroot resolved.
  vars=$(make -s -C "$BR" O="$o" printvars \
    VARS='RUSTC_TARGET_NAME WAGATE_SITE_METHOD WAGATE_CARGO_BUILD_OPTS WAGATE_DEPENDENCIES WAGATE_PRE_CONFIGURE_HOOKS')
  echo "$vars" | grep -qx 'WAGATE_SITE_METHOD=local' || fail "$d: wagate.mk not parsed"
  echo "$vars" | grep -q '^WAGATE_DEPENDENCIES=.*host-rustc' || fail "$d: wagate does not depend on host-rustc"
  echo "$vars" | grep -q '^WAGATE_PRE_CONFIGURE_HOOKS=.*WAGATE_VENDOR_CRATES' || fail "$d: no vendoring hook"
  echo "ok   $d: loads, savedefconfig round trip identical, $(echo "$vars" | grep '^RUSTC_TARGET_NAME=')"
done
echo "all ${defconfigs//$'\n'/ } valid"
