#!/bin/sh
# fg-bench-store refuses each bad option with one line that names the option
# and the value, exits 1, and starts nothing (no etcd, no router: it stops
# before its work folder is made).
# usage: test_store_bench_args.sh PATH-TO-fg-bench-store
bin=$1
fail=0
passed=0
check() {  # WANT-IN-MESSAGE ARGS...
  want=$1; shift
  before=$(ls -d /tmp/fg-bench-store.* 2>/dev/null | wc -l)
  out=$("$bin" "$@" 2>&1); rc=$?
  after=$(ls -d /tmp/fg-bench-store.* 2>/dev/null | wc -l)
  case "$out" in
    *"$want"*) ok=1 ;;
    *) ok=0 ;;
  esac
  if [ $rc = 1 ] && [ $ok = 1 ] && [ "$before" = "$after" ]; then
    echo "ok: $* -> $out"
    passed=$((passed + 1))
  else
    echo "FAIL: $* -> exit $rc, folders $before -> $after, said: $out (wanted: $want)"
    fail=$((fail + 1))
  fi
}
check '--rates: "0" is not a number from 1 to 1000000' --rates 0
check '--rates: "fast" is not a number' --rates 1000,fast
check '--rates: at most 4 rates' --rates 1,2,3,4,5
check '--changes: "-5" is not a number' --changes -5
check '--writers: "65" is not a number from 1 to 64' --writers 65
check '--mappings: "12x" is not a number' --mappings 12x
check '--only: "both" is neither convergence nor resync' --only both
check '--load: "fast" is neither direct nor writer' --load fast
check '--router-nice: "20" is not a number from 0 to 19' --router-nice 20
check '--group-max: "0" is not a number from 1 to 1000' --group-max 0
check '--low-writers: "65" is not a number from 1 to 64' --low-writers 65
check '--idle-sleep-us: "soon" is not a number' --idle-sleep-us soon
check 'unexpected argument "extra"' extra
if "$bin" --help | grep -q -- '--only WHAT'; then
  passed=$((passed + 1))
else
  echo "FAIL: --help does not list --only"; fail=$((fail + 1))
fi
echo "$passed passed, $fail failed"
[ $fail = 0 ]
