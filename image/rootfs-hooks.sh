#!/bin/bash
# mmdebstrap hooks for the cached root filesystem of the wagate SD image (image/build.sh).
#   rootfs-hooks.sh setup|essential|customize ROOT
# Everything here goes into the cache key: keep it to what the package installation needs.
# Board files, wagate itself and the boot configuration are added after the cache
# (image/build.sh, "assemble"), so changing them does not rebuild this.
set -euo pipefail
stage=$1
root=$2

case "$stage" in
setup)
  # raspi-firmware installs into /boot/firmware (the FAT partition on the card).
  mkdir -p "$root/boot/firmware" "$root/etc/default"
  # The root file system by label (the kernel's command line, written by raspi-firmware).
  printf 'ROOTPART=LABEL=wagate-root\nCONSOLES="ttyS1,115200"\n' > "$root/etc/default/raspi-firmware"
  # One initramfs with the modules of any board: the build host cannot detect the target.
  mkdir -p "$root/etc/initramfs-tools/conf.d"
  printf 'MODULES=most\nCOMPRESS=zstd\n' > "$root/etc/initramfs-tools/conf.d/wagate.conf"
  ;;
essential)
  # The initramfs is made once, in `customize`, not at every package that triggers it
  # (each run takes minutes under qemu-user).
  chroot "$root" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs
  printf '#!/bin/sh\necho "update-initramfs: deferred by the wagate image build"\n' \
    > "$root/usr/sbin/update-initramfs"
  chmod 0755 "$root/usr/sbin/update-initramfs"
  ;;
customize)
  rm -f "$root/usr/sbin/update-initramfs"
  chroot "$root" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
  # Makes /boot/initrd.img-*, and raspi-firmware's hook copies kernel and initrd to
  # /boot/firmware with config.txt and cmdline.txt.
  chroot "$root" update-initramfs -c -k all
  # No host keys shared by every card: made on the box when SSH is first enabled.
  rm -f "$root"/etc/ssh/ssh_host_*
  # A fresh machine id on every box's first boot.
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log
  ;;
*)
  echo "rootfs-hooks.sh: unknown stage $stage" >&2
  exit 2
  ;;
esac
