#!/usr/bin/env bash
# Storage cost before and after a change, in one run: builds benches/storage_cost.rs on the
# commit BASE (a git worktree; the bench file is copied in, it uses only the store's and the
# API's public functions) and on the working tree, then runs both, one after the other, and
# prints one table (rows paired by disk, path and rate).
#
#   bench/storage-cost.sh [BASE]
#
# BASE defaults to 09b4f11, the last commit before group commit. STORAGE_SLOW_MS sets the slow
# disk's delay per fsync (default 10), STORAGE_QUICK=1 runs fewer messages.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-09b4f11}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
tmp=$(mktemp -d)
wt=$tmp/before
git -C "$here" worktree add --detach "$wt" "$base" >/dev/null 2>&1
cleanup() {
    git -C "$here" worktree remove --force "$wt" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
cp "$here/benches/storage_cost.rs" "$wt/benches/"
# A base from before the queue knew a recipient's phone and LID takes its messages without them.
if ! awk '/pub struct NewMessage/,/^}/' "$wt/src/store/queue.rs" | grep -q to_lid; then
    sed -i '/to_phone: None,/d; /to_lid: None,/d' "$wt/benches/storage_cost.rs"
fi
if ! grep -q 'name = "storage_cost"' "$wt/Cargo.toml"; then
    printf '\n[[bench]]\nname = "storage_cost"\nharness = false\n' >>"$wt/Cargo.toml"
fi
# Both builds have the same artifact name in a shared target directory, and cargo judges the
# artifact fresh by the mtimes of the sources at their relative paths: so the base is built
# first, from its fresh checkout, and copied out; then the working tree's sources are touched
# (mtime only) so that cargo builds them again.
build() {
    (cd "$1" && cargo bench --bench storage_cost --no-run --message-format=json 2>/dev/null) |
        python3 -c 'import json,sys
msgs=[json.loads(l) for l in sys.stdin if l.startswith("{")]
exe=[m["executable"] for m in msgs if m.get("executable") and m.get("target", {}).get("name") == "storage_cost"]
if not exe:
    sys.exit("the storage_cost bench did not build")
print(exe[-1])'
}
echo "building the bench on $base and on the working tree..." >&2
cp "$(build "$wt")" "$tmp/before.bin"
find "$here/src" "$here/benches" -name '*.rs' -exec touch {} +
cp "$(build "$here")" "$tmp/after.bin"
echo "running..." >&2
STORAGE_BUILD=before "$tmp/before.bin" >"$tmp/before.txt"
STORAGE_BUILD=after "$tmp/after.bin" >"$tmp/after.txt"
python3 - "$tmp/before.txt" "$tmp/after.txt" "$base" <<'PY'
import sys
before, after, base = open(sys.argv[1]).read().splitlines(), open(sys.argv[2]).read().splitlines(), sys.argv[3]
print(f"before: {base}; after: the working tree")
print(before[0].replace("build `before`, ", ""))
def rows(lines, n):
    return [l for l in lines if l.startswith("| before") or l.startswith("| after")]
def cells(l):
    return [c.strip() for c in l.strip().strip("|").split("|")]
b, a = rows(before, 0), rows(after, 0)
heads = [l for l in before if l.startswith("| build")]
print(); print(heads[0]); print("|---|---|---|---:|---:|---:|---:|---:|---:|")
for x, y in zip([r for r in b if len(cells(r)) == 9], [r for r in a if len(cells(r)) == 9]):
    print(x); print(y)
print(); print(heads[1]); print("|---|---|---|---:|")
for x, y in zip([r for r in b if len(cells(r)) == 4], [r for r in a if len(cells(r)) == 4]):
    print(x); print(y)
PY
