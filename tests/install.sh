#!/bin/bash
# Suite `install`: `meson install` into a staging folder, then what an
# operator's machine would do with it.
#
#   1. every file is in its place (unit, sysusers.d, man pages, the default
#      configuration and EAL options, binaries, the shield object);
#   2. each man page renders with no groff warning and has a NAME line that
#      lexgrog reads; fgctl(8) has a section for every command of fgctl --help;
#   3. `systemd-analyze verify` accepts the unit with no message at all, in
#      a root made of the staged files and the host's own units (no systemd
#      as PID 1 is needed); it is shown to complain about a broken copy;
#   4. systemd-sysusers creates the control group from the staged file;
#   5. the unit's own ExecStart, with the staged default configuration, starts
#      a router (virtual ports), in a mount namespace where /run and /var/lib
#      are fresh, as systemd would give them (RuntimeDirectory=,
#      StateDirectory=), and /etc/group has the sysusers group: fgctl reaches
#      it on the default socket; the socket is 0660 and of group framegate;
#      a member of the group may change state, a non-member may not; the
#      change is journaled; SIGTERM stops it with exit status 0. Without the
#      group, the router refuses to start and names it.
#
# Arguments (tests/meson.build): BUILD_DIR SOURCE_DIR BINDIR SYSCONFDIR
#   DATADIR LIBDIR UNITDIR SYSUSERSDIR MANDIR
set -u
build=$1 src=$2 bindir=$3 sysconfdir=$4 datadir=$5 libdir=$6 unitdir=$7
sysusersdir=$8 mandir=$9

tap_n=0 failed=0
ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $1"; }
not_ok() { tap_n=$((tap_n + 1)); failed=1; echo "not ok $tap_n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() {   # description, command...: ok when the command succeeds
  local d=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$d"; else not_ok "$d" "$out"; fi
}

work=$(mktemp -d /tmp/fg_install.XXXXXX)
chmod 0755 "$work"     # the unprivileged users of step 5 run the staged fgctl
stage=$work/stage
trap 'rm -rf "$work"' EXIT

# ---- 1. the staged install -------------------------------------------------
if out=$(DESTDIR=$stage meson install -C "$build" --no-rebuild --quiet 2>&1); then
  ok "meson install into $stage"
else
  not_ok "meson install into $stage" "$out"
  echo "1..$tap_n"; exit 1
fi

unit=$unitdir/framegate.service
conf=$sysconfdir/framegate/framegate.conf
envfile=$sysconfdir/default/framegate
pages=("$mandir/man8/framegate.8" "$mandir/man8/fgctl.8" "$mandir/man5/framegate.conf.5")
for f in "$unit" "$sysusersdir/framegate.conf" "$conf" "$envfile" \
         "$datadir/framegate.conf" "$datadir/framegate.default" \
         "$libdir/shield.bpf.o" "${pages[@]}"; do
  check "installed: $f" test -s "$stage$f"
done
for b in framegate fgctl fg-gen fg-audit fg-verdict; do
  check "installed: $bindir/$b" test -x "$stage$bindir/$b"
done
check "the default configuration is the packaged one" \
  cmp "$stage$conf" "$src/dist/framegate.conf"

# ---- 2. man pages ----------------------------------------------------------
for p in "${pages[@]}"; do
  out=$(groff -man -Tutf8 -ww -z "$stage$p" 2>&1)
  if [ -z "$out" ]; then ok "groff -ww: $(basename "$p") renders without warnings"
  else not_ok "groff -ww: $(basename "$p") renders without warnings" "$out"; fi
  check "lexgrog reads the NAME of $(basename "$p")" lexgrog "$stage$p"
done
# The check can fail: a page with a bad request draws a warning.
printf '.TH X 8\n.SH NAME\nx \\- y\n.XYZZY\n' > "$work/bad.8"
if [ -n "$(groff -man -Tutf8 -ww -z "$work/bad.8" 2>&1)" ]; then
  ok "groff -ww warns about a broken page"
else
  not_ok "groff -ww warns about a broken page"
fi
# fgctl(8) is generated from the rows that --help lists: one section each.
mapfile -t cmds < <("$stage$bindir/fgctl" --help |
  sed -n 's/^  \([a-z][a-z]*\( [a-z][a-z]*\)\{0,1\}\)\( .*\)\{0,1\}$/\1/p')
missing=()
for c in "${cmds[@]}"; do
  grep -qxF ".SS \"$c\"" "$stage$mandir/man8/fgctl.8" || missing+=("$c")
done
sections=$(grep -c '^\.SS ' "$stage$mandir/man8/fgctl.8")
if [ ${#cmds[@]} -gt 10 ] && [ ${#missing[@]} -eq 0 ] && [ "$sections" -eq ${#cmds[@]} ]; then
  ok "fgctl(8) has a section for each of the ${#cmds[@]} commands of fgctl --help"
else
  not_ok "fgctl(8) has a section for each command of fgctl --help" \
    "--help lists ${#cmds[@]}, the page has $sections sections; missing: ${missing[*]:-none}"
fi

# ---- 3. systemd-analyze verify ----------------------------------------------
# A root of the staged files and the host's units (the unit's dependencies,
# sysinit.target and the like); man finds the staged pages through MANPATH
# (the unit's Documentation=).
vroot=$work/vroot
cp -a "$stage" "$vroot"
mkdir -p "$vroot/usr/lib/systemd" "$vroot/etc"
cp -r /usr/lib/systemd/system "$vroot/usr/lib/systemd/"
verify() {
  (cd "$work" && MANPATH=$vroot$mandir systemd-analyze verify --root="$vroot" "$1" 2>&1)
}
out=$(verify "$unit"); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify accepts $unit, silently"
else not_ok "systemd-analyze verify accepts $unit, silently" "exit $rc" "$out"; fi
# The check can fail: a misspelt key is only a warning, so silence matters.
sed 's/^ProtectHome=yes$/ProtectHome=yess/' "$vroot$unit" > "$vroot$unitdir/framegate-bad.service"
out=$(verify "$unitdir/framegate-bad.service")
if grep -q 'ProtectHome\|protect home' <<<"$out"; then
  ok "systemd-analyze verify names the bad setting of a broken copy"
else
  not_ok "systemd-analyze verify names the bad setting of a broken copy" "$out"
fi
rm -f "$vroot$unitdir/framegate-bad.service"
check "the unit runs the staged framegate with the staged configuration" \
  grep -qxF "ExecStart=$bindir/framegate \$FG_EAL_ARGS -- --config $conf \$FG_ARGS" "$stage$unit"

# ---- 4. sysusers: the control socket's group ---------------------------------
cp /etc/passwd /etc/group "$vroot/etc/"
touch "$vroot/etc/shadow" "$vroot/etc/gshadow"
grep -v '^framegate:' /etc/group > "$vroot/etc/group"
if out=$(systemd-sysusers --root="$vroot" "$vroot$sysusersdir/framegate.conf" 2>&1) &&
   grep -q '^framegate:x:[0-9]*:$' "$vroot/etc/group"; then
  ok "systemd-sysusers creates the group framegate from $sysusersdir/framegate.conf"
else
  not_ok "systemd-sysusers creates the group framegate" "$out"
fi
gid=$(sed -n 's/^framegate:x:\([0-9]*\):.*/\1/p' "$vroot/etc/group")

# ---- 5. the service's command on the default configuration --------------------
# The environment file must parse as shell assignments (as systemd reads it).
check "the default environment file sets FG_EAL_ARGS" \
  bash -c "set -eu; . '$stage$envfile'; test -n \"\$FG_EAL_ARGS\""

exec_start=$(sed -n 's/^ExecStart=//p' "$stage$unit")
exec_start=${exec_start//"$bindir/"/"$stage$bindir/"}
exec_start=${exec_start//"$conf"/"$stage$conf"}
fgctl=$stage$bindir/fgctl

# In a private mount namespace: fresh /run and /var/lib (the EAL's runtime
# folder goes with it) and the group file given as $1.
cat > "$work/service.sh" <<EOF
set -u
mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib || exit 90
mkdir -m 0755 /run/framegate && mkdir -m 0700 /var/lib/framegate || exit 90
# The group file of step 4 (with framegate), or the host's without it.
mount --bind "\$1" /etc/group || exit 90
export FG_EAL_ARGS="-l 0 --no-huge -m 1024 --no-pci --no-shconf --file-prefix=fginstall\$\$ --no-telemetry --log-level=*:error --vdev net_pcap0,rx_pcap=$src/tests/vectors/packets.pcap --vdev net_pcap1,tx_pcap=$work/out.pcap"
export FG_ARGS=""
eval "exec $exec_start" > "$work/router.out" 2> "$work/router.err" &
router=\$!
for i in \$(seq 300); do
  grep -q 'framegate: forwarding' "$work/router.err" && break
  kill -0 \$router 2>/dev/null || break
  sleep 0.1
done
if ! grep -q 'framegate: forwarding' "$work/router.err"; then
  wait \$router; echo "router-exit \$?"; exit 0
fi
echo "serving"
"$fgctl" health > /dev/null; echo "health \$?"
echo "socket \$(stat -c '%a %G' /run/framegate/control.sock)"
setpriv --reuid=65534 --regid=65534 --groups=$gid "$fgctl" tenant add 7 --name member; echo "member \$?"
setpriv --reuid=65534 --regid=65534 --clear-groups "$fgctl" tenant add 8 2>&1; echo "outsider \$?"
"$fgctl" --json dump; echo "dump \$?"
kill -TERM \$router
for i in \$(seq 200); do kill -0 \$router 2>/dev/null || break; sleep 0.1; done
kill -0 \$router 2>/dev/null && { echo "no stop after 20 s"; kill -KILL \$router; }
wait \$router; echo "stopped \$?"
echo "journal \$(stat -c %s /var/lib/framegate/journal.log 2>/dev/null || echo none)"
EOF
out=$(unshare --mount --propagation private bash "$work/service.sh" "$vroot/etc/group" 2>&1)
echo "$out" | sed 's/^/# /'
sed 's/^/# router: /' "$work/router.err"
if grep -qx serving <<<"$out"; then
  ok "the unit's ExecStart starts a router on the default configuration"
  check "fgctl reaches it on the default socket" grep -qx 'health 0' <<<"$out"
  check "the socket is mode 0660, group framegate" grep -qx 'socket 660 framegate' <<<"$out"
  check "a member of the group may change state" grep -qx 'member 0' <<<"$out"
  check "a user outside the group cannot open the socket (exit 3, named)" \
    bash -c 'grep -qx "outsider 3" <<<"$1" &&
             grep -q "control.sock: Permission denied" <<<"$1"' _ "$out"
  check "the member's change is in the state" grep -q '"tenant": *7' <<<"$out"
  check "the outsider's change is not" bash -c '! grep -q "\"tenant\": *8" <<<"$1"' _ "$out"
  check "SIGTERM stops it with exit status 0" grep -qx 'stopped 0' <<<"$out"
  check "the change was journaled in /var/lib/framegate" \
    bash -c 'n=$(sed -n "s/^journal //p" <<<"$1"); [ "$n" != none ] && [ "$n" -gt 0 ]' _ "$out"
else
  not_ok "the unit's ExecStart starts a router on the default configuration" "$out"
fi

# Without the group (sysusers never ran), the router names the group.
grep -v '^framegate:' /etc/group > "$work/group.without"
out=$(unshare --mount --propagation private bash "$work/service.sh" "$work/group.without" 2>&1)
if grep -qx 'router-exit 1' <<<"$out" &&
   grep -q 'group "framegate" does not exist' "$work/router.err"; then
  ok "without the group the router refuses to start and names it"
else
  not_ok "without the group the router refuses to start and names it" "$out" \
    "$(cat "$work/router.err")"
fi

echo "1..$tap_n"
exit $failed
