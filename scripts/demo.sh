#!/usr/bin/env bash
# The demo: generate a PoP's traffic (tenants, cameras, sinks, with spoofed,
# stale, unauthenticated and malformed frames mixed in), run it through
# `framegate replay`, then audit the output capture against the mapping file
# (independently of the router's own counters) for cross-tenant deliveries.
# Run from the top of a built checkout (scripts/setup.sh demo does both).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${FG_DEMO_DIR:-$(mktemp -d /tmp/framegate-demo.XXXXXX)}
mkdir -p "$out"

echo "== 1. traffic: 1,000 tenants, 20,000 cameras, 100,000 frames (zipf popularity),"
echo "      5% each spoofed, stale, unauthenticated and malformed; half over IPv6"
build/tools/fg-gen --tenants 1000 --devices 20000 --packets 100000 --fanout 2 \
  --spoofed 0.05 --stale 0.05 --unauth 0.05 --malformed 0.05 \
  --out-pcap "$out/in.pcap" --out-mappings "$out/mappings.jsonl"

echo
echo "== 2. framegate replay: the router on a net_pcap port"
build/framegate replay --mappings "$out/mappings.jsonl" --in "$out/in.pcap" \
  --out "$out/out.pcap" --stats "$out/stats.json"

echo
echo "== 3. audit of the output capture against the mapping file"
build/tools/fg-audit --mappings "$out/mappings.jsonl" --capture "$out/out.pcap"
echo
echo "files: $out"
