#!/usr/bin/env bash
# framegate set-up: install what is needed (Debian 12, as root), build, then
#   scripts/setup.sh demo   run the demo
#   scripts/setup.sh test   run the tests: the Criterion suites, the same
#                           suites under ASan+UBSan, and the concurrency test
#                           under TSan, then each fuzz harness for 30 s;
#                           ends with "N passed, N failed"
#   scripts/setup.sh build  only install and build
# Set FG_SKIP_INSTALL=1 to skip apt-get (packages already there).
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
  echo "== tests (release build)"
  meson test -C build --print-errorlogs || status=1
  logs+=(build/meson-logs/testlog.json)

  echo "== tests under ASan+UBSan"
  setup_build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
                         -Dbuildtype=debugoptimized
  # The slow control tests at reduced size here; full size in the release run.
  FG_BIG_LOAD=100000 FG_CRASH_POINTS=6 FG_CONC_PACKETS=2000000 \
  ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs || status=1
  logs+=(build-asan/meson-logs/testlog.json)

  echo "== concurrency under TSan"
  setup_build build-tsan -Db_sanitize=thread -Dbuildtype=debugoptimized
  meson test -C build-tsan --print-errorlogs || status=1
  logs+=(build-tsan/meson-logs/testlog.json)

  echo "== fuzzing, ${FG_FUZZ_SECONDS:-30} s per harness"
  fuzz_out=$(scripts/fuzz.sh "${FG_FUZZ_SECONDS:-30}") || status=1
  echo "$fuzz_out"
  fuzz_ok=$(grep -c ': clean$' <<<"$fuzz_out" || true)
  fuzz_bad=$(grep -c 'FAILED' <<<"$fuzz_out" || true)

  python3 scripts/test-summary.py --extra "$fuzz_ok" "$fuzz_bad" "${logs[@]}" || status=1
  exit $status
  ;;
esac
