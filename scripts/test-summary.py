#!/usr/bin/env python3
"""Count test cases across meson test logs and print 'N passed, N failed'.
With --extra P F first, P passed and F failed results from elsewhere (the
fuzz harnesses) are added.

A test that speaks TAP (the Criterion suites) counts each of its 'ok' and
'not ok' lines; a test that does not (the TSan runner) counts once, by its
result. A TAP test that crashed before its plan was complete counts its
missing cases as failed. Exit status 1 when anything failed.
"""
import json
import re
import sys

passed = failed = 0
args = sys.argv[1:]
if args[:1] == ["--extra"]:
    # Results counted elsewhere (the fuzz harnesses): passed, failed.
    passed, failed = int(args[1]), int(args[2])
    args = args[3:]
for path in args:
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            out = t.get("stdout") or ""
            plan = re.search(r"^1\.\.(\d+)", out, re.M)
            if plan:
                ok = len(re.findall(r"^ok\b", out, re.M))
                bad = len(re.findall(r"^not ok\b", out, re.M))
                missing = max(0, int(plan.group(1)) - ok - bad)
                if t["result"] != "OK" and bad + missing == 0:
                    bad = 1  # failed outside any test case
                passed += ok
                failed += bad + missing
            elif t["result"] == "OK":
                passed += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
