#!/usr/bin/env python3
"""Latency of single control operations, each acknowledged only after the
journal's fsync and a grace period (SPEC 4), measured from a client of a
running router's control socket. Alternates two baselines in the same run:
`health` (a read: the socket round trip alone) and `apply` of a change
(tenant add, then tenant del, of a tenant id not otherwise used).

usage: bench/control_latency.py SOCKET [N]      (default N = 2000 changes)
Prints p50, p99 and p99.9 of each, in microseconds, and their ratio.
"""
import json
import socket
import struct
import sys
import time


def call(sock, req):
    body = json.dumps(req).encode()
    sock.sendall(struct.pack(">I", len(body)) + body)
    hdr = b""
    while len(hdr) < 4:
        hdr += sock.recv(4 - len(hdr))
    n = struct.unpack(">I", hdr)[0]
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return json.loads(data)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def measure(s, n):
    """n reads and n changes, alternating, over the connected socket s.
    Returns the two lists of latencies in microseconds."""
    reads, changes = [], []
    base = 3000000000
    for i in range(n):
        t0 = time.perf_counter()
        r = call(s, {"cmd": "health"})
        reads.append((time.perf_counter() - t0) * 1e6)
        assert r["ok"], r
        op = ({"op": "tenant", "tenant": base + i // 2} if i % 2 == 0
              else {"op": "del_tenant", "tenant": base + i // 2})
        t0 = time.perf_counter()
        r = call(s, {"cmd": "apply", "op": op})
        changes.append((time.perf_counter() - t0) * 1e6)
        assert r["ok"], r
    return reads, changes


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    reads, changes = measure(s, n)
    print(f"{n} changes and {n} reads over one connection")
    print(f"{'':8} {'p50 us':>10} {'p99 us':>10} {'p99.9 us':>10}")
    for name, v in (("read", reads), ("change", changes)):
        print(f"{name:8} {pct(v, 50):10.1f} {pct(v, 99):10.1f} {pct(v, 99.9):10.1f}")
    print(f"change/read at p50: {pct(changes, 50) / pct(reads, 50):.1f}x "
          "(the journal fsync and the grace period)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
