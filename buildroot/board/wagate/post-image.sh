#!/bin/bash
# wagate post-image script: the SD card image (boot, rootfs, data) from genimage.cfg.in.
# Buildroot runs it with BINARIES_DIR, BUILD_DIR and the board's rpi-firmware in place.
set -euo pipefail

BOARD_DIR="$(dirname "$0")"
GENIMAGE_CFG="${BINARIES_DIR}/genimage-wagate.cfg"
GENIMAGE_TMP="${BUILD_DIR}/genimage.tmp"

# The boot partition: every device tree, the firmware files and the kernel config.txt names.
FILES=()
for f in "${BINARIES_DIR}"/*.dtb "${BINARIES_DIR}"/rpi-firmware/*; do
	FILES+=("${f#"${BINARIES_DIR}"/}")
done
KERNEL=$(sed -n 's/^kernel=//p' "${BINARIES_DIR}/rpi-firmware/config.txt")
FILES+=("${KERNEL}")
BOOT_FILES=$(printf '\\t\\t\\t"%s",\\n' "${FILES[@]}")
sed "s|#BOOT_FILES#|${BOOT_FILES}|" "${BOARD_DIR}/genimage.cfg.in" > "${GENIMAGE_CFG}"

# An empty root path: the rootfs image is built already, and data.ext4 starts empty.
ROOTPATH_TMP="$(mktemp -d)"
trap 'rm -rf "${ROOTPATH_TMP}"' EXIT
rm -rf "${GENIMAGE_TMP}"

genimage \
	--rootpath "${ROOTPATH_TMP}" \
	--tmppath "${GENIMAGE_TMP}" \
	--inputpath "${BINARIES_DIR}" \
	--outputpath "${BINARIES_DIR}" \
	--config "${GENIMAGE_CFG}"

echo "wagate: ${BINARIES_DIR}/sdcard.img is ready to write to an SD card"
