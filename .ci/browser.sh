#!/usr/bin/env bash
# The dashboard in a real browser (tests/dashboard_browser.rs says what it proves): Debian's
# chromium (apt-get install chromium) driven by playwright-core, pinned in
# tests/browser/package-lock.json (playwright-core 1.65.1 with chromium 156 works; Playwright
# never downloads a browser here: CHROMIUM_PATH, default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-target}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null || ! [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "browser: needs node, npm and chromium; not run" >&2
  exit 1
fi
node --check src/net/dashboard/app.js
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
cargo test -p wagate --test dashboard_browser -- --ignored --nocapture
