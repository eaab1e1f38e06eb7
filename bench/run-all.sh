#!/usr/bin/env bash
# Every benchmark of issue 7 in one run, each beside its baseline measured in
# the same run, and issue 8's store bench (fg-bench-store); then the figures
# into docs/performance.md (between the
# bench:begin / bench:end markers), the raw results into
# bench/results/latest.json and the plots into docs/img/.
#
# usage: bench/run-all.sh [--quick] [--install] [--no-doc]
#   --quick    small sizes and short rounds, to check the plumbing in a few
#              minutes; its figures are not the issue's
#   --install  as root, apt-get install what is missing (dpdk-dev,
#              python3-matplotlib) instead of stopping
#   --no-doc   write the JSON and the plots but leave docs/performance.md
#   env: ROUNDS (5; quick 3), SECONDS_PER_RUN (5; quick 1),
#        WORK (/tmp/fg-bench-all; quick /tmp/fg-bench-quick): generated
#        captures and mapping files are kept there and reused by the next run
#
# Why alternate and why medians: this is a shared two-core machine without
# hugepages, where absolute rates drift by tens of percent between minutes.
# Every throughput figure is a median over ROUNDS rounds, and within a round
# each runner of a configuration (testpmd, framegate, ...) runs once, in
# turn, so a slow minute hits all of them alike; the ratio is the figure.
#
# Lcores: lcore 0 (main) on CPU 0, lcore 1 (the one forwarding core) on CPU
# 1, for testpmd and framegate alike. The two-worker run adds lcore 2 on CPU
# 0, sharing it with the main lcore (which only serves the control socket).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0; install=0; doc=1
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --install) install=1 ;;
    --no-doc) doc=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-all.sh: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

if [ $quick = 1 ]; then
  rounds=${ROUNDS:-3}; secs=${SECONDS_PER_RUN:-1}; work=${WORK:-/tmp/fg-bench-quick}
else
  rounds=${ROUNDS:-5}; secs=${SECONDS_PER_RUN:-5}; work=${WORK:-/tmp/fg-bench-all}
fi

# ---- what the run needs ------------------------------------------------------

die() { echo "run-all.sh: $*" >&2; exit 1; }

# Debian's python3 carries python3-matplotlib; a python3 earlier in PATH
# (pyenv, a venv) may not have it.
pick_python() {
  for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import matplotlib' 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

missing=()
command -v dpdk-testpmd >/dev/null || missing+=(dpdk-dev)
py=$(pick_python) || missing+=(python3-matplotlib)
if [ ${#missing[@]} -gt 0 ]; then
  if [ $install = 1 ] && [ "$(id -u)" = 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get install -y "${missing[@]}"
    py=$(pick_python) || die "python3 still cannot import matplotlib after installing python3-matplotlib"
  else
    die "missing: ${missing[*]} (dpdk-testpmd comes with dpdk-dev, matplotlib with python3-matplotlib):" \
        "apt-get install -y ${missing[*]}, or run as root with --install"
  fi
fi
for b in build/framegate build/control/fgctl build/tools/fg-gen build/bench/fg-bench-verdict; do
  [ -x "$b" ] || die "$b is not built: meson setup build && meson compile -C build"
done
# The router must not be older than its sources: a stale binary would
# measure code that is not in the tree.
stale=$(find dataplane control include bench tools ebpf -newer build/framegate \
          \( -name '*.c' -o -name '*.h' \) 2>/dev/null | head -3)
[ -z "$stale" ] || echo "warning: sources newer than build/framegate (${stale//$'\n'/, }): meson compile -C build first if they matter" >&2
[ "$(id -u)" = 0 ] || echo "warning: not root: the shield bench (BPF_PROG_TEST_RUN) will be skipped" >&2
[ "$(nproc)" -ge 2 ] || die "needs two CPUs (the main lcore and one forwarding lcore)"

mkdir -p "$work/gen" "$work/log" bench/results docs/img
results=$work/results.jsonl
: > "$results"
# Journals of an earlier run (maybe stopped mid-load) are not reused.
rm -rf "$work"/journal-* "$work/ctl"
started=$(date +%s)

# TSC rate: cycles/packet = TSC Hz / packets per second. The TSC runs at the
# nominal rate (constant_tsc), which /proc/cpuinfo reports as "cpu MHz" on
# this kind of VM; fg-bench-verdict's own TSC figure is recorded beside it.
tsc_hz=$(awk -F': *' '/^cpu MHz/ {printf "%.0f", $2 * 1e6; exit}' /proc/cpuinfo)
grep -qw constant_tsc /proc/cpuinfo || echo "warning: no constant_tsc: cycles/packet from cpu MHz are approximate" >&2

record() { echo "$1" >> "$results"; }   # one JSON object per line
now() { date +%s.%N; }
elapsed() { printf '%dm%02ds' $(( ($(date +%s) - started) / 60 )) $(( ($(date +%s) - started) % 60 )); }
say() { echo "[$(elapsed)] $*"; }

record "{\"kind\":\"meta\",\"quick\":$([ $quick = 1 ] && echo true || echo false),\"rounds\":$rounds,\"seconds\":$secs,\"tsc_hz\":$tsc_hz,\"date\":\"$(date -u +%FT%TZ)\",\"commit\":\"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- dataplane control include 2>/dev/null || echo +dirty)\",\"host\":\"$(hostname)\",\"cpus\":$(nproc),\"cpu\":\"$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo | tr -d '"')\",\"dpdk\":\"$(dpkg-query -W -f '${Version}' dpdk-dev 2>/dev/null || echo unknown)\"}"

# ---- sizes ---------------------------------------------------------------------
# One line per throughput configuration:
#   name tenants devices packets zipf payload fanout ipv6-share runners...
# devices and packets make the capture (fg-gen, seed 1); runners:
#   macswap, csum       dpdk-testpmd in that forward mode
#   fg:N[:W]            framegate with the mapping file of N devices of the
#                       same tenants loaded, on W workers (default 1)
# fg-gen deals device j to tenant j % tenants + 1 and draws its id, epoch and
# key from j alone, so the mapping file of N devices is the first N devices of
# any larger one: "hot" loads 1,000,000 or 4,096 mappings for one capture of
# 4,096 devices (16,384 frames drawn uniformly, so nearly all of them appear,
# and small enough to stay in cache). Every capture carries 20% adversarial frames (5% each spoofed,
# stale, unauthenticated, malformed) and half the devices are keyed.
#
# The default run is a subset of the issue's cross product: the table sizes
# at the base workload (zipf 0.8, 100-byte payload, IPv4, fan-out 1), then
# one dimension changed at a time at 1,000,000 mappings: uniform popularity
# (the cold-traffic goal, with testpmd csum), IPv6 ingress, fan-out 3,
# 1,200-byte payload; the hot pair; and two workers at 1,000,000.
if [ $quick = 1 ]; then
  L=16000; LT=1600
  configs=(
    "size-s    100  1000  1000  0.8 100  1 0 macswap fg:1000"
    "size-m    400  4000  4000  0.8 100  1 0 macswap fg:4000"
    "size-l    $LT  $L    $L    0.8 100  1 0 macswap fg:$L fg:$L:2"
    "cold      $LT  $L    $L    0   100  1 0 macswap csum fg:$L"
    "ipv6      $LT  $L    $L    0.8 100  1 1 macswap fg:$L"
    "fanout3   $LT  $L    $L    0.8 100  3 0 macswap fg:$L"
    "frame1200 $LT  $L    $L    0.8 1200 1 0 macswap fg:$L"
    "hot       $LT  256   1024  0   100  1 0 macswap fg:$L fg:256"
  )
  verdict_args=(-n "$L" -t "$LT" -p 65536 -r "$rounds")
  shield_args=(-n 20000 -r "$rounds")
  ctl_args=(--latency-n 200 --batch 1000 --window 1)
else
  L=1000000; LT=100000
  configs=(
    "size-s    1000   10000   10000   0.8 100  1 0 macswap fg:10000"
    "size-m    10000  100000  100000  0.8 100  1 0 macswap fg:100000"
    "size-l    $LT    $L      $L      0.8 100  1 0 macswap fg:$L fg:$L:2"
    "cold      $LT    $L      $L      0   100  1 0 macswap csum fg:$L"
    "ipv6      $LT    $L      $L      0.8 100  1 1 macswap fg:$L"
    "fanout3   $LT    $L      $L      0.8 100  3 0 macswap fg:$L"
    "frame1200 $LT    $L      $L      0.8 1200 1 0 macswap fg:$L"
    "hot       $LT    4096    16384   0   100  1 0 macswap fg:$L fg:4096"
  )
  verdict_args=(-n "$L" -t "$LT" -p 1048576 -r "$rounds")
  shield_args=(-r "$rounds")
  ctl_args=(--latency-n 4000 --batch 10000 --window 5)
fi

# ---- generated inputs ------------------------------------------------------------

# gen_files TENANTS DEVICES PACKETS ZIPF PAYLOAD FANOUT IPV6: sets cap, map.
# The mapping file depends on the population only (tenants, devices, sinks
# per tenant, fan-out), the capture on everything; both are cached in $work.
gen_files() {
  local t=$1 d=$2 p=$3 z=$4 pl=$5 f=$6 v6=$7 k
  k=$(( f > 2 ? f : 2 ))
  map=$work/gen/map-t$t-d$d-k$k-f$f.jsonl
  cap=$work/gen/cap-t$t-d$d-k$k-f$f-p$p-z$z-b$pl-v$v6.pcap
  [ -s "$cap" ] && [ -s "$map" ] && return 0
  say "generating $p frames for $d devices of $t tenants (zipf $z, payload $pl, fan-out $f, ipv6 $v6)"
  build/tools/fg-gen --seed 1 --tenants "$t" --devices "$d" --packets "$p" --zipf "$z" \
    --payload "$pl" --fanout "$f" --sinks-per-tenant "$k" --ipv6-share "$v6" --vlan-share 0 \
    --keyed-share 0.5 --spoofed 0.05 --stale 0.05 --unauth 0.05 --malformed 0.05 \
    --out-pcap "$cap.tmp" --out-mappings "$map.tmp" --out-expect "$cap.expect" \
    2> "$work/log/fg-gen.txt" || die "fg-gen failed: $(cat "$work/log/fg-gen.txt")"
  # How many distinct devices the capture really holds: with zipf popularity
  # fewer than the population, which the report states beside each figure.
  awk -F'"device":"' '{split($2, a, "\""); if (!(a[1] in s)) {s[a[1]]; n++}} END {print n}' \
    "$cap.expect" > "$cap.distinct"
  rm -f "$cap.expect"
  mv "$cap.tmp" "$cap"
  if [ -s "$map" ]; then rm -f "$map.tmp"; else mv "$map.tmp" "$map"; fi
}

# Mapping file only (the capture of that call is one packet, thrown away).
gen_map() {  # TENANTS DEVICES FANOUT: sets map
  local t=$1 d=$2 f=$3 k
  k=$(( f > 2 ? f : 2 ))
  map=$work/gen/map-t$t-d$d-k$k-f$f.jsonl
  [ -s "$map" ] && return 0
  say "generating the mapping file of $d devices of $t tenants"
  build/tools/fg-gen --seed 1 --tenants "$t" --devices "$d" --packets 1 --fanout "$f" \
    --sinks-per-tenant "$k" --keyed-share 0.5 --out-pcap "$work/gen/throwaway.pcap" \
    --out-mappings "$map.tmp" 2> "$work/log/fg-gen.txt" || die "fg-gen failed: $(cat "$work/log/fg-gen.txt")"
  mv "$map.tmp" "$map"
}

# ---- runners ---------------------------------------------------------------------

# EAL arguments. Memory (-m, megabytes): the capture sits in mbufs of about
# 2.4 KB; framegate's header and clone pools add about 0.6 KB per mbuf; the
# tables at 1,000,000 mappings take about 0.5 GB. Without hugepages memory
# that is reserved but never touched costs nothing, so the margin is wide.
# Sets the array eal (an array: '*:error' must not meet the shell's globbing).
eal_args() {  # PREFIX LCORES VDEV-ARGS MEM_MB
  eal=(--no-huge -m "$4" --no-pci --lcores "$2" --no-shconf --file-prefix="$1" --no-telemetry
       '--log-level=*:error' --vdev "net_pcap0,$3")
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) exit 1; print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# testpmd prints its per-second rate; the first second is partial, so its
# rate is the median of the next $secs seconds' readings. It runs until it
# has printed them, then is stopped.
run_testpmd() {  # MODE CAP PACKETS -> Mpps on stdout
  local mode=$1 cap=$2 p=$3 log pid n deadline mbufs
  mbufs=$((p + 100000))
  log=$work/log/testpmd-$mode.txt
  eal_args "fgball$$t" "0@0,1@1" "rx_pcap=$cap,infinite_rx=1" $((p * 2400 / 1048576 + 2048))
  dpdk-testpmd "${eal[@]}" -- --forward-mode="$mode" --total-num-mbufs=$mbufs --stats-period 1 < /dev/null > "$log" 2>&1 &
  pid=$!
  deadline=$(( $(date +%s) + secs + 300 ))
  while :; do
    n=$(awk '/Rx-pps:/ && $2 > 0 {c++} END {print c + 0}' "$log")
    [ "$n" -gt "$secs" ] && break
    kill -0 $pid 2>/dev/null || { wait $pid || true; die "dpdk-testpmd $mode stopped early; see $log"; }
    [ "$(date +%s)" -lt $deadline ] || { kill -INT $pid; wait $pid || true; die "dpdk-testpmd $mode printed no rate in time; see $log"; }
    sleep 0.2
  done
  kill -INT $pid; wait $pid || true
  rm -rf "/var/run/dpdk/fgball$$t"    # testpmd leaves its runtime folder behind
  awk -v n="$secs" '/Rx-pps:/ && $2 > 0 { c++; if (c > 1 && c <= n + 1) print $2 / 1e6 }' "$log" | median
}

# framegate's own figure: packets received over --duration, by its clock,
# from the moment it forwards. The journal of each (mapping file, capacity)
# is kept across rounds: the first round loads the file into it, the next
# ones restart from it (faster than loading again, and the same state).
run_framegate() {  # CONF MAP CAP PACKETS WORKERS -> Mpps on stdout
  local conf=$1 map=$2 cap=$3 p=$4 w=$5 jdir log lcores vdev mem args
  jdir=$(sed -n 's/.*"journal_dir": "\([^"]*\)".*/\1/p' "$conf")
  log=$work/log/framegate-w$w.txt
  mem=$((p * 3200 / 1048576 + 4096))
  if [ "$w" = 2 ]; then
    # Two rx queues, each replaying half of the capture: each worker polls
    # one, and the pool holds each packet once, as with one worker.
    lcores="0@0,1@1,2@0"; vdev="rx_pcap=$cap.half0,rx_pcap=$cap.half1,infinite_rx=1"
  else
    lcores="0@0,1@1"; vdev="rx_pcap=$cap,infinite_rx=1"
  fi
  args=(--config "$conf" --duration "$secs")
  [ -f "$jdir/journal.log" ] || args+=(--mappings "$map")
  eal_args "fgball$$f" "$lcores" "$vdev" "$mem"
  timeout -s INT $((secs + 600)) build/framegate "${eal[@]}" -- "${args[@]}" > "$log" 2> "$log.err" ||
    die "framegate failed (exit $?); see $log and $log.err"
  grep -q "with $w workers" "$log.err" || die "framegate did not run $w workers; see $log.err"
  grep -q "conservation: rx = forwarded + drops: holds" "$log" || die "framegate's counters do not add up; see $log"
  awk '/^rate:/ {print $2}' "$log"
}

# Splits a capture into two, alternate packets to each (pcap: a 24-byte file
# header, then a 16-byte record header with the captured length at offset 8).
split_capture() {  # CAP
  [ -s "$1.half1" ] && return 0
  "$py" - "$1" <<'EOF'
import struct, sys
src = sys.argv[1]
data = open(src, "rb").read()
outs = [open(f"{src}.half{i}", "wb") for i in (0, 1)]
for o in outs:
    o.write(data[:24])
off, i = 24, 0
while off < len(data):
    n = struct.unpack_from("<I", data, off + 8)[0]
    outs[i % 2].write(data[off:off + 16 + n])
    off += 16 + n
    i += 1
EOF
}

write_conf() {  # FILE TENANTS SINKS DEVICES MBUFS JOURNAL SOCKET
  cat > "$1" <<JSON
{"tables": {"max_tenants": $2, "max_sinks": $3, "max_devices": $4},
 "journal_dir": "$6", "control_socket": "$7", "mbufs": $5,
 "ports": [{"port": 0, "role": "both", "rx_queues": ${8:-1}, "next_hop_mac": "02:00:00:00:00:01",
            "ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}]}
JSON
}

# ---- 2. the verdict engine alone -----------------------------------------------------

say "== verdict engine against a bare rte_hash_lookup_bulk_data: fg-bench-verdict ${verdict_args[*]}"
build/bench/fg-bench-verdict "${verdict_args[@]}" | tee "$work/log/verdict.txt" | sed 's/^/   /'
line=$(grep '^verdict engine:' "$work/log/verdict.txt") || die "fg-bench-verdict printed no summary; see $work/log/verdict.txt"
read -r eng bare vtsc <<< "$(sed -E 's/.*engine: ([0-9.]+) cycles.*lookup: ([0-9.]+) cycles.*TSC ([0-9.]+) GHz.*/\1 \2 \3/' <<< "$line")"
record "{\"kind\":\"verdict\",\"mappings\":${verdict_args[1]},\"tenants\":${verdict_args[3]},\"packets\":${verdict_args[5]},\"engine_cycles\":$eng,\"bare_cycles\":$bare,\"tsc_ghz\":$vtsc}"

# ---- 6. the shield -------------------------------------------------------------------

if [ "$(id -u)" = 0 ] && [ -x build/bench/fg-bench-shield ]; then
  say "== XDP shield against an XDP_PASS program: fg-bench-shield ${shield_args[*]}"
  if build/bench/fg-bench-shield "${shield_args[@]}" > "$work/log/shield.txt" 2>&1; then
    sed 's/^/   /' "$work/log/shield.txt"
    read -r sa sb <<< "$(sed -nE 's/^forwarded frames.*shield ([0-9.]+) ns, pass ([0-9.]+) ns.*/\1 \2/p' "$work/log/shield.txt")"
    [ -n "${sa:-}" ] || die "fg-bench-shield printed no summary; see $work/log/shield.txt"
    record "{\"kind\":\"shield\",\"shield_ns\":$sa,\"pass_ns\":$sb}"
  else
    echo "   fg-bench-shield failed (no BPF here?): $(tail -1 "$work/log/shield.txt"); skipped" >&2
    record "{\"kind\":\"shield\",\"skipped\":\"$(tail -1 "$work/log/shield.txt" | tr -d '"\\')\"}"
  fi
else
  record '{"kind":"shield","skipped":"needs root and build/bench/fg-bench-shield"}'
fi

# ---- 1 and 7. forwarding throughput --------------------------------------------------

for c in "${configs[@]}"; do
  read -r name t d p z pl f v6 runners <<< "$c"
  gen_files "$t" "$d" "$p" "$z" "$pl" "$f" "$v6"
  capture=$cap
  k=$(( f > 2 ? f : 2 ))
  # Capacity: the largest table any runner of this configuration loads, so
  # that "fg:4096" and "fg:1000000" differ only in what is loaded.
  maxdev=0
  for r in $runners; do
    case $r in fg:*) n=${r#fg:}; n=${n%%:*}; [ "$n" -gt "$maxdev" ] && maxdev=$n ;; esac
  done
  say "== throughput: $name ($(cat "$capture.distinct") distinct devices in $p frames; runners: $runners)"
  record "{\"kind\":\"config\",\"name\":\"$name\",\"tenants\":$t,\"devices\":$d,\"packets\":$p,\"distinct\":$(cat "$capture.distinct"),\"zipf\":$z,\"payload\":$pl,\"fanout\":$f,\"ipv6\":$v6,\"capacity\":$maxdev,\"runners\":\"$runners\"}"
  for r in $(seq 1 "$rounds"); do
    line="   round $r/$rounds:"
    for run in $runners; do
      case $run in
        macswap|csum)
          mpps=$(run_testpmd "$run" "$capture" "$p") ;;
        fg:*)
          spec=${run#fg:}; n=${spec%%:*}; w=1
          [ "$spec" != "$n" ] && w=${spec#*:}
          gen_map "$t" "$n" "$f"
          [ "$w" = 2 ] && split_capture "$capture"
          # One journal per loaded table and capacity, reused by the rounds
          # (and by later configurations with the same population).
          jdir=$work/journal-t$t-n$n-k$k-f$f-c$maxdev
          conf=$work/conf-$name-$n-w$w.json
          write_conf "$conf" "$t" $((t * k)) "$maxdev" $((p + 100000)) "$jdir" "$work/ctl-tp.sock" "$w"
          mpps=$(run_framegate "$conf" "$map" "$capture" "$p" "$w") ;;
        *) die "unknown runner $run in configuration $name" ;;
      esac
      [ -n "$mpps" ] || die "$run gave no rate in configuration $name"
      record "{\"kind\":\"throughput\",\"config\":\"$name\",\"runner\":\"$run\",\"round\":$r,\"mpps\":$mpps}"
      line="$line  $run $(printf %.3f "$mpps") Mpps"
    done
    echo "$line"
  done
done

# ---- 3, 4 and 5. control plane, memory, restart ---------------------------------------

# The largest population, loaded through the control socket into an empty
# router; the churn runs while the router forwards the cold capture.
read -r _ t d p z pl f v6 _ <<< "${configs[3]}"
gen_files "$t" "$d" "$p" "$z" "$pl" "$f" "$v6"
say "== control plane, memory and restart with $d mappings of $t tenants (bench/control_bench.py)"
"$py" bench/control_bench.py --work "$work/ctl" --map "$map" --cold-capture "$cap" \
  --tenants "$t" --sinks $((t * 2)) --devices "$d" --packets "$p" --rounds "$rounds" \
  "${ctl_args[@]}" --results "$results" || die "control_bench.py failed; its output is above"

# ---- issue 8. routers following an etcd store -------------------------------------------

# Its figures are printed and kept in the results (kind "store"); the
# "Store (etcd) convergence" section of performance.md quotes them by hand.
if command -v etcd >/dev/null && [ -x build/bench/fg-bench-store ]; then
  store_args=()
  [ $quick = 1 ] && store_args+=(--quick)
  say "== routers following etcd: fg-bench-store ${store_args[*]}"
  build/bench/fg-bench-store "${store_args[@]}" > "$work/log/store.txt" 2> "$work/log/store.err" ||
    die "fg-bench-store failed: $(tail -1 "$work/log/store.err"); see $work/log/store.err"
  sed 's/^/   /' "$work/log/store.txt"
  "$py" -c 'import json, sys; print(json.dumps({"kind": "store", "lines": sys.stdin.read().splitlines()}))' \
    < "$work/log/store.txt" >> "$results"
else
  echo "   no etcd (Debian package etcd-server) or no build/bench/fg-bench-store: the store bench is skipped" >&2
  record '{"kind":"store","skipped":"needs etcd and build/bench/fg-bench-store"}'
fi

# ---- the report ------------------------------------------------------------------------

say "== report"
report_args=(--results "$results" --json bench/results/latest.json --img docs/img)
[ $doc = 1 ] && report_args+=(--doc docs/performance.md)
"$py" bench/report.py "${report_args[@]}"
say "done: bench/results/latest.json, docs/img/*.png$([ $doc = 1 ] && echo ', docs/performance.md'); logs in $work/log"
