#!/bin/bash
# Boot the wagate SD image under QEMU and check, reading only what a user would see (the
# serial console standing in for the screen, the screen's frames, the HTTPS API), that:
#   1. wagate starts under systemd on first boot; the setup code, the certificate fingerprint
#      and the box's own host name appear on the console and on the screen
#   2. the box is claimed over HTTPS pinned to that fingerprint; the admin key works
#   3. (a test image, `image/build.sh --test-image`) wagate in the guest reaches wa-mock on the
#      host, the mock phone scans the QR read off the screen, the session connects, a text is
#      sent and a webhook receiver on the host gets it, signed; after the power cut of check 4
#      the session reconnects with no new QR and the message is still there
#   4. after a hard power cut (QEMU killed with SIGKILL) the second boot keeps the key, the
#      setup stays closed and the data partition checks clean
#   5. boot-to-API seconds and wagate's resident memory in the guest
#
#   image/boot-test.sh [--machine virt|raspi3b] [--image FILE] [--checks 1,2,3,4,5]
#                      [--port N] [--keep]
#
# --machine virt (default): qemu-system-aarch64 -M virt, with the image's own kernel and
#   initrd taken out of its FAT partition (mtools, nothing is mounted). The screen: the guest's
#   png display backend writes its frames into a host folder shared over virtio-9p (the
#   emulator's stand-in for the panel; test-only kernel command line, the image is unchanged).
# --machine raspi3b: the same image as a Raspberry Pi 3 B (QEMU >= 9: BCM2835 SPI and GPIO
#   emulated), the firmware's pi4-spidev overlay applied to the device tree on the host (QEMU
#   runs no GPU firmware). wagate drives the emulated SPI panel; the screen is read through
#   GET /api/display.png once claimed. Slow: minutes more than virt.
#
# The image is never written: QEMU boots a copy-on-write qcow2 overlay. The guest's network is
# QEMU's user-mode network with restrict=on: it reaches nothing; the API port is forwarded to
# 127.0.0.1 only (check 3 adds two guest-side addresses that lead to wa-mock and the webhook
# receiver on the host's loopback). Needs root only to install missing tools (qemu-system-arm from
# bookworm-backports on Debian 12, mtools, fdisk, qemu-utils, device-tree-compiler).
set -euo pipefail

IMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$IMAGE_DIR/.." && pwd)

MACHINE=virt
IMAGE=$IMAGE_DIR/out/sdcard.img
CHECKS=1,2,4,5
PORT=""
KEEP=0
API_TIMEOUT=${API_TIMEOUT:-900}

die() { echo "boot-test: FAIL: $*" >&2; exit 1; }
say() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
T0=$(date +%s)

while [ $# -gt 0 ]; do
  case "$1" in
    --machine) MACHINE=$2; shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --checks) CHECKS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
case "$MACHINE" in virt|raspi3b) ;; *) die "--machine virt or raspi3b" ;; esac
[ -f "$IMAGE" ] || die "no image at $IMAGE (build it: image/build.sh)"
IMAGE=$(realpath "$IMAGE")
want() { case ",$CHECKS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# --- tools -------------------------------------------------------------------------------
ensure_tools() {
  local missing=""
  command -v mcopy >/dev/null || missing="$missing mtools"
  command -v sfdisk >/dev/null || missing="$missing fdisk"
  command -v qemu-img >/dev/null || missing="$missing qemu-utils"
  command -v python3 >/dev/null || missing="$missing python3"
  if [ "$MACHINE" = raspi3b ]; then command -v fdtoverlay >/dev/null || missing="$missing device-tree-compiler"; fi
  local qemu_ok=0
  if command -v qemu-system-aarch64 >/dev/null; then
    local v
    v=$(qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p;q')
    [ "${v:-0}" -ge 9 ] && qemu_ok=1
  fi
  if [ -n "$missing" ] || [ $qemu_ok = 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing tools ($missing qemu-system-arm>=9); run as root to install them"
    if [ $qemu_ok = 0 ] && . /etc/os-release && [ "${VERSION_CODENAME:-}" = bookworm ]; then
      # bookworm's QEMU 7.2 has no BCM2835 SPI; 10.x is in bookworm-backports.
      if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo 'deb http://deb.debian.org/debian bookworm-backports main' \
          > /etc/apt/sources.list.d/bookworm-backports.list
      fi
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
        qemu-system-arm qemu-utils >/dev/null
    elif [ $qemu_ok = 0 ]; then
      missing="$missing qemu-system-arm"
    fi
    if [ -n "$missing" ]; then
      apt-get update -qq
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
  fi
  if want 3; then
    command -v socat >/dev/null || {
      apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat >/dev/null; }
    (cd "$REPO" && cargo build -q --locked -p wa-mock --bin wa-mock) || die "cannot build wa-mock"
    WA_MOCK=${CARGO_TARGET_DIR:-$REPO/target}/debug/wa-mock
  fi
  # The screen reader (finds the code, name and fingerprint in a frame): a small host tool.
  SCREEN_CHECK=${CARGO_TARGET_DIR:-$IMAGE_DIR/screen-check/target}/release/screen-check
  cargo build -q --release --locked --manifest-path "$IMAGE_DIR/screen-check/Cargo.toml" \
    || die "cannot build image/screen-check"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wagate-boot-test.XXXXXX")
QEMU_PID=""
HELPERS=()
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill -KILL "$QEMU_PID" || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  for p in "${HELPERS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ $KEEP = 1 ]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- the image's kernel, initrd and command line, from its FAT partition ----------------
extract_boot() {
  local start
  start=$(sfdisk -J "$IMAGE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][0]["start"])')
  BOOTFS="$IMAGE@@$((start * 512))"
  mcopy -n -i "$BOOTFS" ::/config.txt ::/cmdline.txt "$WORK/"
  local kernel initrd
  kernel=$(sed -n 's/^kernel=//p' "$WORK/config.txt" | tail -1)
  initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$WORK/config.txt" | tail -1)
  [ -n "$kernel" ] && [ -n "$initrd" ] || die "config.txt names no kernel/initramfs"
  mcopy -n -i "$BOOTFS" "::/$kernel" "$WORK/vmlinuz"
  mcopy -n -i "$BOOTFS" "::/$initrd" "$WORK/initrd.img"
  # The Pi's console (ttyS1, the mini UART) becomes the machine's PL011 (ttyAMA0).
  CMDLINE=$(sed 's/console=[^ ]*//g; s/  */ /g; s/^ //; s/ $//' "$WORK/cmdline.txt")
  say "kernel $kernel, initrd $initrd; image command line: $CMDLINE"
  if [ "$MACHINE" = raspi3b ]; then
    mcopy -n -i "$BOOTFS" ::/bcm2837-rpi-3-b.dtb "$WORK/base.dtb"
    mcopy -n -i "$BOOTFS" ::/overlays/pi4-spidev.dtbo "$WORK/spidev.dtbo" 2>/dev/null \
      || mcopy -n -i "$BOOTFS" ::/pi4-spidev.dtbo "$WORK/spidev.dtbo"
    # What the GPU firmware does with config.txt's dtoverlay=pi4-spidev.
    fdtoverlay -i "$WORK/base.dtb" -o "$WORK/board.dtb" "$WORK/spidev.dtbo" \
      || die "the pi4-spidev overlay does not apply to bcm2837-rpi-3-b.dtb"
    # QEMU's BCM2835 SPI model raises no DMA requests: a DMA transfer (the driver uses DMA for
    # anything longer than 96 bytes) never completes and the guest stalls. The emulated board
    # gets the controller without its DMA channels (interrupt-driven transfers); a real Pi keeps
    # them. This is the one place the emulated board differs from the image's.
    fdtput -d "$WORK/board.dtb" /soc/spi@7e204000 dmas
    fdtput -d "$WORK/board.dtb" /soc/spi@7e204000 dma-names
  fi
}

# --- QEMU ----------------------------------------------------------------------------------
make_overlay() {
  qemu-img create -q -f qcow2 -F raw -b "$IMAGE" "$WORK/overlay.qcow2"
  if [ "$MACHINE" = raspi3b ]; then
    # An SD card's size is a power of two for QEMU's SD model.
    local size pow=1
    size=$(stat -c %s "$IMAGE")
    while [ $pow -lt "$size" ]; do pow=$((pow * 2)); done
    qemu-img resize -q "$WORK/overlay.qcow2" "$pow"
  fi
  mkdir -p "$WORK/screen"
  chmod 0777 "$WORK/screen"
}

# Test-only kernel command line: the journal on the console (the screen's stand-in), the
# screen's frames into the shared folder (virt), and wagate's memory printed every 20 s
# (wagate-memory-report.service, in the image but not enabled).
boot() {
  local n=$1 log=$WORK/console-$1.log append
  append="$CMDLINE console=ttyAMA0,115200 systemd.journald.forward_to_console=1"
  append="$append systemd.wants=wagate-memory-report.service"
  local net="user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:8443"
  if want 3; then
    # The guest's only ways out: 10.0.2.100:7000 is wa-mock, 10.0.2.101:8080 the webhook
    # receiver, both on the host's loopback (one socat per connection).
    net="$net,guestfwd=tcp:10.0.2.100:7000-cmd:socat - TCP:127.0.0.1:$MOCK_PORT"
    net="$net,guestfwd=tcp:10.0.2.101:8080-cmd:socat - TCP:127.0.0.1:$HOOK_PORT"
    append="$append systemd.setenv=WAGATE_WHATSAPP_URL=ws://10.0.2.100:7000/ws/chat"
    # No NTP reaches the guest: deliver webhooks without a synchronised clock.
    append="$append systemd.setenv=WAGATE_WEBHOOKS__REQUIRE_CLOCK_SYNC=false"
  fi
  local args=(-nodefaults -no-reboot -display none -monitor none -serial "file:$log"
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img")
  if [ "$MACHINE" = virt ]; then
    append="$append systemd.mount-extra=wagatescreen:/var/lib/wagate/screen:9p:trans=virtio,version=9p2000.L,msize=262144"
    append="$append systemd.setenv=WAGATE_DISPLAY__PNG_PATH=/var/lib/wagate/screen/display.png"
    # shellcheck disable=SC2054 # (commas inside QEMU options)
    args+=(-M virt -cpu cortex-a72 -smp 2 -m 1024
      -drive "if=none,id=hd,file=$WORK/overlay.qcow2,format=qcow2"
      -device virtio-blk-pci,drive=hd
      -netdev "$net" -device virtio-net-pci,netdev=n0
      -fsdev "local,id=scr,path=$WORK/screen,security_model=mapped-xattr"
      -device virtio-9p-pci,fsdev=scr,mount_tag=wagatescreen)
  else
    # shellcheck disable=SC2054
    args+=(-M raspi3b -dtb "$WORK/board.dtb"
      -drive "if=sd,file=$WORK/overlay.qcow2,format=qcow2"
      -netdev "$net" -device usb-net,netdev=n0)
  fi
  : > "$log"
  BOOT_T0=$(date +%s)
  qemu-system-aarch64 "${args[@]}" -append "$append" > "$WORK/qemu-$n.log" 2>&1 &
  QEMU_PID=$!
  CONSOLE=$log
  say "boot $n: QEMU $MACHINE started (pid $QEMU_PID), console $log"
}

power_cut() {
  kill -KILL "$QEMU_PID"
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=""
  say "power cut: QEMU killed with SIGKILL"
}

alive() { kill -0 "$QEMU_PID" 2>/dev/null || { tail -20 "$WORK/qemu-"*.log >&2; tail -40 "$CONSOLE" >&2; die "QEMU exited"; }; }

# The first console line matching an extended regex; waits up to $2 seconds.
console_wait() {
  local re=$1 limit=$2 end line
  end=$(( $(date +%s) + limit ))
  while :; do
    line=$(tr -d '\r' < "$CONSOLE" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | grep -a -m1 -E "$re" || true)
    [ -n "$line" ] && { printf '%s\n' "$line"; return 0; }
    [ "$(date +%s)" -lt "$end" ] || return 1
    alive
    sleep 2
  done
}

api() { python3 "$IMAGE_DIR/pinned.py" "$1" "https://127.0.0.1:$PORT$2" "$FPR" "${@:3}"; }

# Seconds from QEMU's start until the API answers over HTTPS with the pinned certificate.
api_wait() {
  local end
  end=$(( BOOT_T0 + API_TIMEOUT ))
  while :; do
    if out=$(api GET /api/health --timeout 10 2>/dev/null) && [ "$(head -1 <<<"$out")" = 200 ]; then
      API_SECONDS=$(( $(date +%s) - BOOT_T0 ))
      return 0
    fi
    [ "$(date +%s)" -lt "$end" ] || { tail -60 "$CONSOLE" >&2; die "no API within ${API_TIMEOUT}s"; }
    alive
    sleep 3
  done
}

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

ensure_tools
if [ -z "$PORT" ]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
mock() { curl -sS --max-time 20 "http://127.0.0.1:$MOCK_PORT$1" "${@:2}"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if want 3; then
  MOCK_PORT=$(free_port)
  HOOK_PORT=$(free_port)
  "$WA_MOCK" --listen "127.0.0.1:$MOCK_PORT" > "$WORK/wa-mock.log" 2>&1 &
  HELPERS+=($!)
  python3 "$IMAGE_DIR/hook-receiver.py" "$HOOK_PORT" "$WORK/hooks.jsonl" &
  HELPERS+=($!)
  say "wa-mock at 127.0.0.1:$MOCK_PORT, webhook receiver at 127.0.0.1:$HOOK_PORT"
fi
extract_boot
make_overlay
say "image $IMAGE, overlay $WORK/overlay.qcow2, API at https://127.0.0.1:$PORT (guest 8443)"

# --- boot 1 ------------------------------------------------------------------------------
boot 1
line=$(console_wait 'API certificate.*sha256=' "$API_TIMEOUT") || { tail -60 "$CONSOLE" >&2; die "no certificate line on the console"; }
FPR=$(sed -n 's/.*sha256=\([0-9A-Fa-f:]*\).*/\1/p' <<<"$line")
line=$(console_wait 'first-boot setup: .*code=' 120) || die "no setup code on the console"
CODE=$(sed -n 's/.*[^"]code=\([0-9A-Z-]*\).*/\1/p' <<<"$line")
[ -n "$CODE" ] || CODE=$(grep -o 'code=[0-9A-Z-]*' <<<"$line" | tail -1 | cut -d= -f2)
HOST=$(console_wait 'wagate-board: host name ' 5 | sed -n 's/.*host name \(wagate-[0-9a-f]*\).*/\1/p' || true)
api_wait
API1=$API_SECONDS
started=$(console_wait 'systemd\[1\]: Started wagate.service' 5 || true)

if want 1; then
  echo "== check 1: wagate starts on first boot; setup code and fingerprint where a user reads them"
  [ -n "$started" ] || die "no 'Started wagate' on the console"
  echo "console: ${started}"
  echo "console: setup code $CODE"
  echo "console: certificate SHA-256 $FPR"
  echo "console: host name ${HOST:-?}"
  [ -n "$HOST" ] || die "the box did not name itself (wagate-board)"
  if [ "$MACHINE" = virt ]; then
    # The frames the guest draws, as a user would see them on the panel.
    end=$(( $(date +%s) + 120 ))
    until [ -s "$WORK/screen/display.png" ] && "$SCREEN_CHECK" "$WORK/screen/display.png" \
        --find "9x15b:Set up wagate" --find "profont24:$CODE" --find "10x20:$HOST" \
        --fingerprint "$FPR" > "$WORK/screen-1.txt" 2>&1; do
      [ "$(date +%s)" -lt "$end" ] || { cat "$WORK/screen-1.txt" >&2; die "the screen does not show the setup code, name and fingerprint"; }
      sleep 3
    done
    sed 's/^/screen (virtio-9p frame): /' "$WORK/screen-1.txt"
    cp "$WORK/screen/display.png" "$WORK/screen-setup.png"
  fi
  # Before the claim the screen is not on the API: no key, no frame.
  st=$(api GET /api/display.png --out /dev/null | head -1)
  [ "$st" = 401 ] || die "GET /api/display.png without a key answered $st, not 401"
  echo "api: GET /api/display.png without a key -> 401 (the frame needs a key)"
  echo "check 1: PASS"
fi

if want 2 || want 3 || want 4; then
  echo "== check 2: claim over HTTPS pinned to the fingerprint; the admin key works"
  out=$(api GET /api/setup); echo "api: GET /api/setup -> $(tr '\n' ' ' <<<"$out")"
  [ "$(tail -n +2 <<<"$out" | json 'd["open"]')" = True ] || die "setup is not open"
  wrong=$(python3 "$IMAGE_DIR/pinned.py" GET "https://127.0.0.1:$PORT/api/health" \
    "00:$(cut -c4- <<<"$FPR")" 2>&1 || true)
  grep -q 'is not the pinned' <<<"$wrong" || die "a wrong pin was not refused"
  echo "api: a wrong fingerprint pin is refused before any request is sent"
  out=$(api POST /api/setup --json "{\"code\":\"$CODE\"}")
  [ "$(head -1 <<<"$out")" = 201 ] || die "POST /api/setup answered: $out"
  KEY=$(tail -n +2 <<<"$out" | json 'd["key"]')
  echo "api: POST /api/setup {\"code\":\"$CODE\"} -> 201, admin key ${KEY:0:12}..."
  out=$(api GET /api/sessions --key "$KEY")
  [ "$(head -1 <<<"$out")" = 200 ] || die "GET /api/sessions with the key answered: $out"
  echo "api: GET /api/sessions with the key -> 200 $(tail -n +2 <<<"$out" | head -c 200)"
  st=$(api GET /api/sessions --key "wgk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" | head -1)
  [ "$st" = 401 ] || die "a made-up key answered $st"
  echo "api: a made-up key -> 401"
  out=$(api POST /api/setup --json "{\"code\":\"$CODE\"}" | head -1)
  [ "${out:0:1}" = 4 ] || die "a second claim answered $out"
  echo "api: a second claim with the same code -> $out (setup closed)"
  # The screen after the claim, over the API (decoded on the host): the status screen (the
  # box's name in its header, the new session "default") or, where WhatsApp answers (check 3's
  # wa-mock), the pairing screen with a readable QR code.
  end=$(( $(date +%s) + 60 ))
  until [ "$(api GET /api/display.png --key "$KEY" --out "$WORK/display-claimed.png" | head -1)" = 200 ] \
      && { "$SCREEN_CHECK" "$WORK/display-claimed.png" --find "9x15b:wagate" --find "7x13:$HOST" \
             --find "9x15b:default" > "$WORK/screen-2.txt" 2>&1 \
           || "$SCREEN_CHECK" "$WORK/display-claimed.png" --qr --find "6x13:Scan: WhatsApp > Linked devices" \
             > "$WORK/screen-2.txt" 2>&1; }; do
    [ "$(date +%s)" -lt "$end" ] || { cat "$WORK/screen-2.txt" >&2; die "the claimed screen is not right"; }
    sleep 3
  done
  sed -i 's/^\(qr: .\{40\}\).*/\1.../' "$WORK/screen-2.txt"
  sed 's/^/api: GET \/api\/display.png (key): /' "$WORK/screen-2.txt"
  if "$SCREEN_CHECK" "$WORK/display-claimed.png" --find "profont24:$CODE" >/dev/null; then
    die "the screen still shows the setup code after the claim"
  fi
  echo "api: GET /api/display.png: the setup code is gone from the screen"
  echo "check 2: PASS"
fi


if want 3; then
  echo "== check 3: pair from the screen's QR through wa-mock, send a text, signed webhook"
  end=$(( $(date +%s) + 300 ))
  QR=""
  until [ -n "$QR" ]; do
    if [ "$(api GET /api/display.png --key "$KEY" --out "$WORK/display-qr.png" | head -1)" = 200 ]; then
      QR=$("$SCREEN_CHECK" "$WORK/display-qr.png" --qr 2>/dev/null | sed -n 's/^qr: //p' || true)
    fi
    [ -n "$QR" ] && break
    [ "$(date +%s)" -lt "$end" ] || { tail -30 "$CONSOLE" >&2; die "no QR code on the screen"; }
    sleep 5
  done
  echo "screen: GET /api/display.png shows a QR code: ${QR:0:40}..."
  phone=$(mock /admin/scan --data "$QR" | json 'd.get("phone") or d.get("account",{}).get("phone") or d')
  echo "wa-mock: the mock phone scanned it (account $phone)"
  end=$(( $(date +%s) + 180 ))
  until [ "$(api GET /api/sessions/default --key "$KEY" | tail -n +2 | json 'd.get("state") if isinstance(d.get("state"),str) else d.get("state",{}).get("state")' 2>/dev/null)" = connected ]; do
    [ "$(date +%s)" -lt "$end" ] || { api GET /api/sessions/default --key "$KEY" >&2; die "the session did not connect"; }
    sleep 3
  done
  echo "api: GET /api/sessions/default -> connected"
  to=$(mock /admin/accounts -X POST | json 'd["phone"]')
  out=$(api POST /api/webhooks --key "$KEY" --json '{"url":"http://10.0.2.101:8080/hook","events":["message.sent"]}')
  [ "$(head -1 <<<"$out")" = 201 ] || die "POST /api/webhooks answered: $out"
  SECRET=$(tail -n +2 <<<"$out" | json 'd["secret"]')
  echo "api: POST /api/webhooks (http://10.0.2.101:8080/hook, the host's receiver) -> 201"
  out=$(api POST /api/sessions/default/messages/text --key "$KEY" --json "{\"to\":\"$to\",\"text\":\"hello from the SD image\"}")
  [ "$(head -1 <<<"$out")" = 202 ] || die "sending answered: $out"
  MSG=$(tail -n +2 <<<"$out" | json 'd["id"]')
  echo "api: POST /api/sessions/default/messages/text to $to -> 202 $MSG"
  end=$(( $(date +%s) + 180 ))
  until python3 "$IMAGE_DIR/hook-receiver.py" --verify "$SECRET" "$WORK/hooks.jsonl" message.sent > "$WORK/hook.txt" 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { cat "$WORK/hook.txt" >&2; api GET "/api/sessions/default/messages/$MSG" --key "$KEY" >&2; die "no signed message.sent webhook"; }
    sleep 3
  done
  cat "$WORK/hook.txt"
  echo "check 3: PASS"
fi

if want 5; then
  echo "== check 5: boot to API, memory"
  rss=$(console_wait 'wagate-rss-kib:' 60 | sed -n 's/.*wagate-rss-kib: *\([0-9]*\).*/\1/p' || true)
  echo "boot 1: boot-to-API ${API1} s (QEMU start to the first pinned HTTPS answer, $MACHINE)"
  startup=$(console_wait 'Startup finished in' 5 || true)
  [ -n "$startup" ] && echo "boot 1: systemd: ${startup#*Startup finished in }" | sed 's/^/  /'
  if [ -n "$rss" ]; then
    echo "boot 1: wagate RSS in the guest ${rss} KiB ($(( rss / 1024 )) MiB), after the claim"
  else
    echo "boot 1: wagate RSS: not seen on the console"
  fi
fi

if want 4; then
  sleep 5 # let the claim reach the disk as a real user's would
  power_cut
  echo "== check 4: power cut and second boot"
  boot 2
  api_wait
  API2=$API_SECONDS
  out=$(api GET /api/sessions --key "$KEY")
  [ "$(head -1 <<<"$out")" = 200 ] || die "after the power cut the key is refused: $out"
  echo "api: boot 2: GET /api/sessions with the key -> 200 (the key survived the power cut)"
  out=$(api GET /api/setup)
  [ "$(tail -n +2 <<<"$out" | json 'd["open"]')" = False ] || die "setup is open again after the power cut"
  echo "api: boot 2: GET /api/setup -> open: false"
  if console_wait 'first-boot setup: .*code=' 1 >/dev/null; then die "boot 2 printed a setup code again"; fi
  console_wait 'wagate-data: (clean|recovering)|EXT4-fs \(vda3\)' 30 >/dev/null || true
  tr -d '\r' < "$CONSOLE" | grep -a -E 'systemd-fsck\[[0-9]+\]: wagate-data|EXT4-fs \(vda3\)' | sed 's/^/console: /' | head -6
  if grep -a -i -E 'wagate-data.*(UNEXPECTED INCONSISTENCY|errors)|vda3.*error' "$CONSOLE" >/dev/null; then
    die "the data partition has errors after the power cut"
  fi
  grep -a -q -E 'wagate-data: clean|EXT4-fs \(vda3\): mounted' "$CONSOLE" || die "no clean check or mount of the data partition on the console"
  if want 3; then
    end=$(( $(date +%s) + 300 ))
    until [ "$(api GET /api/sessions/default --key "$KEY" | tail -n +2 | json 'd.get("state") if isinstance(d.get("state"),str) else d.get("state",{}).get("state")' 2>/dev/null)" = connected ]; do
      [ "$(date +%s)" -lt "$end" ] || die "after the power cut the session did not reconnect"
      sleep 3
    done
    echo "api: boot 2: the session reconnected with no new scan"
    if grep -a -q 'session.qr\|pairing QR' "$CONSOLE"; then echo "console: (a QR line was logged on boot 2)"; fi
    out=$(api GET "/api/sessions/default/messages/$MSG" --key "$KEY")
    [ "$(head -1 <<<"$out")" = 200 ] || die "the sent message is gone after the power cut: $out"
    echo "api: boot 2: GET /api/sessions/default/messages/$MSG -> status $(tail -n +2 <<<"$out" | json 'd.get("status")')"
  fi
  echo "boot 2: boot-to-API ${API2} s"
  echo "check 4: PASS"
fi
echo "boot-test ($MACHINE): checks $CHECKS passed in $(( $(date +%s) - T0 )) s"
