#!/usr/bin/env bash
# framegate set-up: install what is needed (Debian 12, as root), build, then
#   scripts/setup.sh demo   run the demo
#   scripts/setup.sh test   run the tests: the Criterion suites, the same
#                           suites under ASan+UBSan, and the concurrency test
#                           under TSan, then each fuzz harness for 30 s;
#                           ends with "N passed, N failed"
#   scripts/setup.sh build  only install and build
# Set FG_SKIP_INSTALL=1 to skip apt-get (packages already there). In test
# mode, 128 hugepages of 2 MiB are reserved (and hugetlbfs mounted) for the
# dpdk-dumpcap test unless FG_HUGEPAGES=0.
set -euo pipefail

cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
  demo|test|build) ;;
  *) echo "usage: $0 demo|test|build" >&2; exit 2 ;;
esac

packages=(
  build-essential pkg-config meson ninja-build python3
  libdpdk-dev libsodium-dev libjansson-dev libjemalloc-dev libcriterion-dev
  libpcap-dev
  iproute2 procps           # the namespace tests: ip netns, veth, sysctl
  clang libclang-rt-14-dev  # the libFuzzer harnesses (clang also builds ebpf/)
  libbpf-dev bpftool linux-libc-dev  # the XDP shield: libbpf, skeletons, headers
  libcurl4-openssl-dev etcd-server   # the etcd client, and the test clusters
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler  # etcd transactions over gRPC
  libmicrohttpd-dev         # the Prometheus endpoint (control/metrics.c)
  dpdk-dev                  # dpdk-telemetry.py (metrics suite), dpdk-dumpcap (capture suite)
  prometheus                # promtool, which checks a scrape in the metrics suite
  systemd groff-base man-db util-linux  # the install suite: systemd-analyze verify,
                            # systemd-sysusers, groff -ww, lexgrog, unshare, setpriv
)

if [ "${FG_SKIP_INSTALL:-0}" != 1 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "$0: run as root (it installs packages with apt-get), or set FG_SKIP_INSTALL=1" >&2
    exit 2
  fi
  echo "== installing: ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

setup_build() {   # dir, meson options...
  local dir=$1; shift
  if [ -d "$dir" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir"
}

echo "== building (release)"
setup_build build

case "$mode" in
build)
  ;;
demo)
  echo
  exec scripts/demo.sh
  ;;
test)
  status=0
  logs=()
  # dpdk-dumpcap attaches only to a router on hugepages (docs/configuration.md,
  # "Capturing"): the capture suite needs 160 MiB of them, or skips that test.
  if [ "${FG_HUGEPAGES:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
    free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
    if [ "${free:-0}" -lt 128 ]; then
      echo $(( $(awk '/HugePages_Total/ {print $2}' /proc/meminfo) + 128 - free )) \
        > /proc/sys/vm/nr_hugepages 2>/dev/null ||
        echo "== cannot reserve hugepages: the dpdk-dumpcap test will be skipped"
    fi
    grep -q ' hugetlbfs ' /proc/mounts ||
      { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } 2>/dev/null ||
      echo "== cannot mount hugetlbfs: the dpdk-dumpcap test will be skipped"
  fi
  echo "== tests (release build)"
  meson test -C build --print-errorlogs || status=1
  logs+=(build/meson-logs/testlog.json)

  echo "== tests under ASan+UBSan"
  if setup_build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
                            -Dbuildtype=debugoptimized; then
    # The slow control tests at reduced size here; full size in the release run.
    FG_BIG_LOAD=100000 FG_CRASH_POINTS=6 FG_CONC_PACKETS=2000000 FG_STORE_CHANGES=1000 FG_HARD_DEVICES=100000 \
    ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      meson test -C build-asan --print-errorlogs || status=1
    logs+=(build-asan/meson-logs/testlog.json)
  else
    echo "== the ASan+UBSan build failed: its run counts as one failure"
    status=1
    asan_build_failed=1
  fi

  echo "== concurrency under TSan"
  if setup_build build-tsan -Db_sanitize=thread -Dbuildtype=debugoptimized; then
    meson test -C build-tsan --print-errorlogs || status=1
    logs+=(build-tsan/meson-logs/testlog.json)
  else
    echo "== the TSan build failed: its test counts as failed"
    status=1
    tsan_build_failed=1
  fi

  echo "== fuzzing, ${FG_FUZZ_SECONDS:-30} s per harness"
  fuzz_out=$(scripts/fuzz.sh "${FG_FUZZ_SECONDS:-30}") || status=1
  echo "$fuzz_out"
  fuzz_ok=$(grep -c ': clean$' <<<"$fuzz_out" || true)
  fuzz_bad=$(grep -c 'FAILED' <<<"$fuzz_out" || true)

  python3 scripts/test-summary.py --extra "$fuzz_ok" "$(( fuzz_bad + ${tsan_build_failed:-0} + ${asan_build_failed:-0} ))" "${logs[@]}" || status=1
  exit $status
  ;;
esac
