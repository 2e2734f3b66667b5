#!/bin/sh
# wagate post-build script: runs after Buildroot's own Raspberry Pi post-build.sh.
#   $1  the target directory
#   $2  the board's GPIO chip label (BR2_ROOTFS_POST_SCRIPT_ARGS in the defconfig), written
#       to display.gpio_chip of /etc/wagate/wagate.toml
set -eu

TARGET_DIR="$1"
GPIO_CHIP="${2:-}"
CONF="${TARGET_DIR}/etc/wagate/wagate.toml"

if [ -n "${GPIO_CHIP}" ]; then
	case "${GPIO_CHIP}" in
	*[!a-z0-9_-]*) echo "post-build: bad GPIO chip label '${GPIO_CHIP}'" >&2; exit 1 ;;
	esac
	sed -i "s/^gpio_chip = .*/gpio_chip = \"${GPIO_CHIP}\"/" "${CONF}"
	grep -q "^gpio_chip = \"${GPIO_CHIP}\"$" "${CONF}"
fi

# The data partition's mount point (fstab); systemd gives it to the wagate user at start
# (StateDirectory=wagate).
mkdir -p "${TARGET_DIR}/var/lib/wagate"

# Wi-Fi credentials stay readable by root only.
if [ -f "${TARGET_DIR}/etc/wpa_supplicant/wpa_supplicant-wlan0.conf" ]; then
	chmod 0600 "${TARGET_DIR}/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
fi
