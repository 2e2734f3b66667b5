#!/bin/bash
# Build the wagate SD card image from Debian's packages and wagate's .deb.
#
#   image/build.sh [--out DIR] [--test-image] [--deb FILE] [--profile NAME] [--no-xz]
#                  [--cache DIR] [--refresh-rootfs]
#
#   --out DIR         where the image goes (default: image/out; build outputs are not committed)
#   --test-image      wagate built with the `trust-wa-mock` feature, for image/boot-test.sh's
#                     wa-mock check. NEVER flash or ship it: it does not check WhatsApp's
#                     server certificate. Its files are named wagate-test-*.
#   --deb FILE        put this wagate .deb (arm64) in the image instead of building one
#   --profile NAME    cargo profile of the .deb's binary (default: release; CI uses cross-ci,
#                     built already with `--features spi`)
#   --no-xz           skip the .img.xz and the bmap file (a test build that only boots it)
#   --cache DIR       the root filesystem cache (default: /var/cache/wagate-image)
#   --refresh-rootfs  build the root filesystem again even if a cached one matches
#
# Outputs in DIR: sdcard.img, sdcard.img.xz, sdcard.img.sha256 (of both), sdcard.img.bmap (when
# bmaptool is installed) and sdcard.manifest (every package and version in the image).
#
# Runs as root on a Debian (bookworm or later) x86_64 or arm64 host and mounts nothing: the
# root filesystem is made by mmdebstrap (arm64 programs run under qemu-user through
# binfmt_misc, registered here if it is not), and the card by genimage (mtools for FAT,
# mke2fs -d for ext4). Host tools that are missing are installed with apt-get.
#
# Stages: tools, rootfs (cached: keyed by image/packages.txt and image/rootfs-hooks.sh; a
# cold build takes 15-25 minutes), deb, assemble (wagate, the board files shared with
# buildroot/, the image's own files), genimage, outputs. Each prints its time.
set -euo pipefail

IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$IMAGE_DIR/.." && pwd)
BOARD_OVERLAY=$REPO/buildroot/board/wagate/rootfs-overlay
SUITE=trixie
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security
COMPONENTS="main non-free-firmware"

OUT=$IMAGE_DIR/out
CACHE=/var/cache/wagate-image
TEST_IMAGE=0
DEB=""
PROFILE=release
XZ=1
REFRESH=0

die() { echo "build.sh: $*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

T0=$(date +%s)
T_STAGE=$T0
STAGE=""
stage() {
  local now
  now=$(date +%s)
  [ -n "$STAGE" ] && printf '   (%s took %ss)\n' "$STAGE" "$((now - T_STAGE))"
  STAGE=$1
  T_STAGE=$now
  [ "$1" = done ] && { printf '== done: %ss in all\n' "$((now - T0))"; return; }
  printf '== %s (+%ss)\n' "$1" "$((now - T0))"
}

# --- tools -------------------------------------------------------------------------------
apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_tools() {
  [ "$(id -u)" = 0 ] || die "run as root (mmdebstrap's root mode and the chroot need it)"
  local missing="" t
  for t in mmdebstrap:mmdebstrap genimage:genimage mcopy:mtools mkfs.vfat:dosfstools \
      mke2fs:e2fsprogs xz:xz-utils sfdisk:fdisk zstd:zstd; do
    command -v "${t%%:*}" >/dev/null || missing="$missing ${t#*:}"
  done
  [ -e /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || missing="$missing debian-archive-keyring"
  command -v bmaptool >/dev/null || missing="$missing bmap-tools"
  if [ "$(uname -m)" != aarch64 ] && [ ! -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ]; then
    missing="$missing qemu-user-static"
  fi
  if [ -n "$missing" ]; then
    echo "installing:$missing"
    # shellcheck disable=SC2086
    apt_install $missing
  fi
  if [ -z "$DEB" ] && [ "${ROOTFS_ONLY:-0}" = 0 ]; then
    command -v aarch64-linux-gnu-gcc >/dev/null && [ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] \
      || apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
      || rustup target add aarch64-unknown-linux-gnu
    command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
  fi
}

# arm64 programs in the chroot run under qemu-user: binfmt_misc with the F flag (the
# interpreter is opened now, so it works inside the chroot). Undone at exit if done here.
BINFMT_MOUNTED=0
BINFMT_REGISTERED=0
binfmt_on() {
  [ "$(uname -m)" = aarch64 ] && return
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
    BINFMT_MOUNTED=1
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -f "$conf" ] || die "$conf missing (qemu-user-static)"
    grep -v '^#' "$conf" | head -1 > /proc/sys/fs/binfmt_misc/register
    BINFMT_REGISTERED=1
  fi
  grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "qemu-aarch64 is registered in binfmt_misc without the F flag: the chroot cannot find it"
}
binfmt_off() {
  if [ $BINFMT_REGISTERED = 1 ]; then echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 || true; fi
  if [ $BINFMT_MOUNTED = 1 ]; then umount /proc/sys/fs/binfmt_misc || true; fi
}

# --- rootfs (cached) ---------------------------------------------------------------------
packages() { sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$IMAGE_DIR/packages.txt"; }

rootfs_tar() {
  local key
  key=$( { echo "$SUITE $COMPONENTS"; packages; cat "$IMAGE_DIR/rootfs-hooks.sh"; } \
    | sha256sum | cut -c1-16)
  echo "$CACHE/rootfs-$SUITE-arm64-$key.tar"
}

build_rootfs() {
  local tar=$1 tmp
  mkdir -p "$CACHE"
  if [ -s "$tar" ] && [ $REFRESH = 0 ]; then
    echo "cached: $tar"
    return
  fi
  tmp="$tar.partial"
  rm -f "$tmp"
  # path-exclude: no manual pages, translations or documentation but the copyright files.
  mmdebstrap --variant=minbase --arch=arm64 --mode=root --format=tar \
    --components="${COMPONENTS// /,}" \
    --include="$(packages | paste -sd,)" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --setup-hook="'$IMAGE_DIR/rootfs-hooks.sh' setup \"\$1\"" \
    --essential-hook="'$IMAGE_DIR/rootfs-hooks.sh' essential \"\$1\"" \
    --customize-hook="'$IMAGE_DIR/rootfs-hooks.sh' customize \"\$1\"" \
    "$SUITE" "$tmp" \
    "deb $MIRROR $SUITE $COMPONENTS" \
    "deb $MIRROR $SUITE-updates $COMPONENTS" \
    "deb $SECURITY $SUITE-security $COMPONENTS"
  mv "$tmp" "$tar"
  # Older root filesystems of other keys are dropped (one cache per machine is enough).
  find "$CACHE" -maxdepth 1 -name "rootfs-$SUITE-arm64-*.tar" ! -path "$tar" -delete
}

main() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --out) OUT=$2; shift 2 ;;
      --test-image) TEST_IMAGE=1; shift ;;
      --deb) DEB=$(realpath "$2"); shift 2 ;;
      --profile) PROFILE=$2; shift 2 ;;
      --no-xz) XZ=0; shift ;;
      --cache) CACHE=$2; shift 2 ;;
      --refresh-rootfs) REFRESH=1; shift ;;
      --rootfs-only) ROOTFS_ONLY=1; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
  done
  stage tools
  ensure_tools
  binfmt_on
  trap binfmt_off EXIT

  stage rootfs
  local tar
  tar=$(rootfs_tar)
  build_rootfs "$tar"
  [ "${ROOTFS_ONLY:-0}" = 1 ] && { stage done; return; }
  stage done
}

main "$@"; exit $?
