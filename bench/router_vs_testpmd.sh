#!/usr/bin/env bash
# framegate's forwarding rate on one worker against dpdk-testpmd in macswap
# mode on the same capture, alternating A B A B, with medians and the ratio.
#
# Both read the capture from a net_pcap port with infinite_rx (the capture is
# held in memory and replayed forever; transmit drops), on lcores 0-1 (one
# forwarding core). framegate holds MAPPINGS mappings over TENANTS tenants and
# the capture's frames are for those devices, with zipf popularity.
#
# usage: bench/router_vs_testpmd.sh [ROUNDS [SECONDS]]
#   env: TENANTS (100000), MAPPINGS (1000000), PACKETS (1000000),
#        ZIPF (0.8), PAYLOAD (100), FANOUT (1), IPV6 (0.5), WORK (/tmp/fg-bench)
# Needs dpdk-testpmd (Debian package dpdk-dev) and a built tree (build/).
set -eu
cd "$(dirname "$0")/.."

rounds=${1:-3}
seconds=${2:-10}
tenants=${TENANTS:-100000}
mappings=${MAPPINGS:-1000000}
packets=${PACKETS:-1000000}
work=${WORK:-/tmp/fg-bench}
mbufs=$((packets + 100000))
mem=$(( (packets * 2400 / 1048576) + 4096 ))

command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not found (apt-get install dpdk-dev)" >&2; exit 2; }
mkdir -p "$work"
cap="$work/cap-$tenants-$mappings-$packets.pcap"
map="$work/map-$tenants-$mappings-$packets.jsonl"
if [ ! -f "$cap" ] || [ ! -f "$map" ]; then
  echo "generating $packets frames for $mappings devices of $tenants tenants"
  build/tools/fg-gen --tenants "$tenants" --devices "$mappings" --packets "$packets" \
    --zipf "${ZIPF:-0.8}" --payload "${PAYLOAD:-100}" --fanout "${FANOUT:-1}" \
    --ipv6-share "${IPV6:-0.5}" --vlan-share 0 --out-pcap "$cap" --out-mappings "$map"
fi
cat > "$work/conf.json" <<JSON
{"tables": {"max_tenants": $tenants, "max_sinks": $((tenants * 2)), "max_devices": $mappings},
 "journal_dir": "$work/journal", "control_socket": "$work/control.sock",
 "mbufs": $mbufs,
 "ports": [{"port": 0, "role": "both", "next_hop_mac": "02:00:00:00:00:01",
            "ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}]}
JSON

eal() { echo "--no-huge -m $mem --no-pci -l 0-1 --no-shconf --file-prefix=fgbench$1$$ --no-telemetry --log-level=*:error --vdev net_pcap0,rx_pcap=$cap,infinite_rx=1"; }

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

run_testpmd() {  # Mpps: median of the per-second rates once forwarding runs
  timeout -s INT $((seconds + 30)) dpdk-testpmd $(eal t) -- --forward-mode=macswap \
    --total-num-mbufs=$mbufs --stats-period 1 2>/dev/null |
    awk -v n="$seconds" '/Rx-pps:/ { if ($2 > 0) { c++; if (c > 1 && c <= n + 1) print $2 / 1e6 } }' |
    median || true
}

run_framegate() {  # Mpps over --duration, from its own clock
  rm -rf "$work/journal"    # each round loads the mappings afresh
  build/framegate $(eal f) -- --config "$work/conf.json" --mappings "$map" \
    --duration "$seconds" 2>/dev/null | awk '/^rate:/ {print $2}' || true
}

printf "round  testpmd-macswap-Mpps  framegate-Mpps  ratio\n"
a=(); b=()
for r in $(seq 1 "$rounds"); do
  t=$(run_testpmd); f=$(run_framegate)
  a+=("$t"); b+=("$f")
  printf "%5d  %20.3f  %14.3f  %5.3f\n" "$r" "$t" "$f" "$(echo "$f / $t" | bc -l)"
done
mt=$(printf "%s\n" "${a[@]}" | median); mf=$(printf "%s\n" "${b[@]}" | median)
printf "median %20.3f  %14.3f  %5.3f\n" "$mt" "$mf" "$(echo "$mf / $mt" | bc -l)"
echo "framegate: $mf Mpps on one worker ($mappings mappings, $tenants tenants);" \
     "dpdk-testpmd macswap: $mt Mpps; ratio $(printf %.3f "$(echo "$mf / $mt" | bc -l)")"
