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
#   --rootfs-only     stop after the root filesystem (fills the cache)
#   --rootfs-cached   only tell whether the root filesystem is cached (exit 0) or not (1)
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
  [ "$1" = "done" ] && { printf '== done: %ss in all\n' "$((now - T0))"; return; }
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
PROC_MOUNTED=""
cleanup() {
  if [ -n "$PROC_MOUNTED" ]; then umount "$PROC_MOUNTED" || true; fi
  binfmt_off
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
    --dpkgopt=force-confold --dpkgopt=force-confdef \
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

# --- deb ---------------------------------------------------------------------------------
build_deb() {
  local features=spi out=$WORK/deb
  if [ -n "$DEB" ]; then
    [ -f "$DEB" ] || die "no such .deb: $DEB"
    echo "using $DEB"
    return
  fi
  [ $TEST_IMAGE = 1 ] && features=spi,trust-wa-mock
  rm -rf "$out"
  mkdir -p "$out"
  # The binary with exactly these features (cargo rebuilds when they changed since the last
  # build in this target directory), then the package around it.
  (cd "$REPO" && cargo build --locked --profile "$PROFILE" --features "$features" \
    --target aarch64-unknown-linux-gnu)
  local rev=1
  [ $TEST_IMAGE = 1 ] && rev=1+trustwamock
  (cd "$REPO" && cargo deb --no-build --no-strip --profile "$PROFILE" \
    --target aarch64-unknown-linux-gnu --deb-revision "$rev" -o "$out/")
  DEB=$(ls "$out"/wagate_*_arm64.deb)
  echo "$DEB"
}

# --- assemble: the cached root filesystem + wagate + board files -------------------------
chroot_run() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

# Copy a directory tree into the root filesystem as root:root (the checkout's owner does not
# matter), leaving out the paths given after it.
copy_tree() {
  local src=$1 ex=()
  shift
  for p in "$@"; do ex+=("--exclude=./$p"); done
  tar -C "$src" --owner=0 --group=0 "${ex[@]}" -cf - . | tar -C "$ROOT" --no-overwrite-dir -xf -
}

assemble() {
  local tar=$1
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -xpf "$tar"
  # What maintainer scripts and hooks expect in a chroot: /proc (ischroot, findmnt) and
  # /dev/null. Nothing of the image is mounted.
  [ -c "$ROOT/dev/null" ] || mknod -m 0666 "$ROOT/dev/null" c 1 3
  mount -t proc proc "$ROOT/proc"
  PROC_MOUNTED=$ROOT/proc

  # wagate: its package installs the binary, the unit (enabled), the service user and groups,
  # /etc/wagate/wagate.toml and the udev rules (the board files of buildroot/, shared).
  cp "$DEB" "$ROOT/tmp/wagate.deb"
  chroot_run dpkg -i /tmp/wagate.deb
  rm -f "$ROOT/tmp/wagate.deb"
  chroot_run dpkg-query -W -f '${Status}\n' wagate | grep -qx 'install ok installed' \
    || die "wagate is not installed in the image"
  [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/wagate.service" ] \
    || die "wagate.service is not enabled in the image"

  # The board files shared with buildroot/ (fstab, network, Wi-Fi udev rule and unit drop-in,
  # presets); the SPI/GPIO udev rules and wagate.toml came with the package from the same files.
  copy_tree "$BOARD_OVERLAY" etc/udev/rules.d/60-wagate-spi-gpio.rules etc/wagate
  # This image's own files: host name and board settings, Wi-Fi and SSH from the boot
  # partition, SSH keys only.
  copy_tree "$IMAGE_DIR/rootfs"
  install -m 0644 "$IMAGE_DIR/boot/wifi-example.txt" "$IMAGE_DIR/boot/README.txt" "$ROOT/boot/firmware/"
  mkdir -p "$ROOT/var/lib/wagate"

  # The firmware's configuration: raspi-firmware writes config.txt and cmdline.txt from
  # /etc/default (so a kernel update keeps them); run its hook again with this image's.
  cat > "$ROOT/etc/default/raspi-firmware-custom" <<'CFG'
# wagate: the SPI bus of the display (spidev0.0 and spidev0.1) through the overlay
# raspi-firmware ships: Debian's mainline device trees ignore dtparam=spi=on.
dtoverlay=pi4-spidev
CFG
  # `ro` after raspi-firmware's `rw` (the last one counts): the root file system is mounted
  # read-only first, so systemd-fsck-root checks it after a power cut (the initramfs carries
  # no fsck), and systemd-remount-fs then mounts it read-write as /etc/fstab says.
  echo ro > "$ROOT/etc/default/raspi-extra-cmdline"
  chroot_run DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
  [ -f "$ROOT/boot/firmware/config.txt" ] && [ -f "$ROOT/boot/firmware/cmdline.txt" ] \
    || die "raspi-firmware wrote no config.txt/cmdline.txt"

  # Units: the network (DHCP), DNS, the clock, this image's boot-time services; timesyncd as
  # the board preset (shared with buildroot/) says. Wi-Fi: udev starts wpa_supplicant@wlan0
  # when the device appears (the board's 70-wagate-wifi.rules).
  chroot_run systemctl enable systemd-networkd.service systemd-resolved.service \
    wagate-board.service wagate-bootfiles.service
  chroot_run systemctl preset systemd-timesyncd.service
  ln -sfn ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"

  # The box names itself on first boot (wagate-board.service); until then "wagate".
  echo wagate > "$ROOT/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\twagate\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$ROOT/etc/hosts"
  # No default password: root is locked (SSH takes keys only, and only when the boot
  # partition has authorized_keys); no account has a password.
  sed -i 's/^root:[^:]*:/root:!*:/' "$ROOT/etc/shadow"
  if awk -F: '$2 !~ /^[!*]/ && $2 != "" { bad = 1 } END { exit !bad }' "$ROOT/etc/shadow"; then
    die "an account in the image has a password"
  fi
  [ -z "$(ls "$ROOT"/etc/ssh/ssh_host_* 2>/dev/null)" ] || die "the image carries SSH host keys"

  if [ $TEST_IMAGE = 1 ]; then
    printf 'TEST IMAGE: wagate built with trust-wa-mock (no WhatsApp certificate check). Never flash it.\n' \
      | tee "$ROOT/etc/wagate/TEST-IMAGE" > "$ROOT/etc/motd"
  fi
  umount "$ROOT/proc"
  PROC_MOUNTED=""
  rm -f "$ROOT/dev/null"
}

# --- genimage ----------------------------------------------------------------------------
make_card() {
  local used root_mib sig cfg=$WORK/genimage.cfg
  # The root partition: what it holds plus a third and 256 MiB for updates, in 4 MiB steps.
  used=$(du -sm --exclude=./boot/firmware --exclude=./var/lib/wagate "$ROOT" | cut -f1)
  root_mib=$(( (used * 4 / 3 + 256 + 3) / 4 * 4 ))
  sig=0x$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
  sed "s/@ROOT_SIZE@/${root_mib}M/; s/@DISK_SIGNATURE@/$sig/" "$IMAGE_DIR/genimage.cfg.in" > "$cfg"
  echo "root filesystem: $used MiB used, partition $root_mib MiB; disk signature $sig"
  rm -rf "$WORK/genimage-tmp" "$WORK/images"
  mkdir -p "$WORK/images"
  genimage --rootpath "$ROOT" --tmppath "$WORK/genimage-tmp" --inputpath "$WORK/images" \
    --outputpath "$WORK/images" --config "$cfg" > "$WORK/genimage.log" 2>&1 \
    || { tail -40 "$WORK/genimage.log" >&2; die "genimage failed (log: $WORK/genimage.log)"; }
  rm -rf "$WORK/genimage-tmp"
  mkdir -p "$OUT"
  mv "$WORK/images/sdcard.img" "$OUT/sdcard.img"
  sfdisk -l "$OUT/sdcard.img" | sed -n '/^Disk identifier/p; /^Device/,$p'
}

outputs() {
  local img=$OUT/sdcard.img
  rm -f "$img.xz" "$img.bmap" "$img.sha256"
  dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f '${Package}\t${Version}\t${Architecture}\n' \
    | sort > "$OUT/sdcard.manifest"
  local files=(sdcard.img)
  if [ $XZ = 1 ]; then
    if command -v bmaptool >/dev/null; then
      bmaptool create -o "$img.bmap" "$img"
    fi
    xz -T0 -6 -k -f "$img"
    files+=(sdcard.img.xz)
  fi
  (cd "$OUT" && sha256sum "${files[@]}" > sdcard.img.sha256)
  printf 'image: %s (%s MiB raw' "$img" "$(( $(stat -c %s "$img") / 1048576 ))"
  [ $XZ = 1 ] && printf ', %s MiB xz' "$(( $(stat -c %s "$img.xz") / 1048576 ))"
  printf '; %s packages, wagate %s)\n' "$(wc -l < "$OUT/sdcard.manifest")" \
    "$(awk '$1 == "wagate" { print $2 }' "$OUT/sdcard.manifest")"
  [ $TEST_IMAGE = 1 ] && echo "TEST IMAGE (trust-wa-mock): for image/boot-test.sh only, never flash it"
  return 0
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
      --rootfs-cached) CHECK_CACHE=1; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
  done
  if [ "${CHECK_CACHE:-0}" = 1 ]; then
    # Only says whether the root filesystem for this package list is cached (exit 0) or
    # would be built (exit 1).
    [ -s "$(rootfs_tar)" ] && { echo "cached: $(rootfs_tar)"; return 0; }
    echo "not cached: $(rootfs_tar)"
    return 1
  fi
  [ $TEST_IMAGE = 1 ] && [ "$OUT" = "$IMAGE_DIR/out" ] && OUT=$IMAGE_DIR/out-test
  mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
  WORK=$CACHE/work
  ROOT=$WORK/root
  mkdir -p "$WORK"
  stage tools
  ensure_tools
  binfmt_on
  trap cleanup EXIT

  stage rootfs
  local tar
  tar=$(rootfs_tar)
  build_rootfs "$tar"
  [ "${ROOTFS_ONLY:-0}" = 1 ] && { stage "done"; return; }

  stage deb
  build_deb
  stage assemble
  assemble "$tar"
  stage genimage
  make_card
  stage outputs
  outputs
  rm -rf "$ROOT"
  stage "done"
}

main "$@"; exit $?
