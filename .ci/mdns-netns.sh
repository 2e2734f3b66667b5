#!/usr/bin/env bash
# mDNS discovery test across a real link (tests/it/discovery_netns.rs says what it proves).
# Needs root and iproute2: makes two network namespaces joined by a veth pair
#   wagate-mdns-a (10.77.0.1/24, runs wagate)  <->  wagate-mdns-b (10.77.0.2/24, browses)
# runs the test (ignored in plain `cargo test`) and removes the namespaces again.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/wagate-target}"

A=wagate-mdns-a
B=wagate-mdns-b

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "mdns-netns: needs root and ip(8); not run" >&2
  exit 1
fi

cleanup() {
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
cleanup

ip netns add "$A"
ip netns add "$B"
ip link add wgmdns-a netns "$A" type veth peer name wgmdns-b netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev wgmdns-a
ip -n "$B" addr add 10.77.0.2/24 dev wgmdns-b
for ns in "$A" "$B"; do
  ip -n "$ns" link set lo up
done
ip -n "$A" link set wgmdns-a up multicast on
ip -n "$B" link set wgmdns-b up multicast on

cargo test -p wagate --test it -- discovery_netns:: --ignored --nocapture
