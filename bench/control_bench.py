#!/usr/bin/env python3
"""Control plane, memory and restart figures of issue 7, each beside its
baseline in the same run. Starts its own routers (build/framegate) and
appends one JSON object per measurement to --results; bench/run-all.sh
calls it, bench/report.py reads what it wrote.

  load      a mapping file of --devices mappings through `fgctl load`, into
            an empty router, end to end (decode, check, journal fsync, apply,
            grace period, ack)
  latency   single acknowledged changes beside plain reads on the loaded
            router (control_latency.py)
  restart   time from the process's start to "framegate: forwarding" with
            the loaded journal, beside the same start with an empty journal
  memory    RSS and rte_malloc heap (DPDK telemetry /eal/heap_info) of the
            router holding the mappings, of the same configuration empty,
            and of the smallest tables: per mapping, the marginal bytes and
            the bytes including the tables' preallocated capacity
  churn     while one worker forwards the cold capture, windows of
            back-to-back `load` transactions of --batch in-place updates
            (same tenant and epoch, the other sink of the tenant) alternate
            with idle windows of the same length: updates per second, and
            the forwarding rate of each window from the router's counters

Lcores as in run-all.sh: main lcore on CPU 0 (it serves the socket), the
worker on CPU 1. This client and fgctl run pinned to CPU 0 too, so that they
take nothing from the forwarding core.

usage: control_bench.py --work DIR --map FILE --cold-capture PCAP
         --tenants T --sinks S --devices D --packets P --results FILE
         [--rounds R] [--latency-n N] [--batch B] [--window SECONDS]
"""
import argparse
import atexit
import glob
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import control_latency  # noqa: E402

FRAMEGATE = os.path.join(TOP, "build", "framegate")
FGCTL = os.path.join(TOP, "build", "control", "fgctl")
CHUNK = 900 * 1024        # below FG_CTL_LOAD_CHUNK (1 MiB) of text per chunk


def log(msg):
    print(f"   {msg}", flush=True)


class Router:
    """One framegate process in router mode, started and stopped by us."""
    serial = 0
    live = set()             # stopped at exit, whatever ends the bench

    def __init__(self, work, conf, capture, infinite, mem_mb, mappings=None):
        Router.serial += 1
        self.prefix = f"fgbctl{os.getpid()}_{Router.serial}"
        self.out = os.path.join(work, f"router-{Router.serial}.out")
        self.err = os.path.join(work, f"router-{Router.serial}.err")
        vdev = f"net_pcap0,rx_pcap={capture}" + (",infinite_rx=1" if infinite else "")
        # Telemetry stays on (no --no-telemetry): it is how the heap is read.
        self.argv = [FRAMEGATE, "--no-huge", "-m", str(mem_mb), "--no-pci",
                     "--lcores", "0@0,1@1", f"--file-prefix={self.prefix}",
                     "--log-level=*:error", "--vdev", vdev, "--", "--config", conf]
        if mappings:
            self.argv += ["--mappings", mappings]
        self.proc = None

    def start(self, timeout=900):
        """Starts the router; returns seconds from exec to serving."""
        with open(self.out, "w") as out, open(self.err, "w") as err:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        Router.live.add(self)
        while True:
            with open(self.err) as f:
                text = f.read()
            if "framegate: forwarding" in text:
                t1 = time.perf_counter()
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"control_bench: the router exited ({self.proc.returncode}) "
                                 f"before serving: {text.strip()[-500:]}")
            if time.perf_counter() - t0 > timeout:
                self.stop()
                raise SystemExit(f"control_bench: the router was not serving after {timeout} s; see {self.err}")
            time.sleep(0.005)
        self.loaded = int(text.split("framegate: forwarding", 1)[1].split(" mappings loaded")[0].split()[-1])
        return t1 - t0

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return None

    def heap(self):
        """Bytes allocated from the rte_malloc heaps, or None without
        telemetry."""
        paths = []
        for root in ("/var/run/dpdk", os.environ.get("XDG_RUNTIME_DIR", "") + "/dpdk", "/tmp/dpdk"):
            paths += glob.glob(f"{root}/{self.prefix}/dpdk_telemetry.v2")
        if not paths:
            return None
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(paths[0])
            s.recv(16384)                         # the greeting
            s.send(b"/eal/heap_list")
            heaps = json.loads(s.recv(16384))["/eal/heap_list"]
            total = 0
            for h in heaps:
                s.send(f"/eal/heap_info,{h}".encode())
                total += json.loads(s.recv(16384))["/eal/heap_info"]["Alloc_size"]
            return total
        except (OSError, ValueError, KeyError):
            return None
        finally:
            s.close()

    def stop(self):
        """SIGINT, then the router's exit; its counters must add up."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        Router.live.discard(self)
        for root in ("/var/run/dpdk", os.environ.get("XDG_RUNTIME_DIR", "") + "/dpdk", "/tmp/dpdk"):
            shutil.rmtree(f"{root}/{self.prefix}", ignore_errors=True)
        with open(self.out) as f:
            out = f.read()
        if rc != 0 or "conservation: rx = forwarded + drops: holds" not in out:
            raise SystemExit(f"control_bench: the router stopped with {rc}, counters: "
                             f"{out.strip()[-300:]!r}; see {self.err}")


@atexit.register
def stop_all():
    for r in list(Router.live):
        if r.proc is not None:
            r.proc.kill()
            r.proc.wait()
        Router.live.discard(r)
        for root in ("/var/run/dpdk", os.environ.get("XDG_RUNTIME_DIR", "") + "/dpdk", "/tmp/dpdk"):
            shutil.rmtree(f"{root}/{r.prefix}", ignore_errors=True)


def send(sock, req):
    body = json.dumps(req).encode() if not isinstance(req, bytes) else req
    sock.sendall(struct.pack(">I", len(body)) + body)


def recv(sock):
    hdr = b""
    while len(hdr) < 4:
        b = sock.recv(4 - len(hdr))
        if not b:
            raise SystemExit("control_bench: the router closed the connection")
        hdr += b
    n = struct.unpack(">I", hdr)[0]
    data = bytearray()
    while len(data) < n:
        b = sock.recv(n - len(data))
        if not b:
            raise SystemExit("control_bench: the router closed the connection")
        data += b
    return json.loads(data)


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


def write_conf(path, tenants, sinks, devices, journal, sock, mbufs):
    with open(path, "w") as f:
        json.dump({"tables": {"max_tenants": tenants, "max_sinks": sinks, "max_devices": devices},
                   "journal_dir": journal, "control_socket": sock, "mbufs": mbufs,
                   "ports": [{"port": 0, "role": "both", "next_hop_mac": "02:00:00:00:00:01",
                              "ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}]}, f)


def one_packet_capture(src, dst):
    """A capture of the first packet of src: a port that goes quiet at once,
    so the load, latency, restart and memory figures are not forwarding's."""
    with open(src, "rb") as f:
        head = f.read(24 + 16)
        n = struct.unpack_from("<I", head, 24 + 8)[0]
        head += f.read(n)
    with open(dst, "wb") as f:
        f.write(head)


def updates(map_path, sinks_per_tenant, batch):
    """Load requests of `batch` in-place device updates each, pre-encoded so
    that the client's JSON work is not in the measured windows: the first
    pass over the devices moves each to the next sink of its tenant, the
    second moves it back, so each request changes what it names. Returns a
    list of (bytes, number of requests) per load: begin, chunks, commit,
    framed, sent at once (the server answers pipelined requests in order)."""
    orig, alt = [], []
    with open(map_path) as f:
        for line in f:
            if '"op":"device"' not in line:
                continue
            d = json.loads(line)
            t = d["tenant"]
            d["sinks"] = [t * 1000 + (s - t * 1000 + 1) % sinks_per_tenant for s in d["sinks"]]
            orig.append(line.rstrip("\n"))
            alt.append(json.dumps(d, separators=(",", ":")))
    loads = []
    for lines in (alt, orig):
        for i in range(0, len(lines) - batch + 1, batch):
            reqs = [json.dumps({"cmd": "load.begin"}).encode()]
            part, size = [], 0
            for ln in lines[i:i + batch]:
                if size + len(ln) + 1 > CHUNK:
                    reqs.append(json.dumps({"cmd": "load.chunk", "text": "\n".join(part) + "\n"}).encode())
                    part, size = [], 0
                part.append(ln)
                size += len(ln) + 1
            reqs.append(json.dumps({"cmd": "load.chunk", "text": "\n".join(part) + "\n"}).encode())
            reqs.append(json.dumps({"cmd": "load.commit"}).encode())
            loads.append((b"".join(struct.pack(">I", len(r)) + r for r in reqs), len(reqs)))
    if not loads:
        raise SystemExit(f"control_bench: fewer than {batch} devices in {map_path}")
    return loads


def rx_packets(sock):
    send(sock, {"cmd": "stats"})
    r = recv(sock)
    if not r.get("ok"):
        raise SystemExit(f"control_bench: stats refused: {r}")
    return r["rx_packets"], time.perf_counter()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for a in ("--work", "--map", "--cold-capture", "--results"):
        ap.add_argument(a, required=True)
    for a in ("--tenants", "--sinks", "--devices", "--packets"):
        ap.add_argument(a, type=int, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--latency-n", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--window", type=float, default=5)
    ap.add_argument("--sinks-per-tenant", type=int, default=2)
    o = ap.parse_args()

    os.sched_setaffinity(0, {0})
    work = os.path.abspath(o.work)
    os.makedirs(work, exist_ok=True)
    results = open(o.results, "a")

    def record(**kw):
        results.write(json.dumps(kw) + "\n")
        results.flush()

    sock = os.path.join(work, "control.sock")
    full_j, empty_j, min_j = (os.path.join(work, j) for j in ("journal-full", "journal-empty", "journal-min"))
    conf = os.path.join(work, "conf.json")
    conf_min = os.path.join(work, "conf-min.json")
    quiet = os.path.join(work, "one.pcap")
    one_packet_capture(o.cold_capture, quiet)
    mbufs = 16383
    write_conf(conf, o.tenants + 16, o.sinks, o.devices, full_j, sock, mbufs)
    mem = 3072             # mbufs: 16,383 x 3 pools; the tables at 1M: about 0.5 GB
    for j in (full_j, empty_j, min_j):
        shutil.rmtree(j, ignore_errors=True)
    with open(o.map) as f:
        n_lines = sum(1 for _ in f)

    # The tables hold the file's tenants and the latency bench's one more.
    # -- load and latency ---------------------------------------------------
    r = Router(work, conf, quiet, False, mem)
    r.start()
    log(f"load: fgctl load of {n_lines} lines ({o.devices} mappings) into an empty router")
    t0 = time.perf_counter()
    p = subprocess.run([FGCTL, "--socket", sock, "--json", "load", o.map],
                       capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        r.stop()
        raise SystemExit(f"control_bench: fgctl load failed ({p.returncode}): {p.stdout} {p.stderr}")
    log(f"load: {secs:.2f} s, {o.devices / secs:,.0f} mappings/s ({n_lines / secs:,.0f} lines/s)")
    record(kind="control_load", lines=n_lines, devices=o.devices, seconds=secs)

    log(f"latency: {o.latency_n} changes and {o.latency_n} reads, alternating")
    s = connect(sock)
    reads, changes = control_latency.measure(s, o.latency_n)
    s.close()
    pct = control_latency.pct
    lat = {name: {"p50": pct(v, 50), "p99": pct(v, 99), "p999": pct(v, 99.9)}
           for name, v in (("read", reads), ("change", changes))}
    log("latency: change p50 {p50:.0f} us, p99 {p99:.0f} us, p99.9 {p999:.0f} us".format(**lat["change"]) +
        "; read p50 {p50:.0f} us, p99 {p99:.0f} us".format(**lat["read"]))
    record(kind="control_latency", n=o.latency_n, **lat)
    r.stop()

    # -- restart and memory -------------------------------------------------
    # A: the loaded journal; B: the same configuration, empty journal;
    # C: the smallest tables, empty (memory only). Alternating, per round.
    write_conf(conf_min, 64, 64, 64, min_j, sock, mbufs)
    conf_empty = os.path.join(work, "conf-empty.json")
    write_conf(conf_empty, o.tenants + 16, o.sinks, o.devices, empty_j, sock, mbufs)
    for rnd in range(1, o.rounds + 1):
        line = f"restart round {rnd}/{o.rounds}:"
        for which, c, j, want in (("full", conf, None, o.devices), ("empty", conf_empty, empty_j, 0),
                                  ("min", conf_min, min_j, 0)):
            if j:
                shutil.rmtree(j, ignore_errors=True)
            r = Router(work, c, quiet, False, mem)
            secs = r.start()
            if r.loaded != want:
                r.stop()
                raise SystemExit(f"control_bench: the {which} router holds {r.loaded} mappings, not {want}")
            time.sleep(0.5)
            rss, heap = r.rss(), r.heap()
            r.stop()
            record(kind="restart", round=rnd, journal=which, seconds=secs, rss=rss, heap=heap,
                   mappings=want)
            line += f"  {which} {secs:.2f} s rss {rss / 2**20:.0f} MiB" + \
                (f" heap {heap / 2**20:.0f} MiB" if heap is not None else "")
        log(line)

    # -- churn while forwarding ---------------------------------------------
    log(f"churn: encoding loads of {o.batch} in-place updates")
    loads = updates(o.map, o.sinks_per_tenant, o.batch)
    write_conf(conf, o.tenants + 16, o.sinks, o.devices, full_j, sock, o.packets + 100000)
    r = Router(work, conf, o.cold_capture, True, o.packets * 3200 // 2**20 + 4096)
    r.start()
    st, ch = connect(sock), connect(sock)
    time.sleep(1)                 # the first second's rate is ramp-up
    k = 0
    for rnd in range(1, o.rounds + 1):
        n0, t0 = rx_packets(st)
        time.sleep(o.window)
        n1, t1 = rx_packets(st)
        idle = (n1 - n0) / (t1 - t0) / 1e6
        n0, t0 = rx_packets(st)
        done = 0
        while time.perf_counter() - t0 < o.window:
            data, nreq = loads[k % len(loads)]
            k += 1
            ch.sendall(data)
            for i in range(nreq):
                rep = recv(ch)
                if not rep.get("ok"):
                    r.stop()
                    raise SystemExit(f"control_bench: a churn load was refused: {rep}")
            if rep.get("applied") != o.batch:
                raise SystemExit(f"control_bench: a churn load applied {rep.get('applied')}, not {o.batch}")
            done += o.batch
        n1, t1 = rx_packets(st)
        busy = (n1 - n0) / (t1 - t0) / 1e6
        ups = done / (t1 - t0)
        log(f"churn round {rnd}/{o.rounds}: idle {idle:.3f} Mpps; churn {busy:.3f} Mpps "
            f"({busy / idle:.3f}x) with {ups:,.0f} updates/s")
        record(kind="churn", round=rnd, idle_mpps=idle, churn_mpps=busy, updates_per_s=ups,
               batch=o.batch, window=o.window)
    st.close()
    ch.close()
    r.stop()
    results.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
