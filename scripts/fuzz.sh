#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, ASan+UBSan) and run each for SECONDS
# (default 60), seeded from the conformance vectors. Prints each harness's
# executions; a crash or an oracle disagreement stops with its input saved
# under build-fuzz/artifacts/ and a non-zero exit.
#
#   scripts/fuzz.sh [SECONDS]          (needs: apt-get install clang libclang-rt-14-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

if [ ! -d build-fuzz ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build-fuzz >/dev/null

corpus=build-fuzz/corpus
mkdir -p "$corpus/packet" "$corpus/mapline" "$corpus/journal" "$corpus/ctl" build-fuzz/artifacts
# Seeds: every vector packet, every vector mapping line.
python3 - "$corpus" <<'PY'
import struct, sys
out = sys.argv[1]
data = open("tests/vectors/packets.pcap", "rb").read()
endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
off, i = 24, 0
while off + 16 <= len(data):
    incl = struct.unpack(endian + "IIII", data[off:off + 16])[2]
    open(f"{out}/packet/vector{i:03d}", "wb").write(data[off + 16:off + 16 + incl])
    off += 16 + incl
    i += 1
for i, line in enumerate(open("tests/vectors/mappings.jsonl", "rb")):
    open(f"{out}/mapline/vector{i:03d}", "wb").write(line.rstrip(b"\n"))
# A journal of the vectors' lines, one record each (format: control/journal.h).
import binascii
def crc32c(b):
    crc = 0xffffffff
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
rec = b""
for line in open("tests/vectors/mappings.jsonl", "rb"):
    hdr = b"FGJ1" + struct.pack("<II", len(line), 0)
    rec += hdr + struct.pack("<I", crc32c(hdr + line)) + line
open(f"{out}/journal/vectors", "wb").write(rec)
# Control requests, framed as a client sends them: each vector line as an
# apply, reads, a load in chunks, and a pipeline of all of them.
import json
def frame(obj):
    b = json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack(">I", len(b)) + b
lines = [json.loads(l) for l in open("tests/vectors/mappings.jsonl") if l.strip()]
reqs = [frame({"cmd": "apply", "op": l}) for l in lines]
reqs += [frame({"cmd": c}) for c in ("dump", "stats", "drops", "health")]
reqs += [frame({"cmd": "drops", "tenant": 7}), frame({"cmd": "rekey", "tenant": 7, "device": "0xa1"})]
text = "".join(json.dumps(l) + "\n" for l in lines)
reqs += [frame({"cmd": "load.begin"}) + frame({"cmd": "load.chunk", "text": text}) + frame({"cmd": "load.commit"})]
for i, r in enumerate(reqs):
    open(f"{out}/ctl/req{i:03d}", "wb").write(r)
open(f"{out}/ctl/pipeline", "wb").write(b"".join(reqs))
# Scripts (fuzz/fuzz_ctl.c, fuzz_script): clients that close a connection
# mid-header, mid-body, after a whole request before its reply and in the
# middle of many replies, half-close, and interleave connections.
SEND, FRAME, SERVE, READ, SHUT, CLOSE, OPEN, AWAIT = range(8)
def step(op, conn, arg=0):
    return bytes([op << 5 | arg << 2 | conn])
def send(conn, b):
    s = b""
    for k in range(0, len(b), 2047):
        part = b[k:k + 2047]
        s += step(SEND, conn, len(part) // 256) + bytes([len(part) % 256]) + part
    return s
def script(conns, body):
    return bytes([0x10 | (conns - 1)]) + body
scripts = []
for r in reqs:
    scripts.append(script(1, send(0, r) + step(CLOSE, 0) + step(SERVE, 0, 3)))
    scripts.append(script(1, send(0, r[:2]) + step(CLOSE, 0) + step(SERVE, 0, 3)))
    scripts.append(script(1, send(0, r[:-1]) + step(CLOSE, 0) + step(SERVE, 0, 3)))
    scripts.append(script(2, send(0, r) + step(SHUT, 0) + send(1, r) + step(SERVE, 0, 1) +
                          step(AWAIT, 1, 5) + step(CLOSE, 1) + step(OPEN, 1) + send(1, r)))
pipeline = b"".join(reqs)
dumps = frame({"cmd": "dump"}) * 40
scripts.append(script(1, send(0, dumps) + step(SERVE, 0, 1) + step(READ, 0, 4) + step(CLOSE, 0) +
                      step(SERVE, 0, 7)))
scripts.append(script(3, send(0, pipeline[:100]) + send(1, dumps) + send(2, reqs[0]) +
                      step(SERVE, 0, 0) + send(0, pipeline[100:]) + step(AWAIT, 1, 7) +
                      step(CLOSE, 1) + step(SHUT, 2) + step(SERVE, 0, 2) + step(READ, 0, 7) +
                      step(CLOSE, 0) + step(OPEN, 0) + send(0, dumps[:30])))
for i, sc in enumerate(scripts):
    open(f"{out}/ctl/script{i:03d}", "wb").write(sc)
PY

status=0
for h in packet mapline journal ctl; do
  log=build-fuzz/fuzz_$h.log
  if ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     build-fuzz/fuzz/fuzz_$h -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix=build-fuzz/artifacts/$h- "$corpus/$h" >"$log" 2>&1; then
    result=clean
  else
    result="FAILED (see $log)"
    status=1
  fi
  runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz_$h: ${runs:-?} executions in ${seconds}s: $result"
done
exit $status
