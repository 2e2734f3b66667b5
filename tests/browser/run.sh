#!/usr/bin/env bash
# The dashboard's browser test: builds wa-mock and wagate (trust-wa-mock), installs Debian's
# chromium and the pinned npm packages when missing, and drives the dashboard end to end.
# Screenshots and logs go to tests/browser/artifacts/ (git-ignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}

cd "$root"
cargo build -p wa-mock
cargo build -p wagate --features trust-wa-mock

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y chromium
fi
# The MQTT card: a real broker for wagate to connect to.
if ! { command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; }; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y mosquitto
fi
# The pair that works: playwright-core 1.65.1 (package-lock.json) drives Debian 12's
# chromium 156 over CDP; anything older than 120 is refused rather than half-working.
chromium_major=$(/usr/bin/chromium --version | grep -oE '[0-9]+' | head -n 1)
echo "run.sh: $(/usr/bin/chromium --version)"
if [ "${chromium_major:-0}" -lt 120 ]; then
    echo "run.sh: chromium ${chromium_major} is older than 120, which playwright-core 1.65 needs" >&2
    exit 1
fi
# playwright-core 1.65 needs Node 20 or later.
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2> /dev/null; then
    echo "run.sh: Node.js 20 or later is needed (playwright-core)" >&2
    exit 1
fi

cd "$here"
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/jsqr ] || [ ! -d node_modules/axe-core ]; then
    npm ci --no-audit --no-fund
fi
rm -rf artifacts
DASH_WAGATE_BIN="$target/debug/wagate" DASH_WA_MOCK_BIN="$target/debug/wa-mock" \
    DASH_ARTIFACTS="$here/artifacts" node dashboard.test.mjs
