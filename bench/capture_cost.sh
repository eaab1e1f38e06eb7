#!/usr/bin/env bash
# What the capture hook costs the worker while no capture runs: the worker
# bench (bench/worker_bench.c, the real worker loop on a net_null port) built
# from a tree without the hook (BEFORE) and from one with it (AFTER), run
# alternately in one session. Prints each run's median cycles per packet,
# the median of the runs of each, and the ratio AFTER/BEFORE (1.00: no cost;
# absolute cycles drift on a shared machine, the ratio is the figure).
#
# usage: bench/capture_cost.sh BEFORE AFTER [ROUNDS]
#   BEFORE, AFTER: fg-bench-worker programs. For BEFORE, unpack the older
#   tree (git archive COMMIT | tar -x -C /tmp/before), copy
#   bench/worker_bench.c and its meson rule into it, and build
#   bench/fg-bench-worker there.
set -euo pipefail

before=${1:?usage: $0 BEFORE AFTER [ROUNDS]}
after=${2:?usage: $0 BEFORE AFTER [ROUNDS]}
rounds=${3:-7}

one() { nice "$1" -s 2000 -c 4096 | awk '{print $(NF-1)}'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

b=() a=()
for ((i = 0; i < rounds; i++)); do
  b+=("$(one "$before")")
  a+=("$(one "$after")")
  printf 'round %d: before %s, after %s cycles/packet\n' "$i" "${b[-1]}" "${a[-1]}"
done
mb=$(printf '%s\n' "${b[@]}" | median)
ma=$(printf '%s\n' "${a[@]}" | median)
printf 'median of %d rounds: before %s, after %s cycles/packet, after/before %.3f\n' \
  "$rounds" "$mb" "$ma" "$(awk -v a="$ma" -v b="$mb" 'BEGIN {print a / b}')"
