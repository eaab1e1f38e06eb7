#!/usr/bin/env python3
"""Turns the raw results of bench/run-all.sh (one JSON object per line) into
the figures: medians, cycles per packet, ratios against the baselines of the
same run, and each goal of issue 7 with met or missed by how much.

  --json FILE   the aggregated figures and every raw round
  --doc FILE    replaces what lies between <!-- bench:begin --> and
                <!-- bench:end --> in FILE with the tables; the rest of the
                file, the hand-written explanation, is left as it is
  --img DIR     the plots (matplotlib, no display needed)
Prints the tables and the goals to stdout.

usage: report.py --results RESULTS.jsonl [--json FILE] [--doc FILE] [--img DIR]
"""
import argparse
import json
import os
import statistics
import sys

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def median(v):
    return statistics.median(v) if v else None


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise SystemExit(f"report.py: {path} line {n}: {e}")
    return rows


def runner_name(run, cfg):
    """What a runner is, in words."""
    if run in ("macswap", "csum"):
        return f"testpmd {run}"
    w = workers(run)
    return f"framegate, {loaded(run):,} mappings, {w} worker{'s' if w > 1 else ''}"


def aggregate(rows):
    meta = next((r for r in rows if r["kind"] == "meta"), None)
    if meta is None:
        raise SystemExit("report.py: no meta record: not a run-all.sh results file")
    out = {"meta": meta, "configs": {}, "raw": rows}
    verdict = next((r for r in rows if r["kind"] == "verdict"), None)
    tsc = meta.get("tsc_hz") or (verdict["tsc_ghz"] * 1e9 if verdict else None)
    if not tsc:
        raise SystemExit("report.py: no TSC rate (cpu MHz in /proc/cpuinfo, or fg-bench-verdict's)")
    out["tsc_hz"] = tsc
    if verdict:
        out["verdict"] = dict(verdict, ratio=verdict["engine_cycles"] / verdict["bare_cycles"])
    shield = next((r for r in rows if r["kind"] == "shield"), None)
    if shield:
        out["shield"] = dict(shield)
        if "shield_ns" in shield:
            out["shield"]["ratio"] = shield["shield_ns"] / shield["pass_ns"]

    for c in (r for r in rows if r["kind"] == "config"):
        runs = {}
        for run in c["runners"].split():
            v = [r["mpps"] for r in rows if r["kind"] == "throughput"
                 and r["config"] == c["name"] and r["runner"] == run]
            m = median(v)
            runs[run] = {"rounds": v, "mpps": m,
                         "cycles_per_packet": tsc / (m * 1e6) if m else None}
        out["configs"][c["name"]] = dict(c, results=runs)

    ld = next((r for r in rows if r["kind"] == "control_load"), None)
    if ld:
        out["load"] = dict(ld, mappings_per_s=ld["devices"] / ld["seconds"],
                           lines_per_s=ld["lines"] / ld["seconds"])
    lat = next((r for r in rows if r["kind"] == "control_latency"), None)
    if lat:
        out["latency"] = lat
    rs = [r for r in rows if r["kind"] == "restart"]
    if rs:
        agg = {}
        for which in ("full", "empty", "min"):
            sel = [r for r in rs if r["journal"] == which]
            heaps = [r["heap"] for r in sel if r["heap"] is not None]
            agg[which] = {"seconds": median([r["seconds"] for r in sel]),
                          "rss": median([r["rss"] for r in sel]),
                          "heap": median(heaps) if heaps else None,
                          "mappings": sel[0]["mappings"] if sel else None}
        n = agg["full"]["mappings"]
        mem = {"mappings": n,
               "rss_marginal": (agg["full"]["rss"] - agg["empty"]["rss"]) / n,
               "rss_total": (agg["full"]["rss"] - agg["min"]["rss"]) / n}
        if agg["full"]["heap"] is not None and agg["min"]["heap"] is not None:
            mem["heap_marginal"] = (agg["full"]["heap"] - agg["empty"]["heap"]) / n
            mem["heap_total"] = (agg["full"]["heap"] - agg["min"]["heap"]) / n
        out["restart"] = agg
        out["memory"] = mem
    ch = [r for r in rows if r["kind"] == "churn"]
    if ch:
        idle = median([r["idle_mpps"] for r in ch])
        busy = median([r["churn_mpps"] for r in ch])
        out["churn"] = {"rounds": ch, "idle_mpps": idle, "churn_mpps": busy,
                        "ratio": busy / idle,
                        "updates_per_s": median([r["updates_per_s"] for r in ch]),
                        "batch": ch[0]["batch"], "window": ch[0]["window"]}
    out["goals"] = goals(out)
    return out


def res(out, cfg, run):
    c = out["configs"].get(cfg)
    return c["results"].get(run) if c else None


def workers(run):
    spec = run[3:].split(":")
    return int(spec[1]) if len(spec) > 1 else 1


def loaded(run):
    return int(run[3:].split(":")[0])


def fg_runs(cfg):
    return [r for r in cfg["runners"].split() if r.startswith("fg:")]


def goals(out):
    """Each goal of issue 7: (what, measured, goal, higher is better, unit)."""
    g = []

    def ratio(cfg, a, b):
        ra, rb = res(out, cfg, a), res(out, cfg, b)
        return ra["mpps"] / rb["mpps"] if ra and rb and ra["mpps"] and rb["mpps"] else None

    hot = out["configs"].get("hot")
    if hot:
        small, big = sorted(fg_runs(hot)[:2], key=loaded)
        g.append((f"hot traffic ({hot['devices']:,}-device capture), {loaded(big):,} mappings: "
                  "framegate / testpmd macswap",
                  ratio("hot", big, "macswap"), 0.70, True, "x"))
        g.append((f"hot traffic: {loaded(big):,} mappings loaded / {loaded(small):,} loaded",
                  ratio("hot", big, small), 0.95, True, "x"))
    cold = out["configs"].get("cold")
    if cold:
        fg = fg_runs(cold)[0]
        g.append((f"cold traffic ({cold['distinct']:,} devices in the capture), {loaded(fg):,} mappings: "
                  "framegate / testpmd macswap",
                  ratio("cold", fg, "macswap"), 0.60, True, "x"))
        f, c = res(out, "cold", fg), res(out, "cold", "csum")
        if f and c and "verdict" in out and f["mpps"] and c["mpps"]:
            g.append(("(framegate - testpmd csum) cycles/packet, in bare lookups' cycles/key",
                      (f["cycles_per_packet"] - c["cycles_per_packet"]) / out["verdict"]["bare_cycles"],
                      1.3, False, "x"))
    big = out["configs"].get("frame1200")
    if big:
        g.append(("1,200-byte frames: framegate / testpmd macswap",
                  ratio("frame1200", fg_runs(big)[0], "macswap"), 0.90, True, "x"))
    if "load" in out:
        g.append((f"`load` of {out['load']['devices']:,} mappings, end to end", out["load"]["mappings_per_s"],
                  1e6, True, "mappings/s"))
    if "churn" in out:
        g.append((f"in-place updates while forwarding (loads of {out['churn']['batch']:,})",
                  out["churn"]["updates_per_s"], 1e6, True, "updates/s"))
        g.append(("forwarding during the updates / without", out["churn"]["ratio"], 0.97, True, "x"))
    if "restart" in out:
        g.append((f"restart with {out['restart']['full']['mappings']:,} mappings journaled, to serving",
                  out["restart"]["full"]["seconds"],
                  2.0, False, "s"))
    if "memory" in out:
        g.append((f"bytes per mapping at {out['memory']['mappings']:,} (RSS, with the tables' capacity)",
                  out["memory"]["rss_total"],
                  128, False, "B"))
    result = []
    for what, v, goal, higher, unit in g:
        if v is None:
            result.append({"goal": what, "measured": None, "target": goal, "met": None})
            continue
        met = v >= goal if higher else v <= goal
        by = (goal - v) / goal if higher else (v - goal) / goal
        result.append({"goal": what, "measured": v, "target": goal, "unit": unit,
                       "higher_is_better": higher, "met": met, "missed_by": 0 if met else by})
    return result


def num(v, unit=""):
    if v is None:
        return "n/a"
    if unit == "x":
        return f"{v:.2f}x"
    if abs(v) >= 10000:
        return f"{v:,.0f}" + (f" {unit}" if unit else "")
    if abs(v) >= 100:
        return f"{v:.0f}" + (f" {unit}" if unit else "")
    return f"{v:.2f}" + (f" {unit}" if unit else "")


def describe(c):
    ip = {0: "IPv4", 1: "IPv6"}.get(c["ipv6"], f"{c['ipv6']:.0%} IPv6")
    z = "uniform" if c["zipf"] == 0 else f"zipf {c['zipf']}"
    return (f"{c['packets']:,} frames, {c['distinct']:,} distinct devices; {z}, "
            f"{c['payload']} B payload, {ip}, fan-out {c['fanout']}")


def throughput_rows(out):
    """(configuration, capture, runner, Mpps, cyc/pkt, baseline, Mpps, cyc/pkt, ratio)."""
    rows = []
    for name, c in out["configs"].items():
        r = c["results"]
        fgs = fg_runs(c)
        # Against testpmd: the one-worker runs. Between two framegate runs:
        # more workers against one, or the larger table against the smaller.
        pairs = [(run, "macswap") for run in fgs if "macswap" in r and workers(run) == 1]
        if "csum" in r and fgs:
            pairs.append((fgs[0], "csum"))
        if len(fgs) > 1:
            a, b = fgs[:2]
            if (workers(b), loaded(b)) > (workers(a), loaded(a)):
                a, b = b, a
            pairs.append((a, b))
        for a, b in pairs:
            ra, rb = r[a], r[b]
            ratio = ra["mpps"] / rb["mpps"] if ra["mpps"] and rb["mpps"] else None
            rows.append((name, f"{c['tenants']:,} tenants; {describe(c)}", runner_name(a, c),
                         ra["mpps"], ra["cycles_per_packet"], runner_name(b, c), rb["mpps"],
                         rb["cycles_per_packet"], ratio))
    return rows


def markdown(out, plots):
    m = out["meta"]
    L = []
    if m["quick"]:
        L += ["**This is a `--quick` run: small tables and captures, short rounds. Its figures "
              "check the plumbing; they are not the issue's figures.**", ""]
    L += [f"Run of {m['date']} on {m['host']} ({m['cpus']} CPUs, {m['cpu']}), commit {m['commit']}, "
          f"DPDK {m['dpdk']}; {m['rounds']} rounds of {m['seconds']} s per throughput runner, "
          f"medians; TSC {out['tsc_hz'] / 1e9:.3f} GHz (cycles/packet = TSC Hz / packets per second). "
          f"Command: `bench/run-all.sh{' --quick' if m['quick'] else ''}`.", ""]
    L += ["### Forwarding throughput (one worker unless said)", "",
          "| configuration | capture | measured | Mpps | cycles/packet | baseline in the same run | Mpps | cycles/packet | ratio |",
          "|---|---|---|---|---|---|---|---|---|"]
    for name, cap, a, ma, ca, b, mb, cb, ratio in throughput_rows(out):
        L.append(f"| {name} | {cap} | {a} | {num(ma)} | {num(ca)} | {b} | {num(mb)} | {num(cb)} | {num(ratio, 'x')} |")
    L += ["", "### Verdict engine, control plane, memory, restart, shield", "",
          "| what | figure | baseline in the same run | ratio |", "|---|---|---|---|"]
    v = out.get("verdict")
    if v:
        L.append(f"| verdict engine (parse + checks 1-9), {v['mappings']:,} mappings / {v['tenants']:,} tenants, "
                 f"uniform keys | {v['engine_cycles']:.0f} cycles/packet | bare `rte_hash_lookup_bulk_data`: "
                 f"{v['bare_cycles']:.0f} cycles/key | {v['ratio']:.2f}x |")
    ld = out.get("load")
    if ld:
        L.append(f"| `fgctl load` of {ld['lines']:,} lines ({ld['devices']:,} mappings), end to end | "
                 f"{ld['seconds']:.2f} s: {ld['mappings_per_s']:,.0f} mappings/s | | |")
    lat = out.get("latency")
    if lat:
        c, r = lat["change"], lat["read"]
        L.append(f"| acknowledged single change (fsync + grace period), {lat['n']:,} of each | "
                 f"p50 {c['p50']:.0f} µs, p99 {c['p99']:.0f} µs, p99.9 {c['p999']:.0f} µs | "
                 f"a read (`health`): p50 {r['p50']:.0f} µs, p99 {r['p99']:.0f} µs, p99.9 {r['p999']:.0f} µs | "
                 f"{c['p50'] / r['p50']:.1f}x at p50 |")
    ch = out.get("churn")
    if ch:
        L.append(f"| in-place updates in loads of {ch['batch']:,} while forwarding the cold capture | "
                 f"{ch['updates_per_s']:,.0f} updates/s; forwarding {ch['churn_mpps']:.3f} Mpps | "
                 f"no updates: {ch['idle_mpps']:.3f} Mpps | {ch['ratio']:.3f}x |")
    rs = out.get("restart")
    if rs:
        L.append(f"| restart to serving, {rs['full']['mappings']:,} mappings journaled | {rs['full']['seconds']:.2f} s | "
                 f"empty journal: {rs['empty']['seconds']:.2f} s | {rs['full']['seconds'] / rs['empty']['seconds']:.1f}x |")
    mem = out.get("memory")
    if mem:
        heap = (f"; rte_malloc heap {mem['heap_total']:.0f} B ({mem['heap_marginal']:.0f} B marginal)"
                if "heap_total" in mem else "; rte_malloc heap: no telemetry")
        L.append(f"| bytes per mapping at {mem['mappings']:,} | RSS {mem['rss_total']:.0f} B with the tables' "
                 f"capacity ({mem['rss_marginal']:.0f} B marginal){heap} | RSS of the same router empty: "
                 f"{rs['empty']['rss'] / 2**20:.0f} MiB; with the smallest tables: {rs['min']['rss'] / 2**20:.0f} MiB | |")
    sh = out.get("shield")
    if sh and "shield_ns" in sh:
        L.append(f"| XDP shield under `BPF_PROG_TEST_RUN`, forwarded vectors | {sh['shield_ns']:.1f} ns/packet | "
                 f"XDP_PASS program: {sh['pass_ns']:.1f} ns/packet | {sh['ratio']:.2f}x |")
    elif sh:
        L.append(f"| XDP shield | skipped: {sh.get('skipped', '')} | | |")
    L += ["", "### Goals of issue 7", "", "| goal | measured | target | |", "|---|---|---|---|"]
    for g in out["goals"]:
        L.append(f"| {g['goal']} | {goal_value(g)} | {goal_target(g)} | {goal_verdict(g)} |")
    if plots:
        L += [""] + [f"![{alt}](img/{os.path.basename(p)})" for p, alt in plots]
    return "\n".join(L)


def goal_value(g):
    return num(g["measured"], g.get("unit", ""))


def goal_target(g):
    return ("≥ " if g.get("higher_is_better", True) else "≤ ") + num(g["target"], g.get("unit", ""))


def goal_verdict(g):
    if g["met"] is None:
        return "not measured"
    return "met" if g["met"] else f"missed by {g['missed_by']:.0%}"


def plot(out, img):
    import matplotlib
    matplotlib.use("Agg")         # headless: no display on a bench machine
    import matplotlib.pyplot as plt

    os.makedirs(img, exist_ok=True)
    made = []
    tag = " (--quick run)" if out["meta"]["quick"] else ""

    # Throughput of every runner of every configuration, side by side.
    fig, ax = plt.subplots(figsize=(11, 4.5))
    labels, x = [], 0
    colors = {"macswap": "#999999", "csum": "#cccccc"}
    seen = set()
    for name, c in out["configs"].items():
        for run, r in c["results"].items():
            lab = runner_name(run, c) if run in colors else "framegate" + (
                ", 2 workers" if run.endswith(":2") else "")
            col = colors.get(run, "#d62728" if run.endswith(":2") else "#1f77b4")
            if name == "hot" and run.startswith("fg:") and loaded(run) == min(map(loaded, fg_runs(c))):
                lab, col = "framegate, small table loaded", "#2ca02c"
            # Whiskers: the slowest and the fastest round, to show the drift.
            lo, hi = (min(r["rounds"]), max(r["rounds"])) if r["rounds"] else (0, 0)
            m = r["mpps"] or 0
            ax.bar(x, m, color=col, label=None if lab in seen else lab,
                   yerr=[[m - lo], [hi - m]], capsize=3, error_kw={"elinewidth": 0.8})
            seen.add(lab)
            x += 1
        labels.append((x - len(c["results"]) / 2 - 0.5, name))
        x += 1
    ax.set_xticks([p for p, _ in labels], [n for _, n in labels])
    ax.set_ylabel("Mpps received (median; whiskers: min and max round)")
    ax.set_title("framegate against dpdk-testpmd on the same net_pcap capture" + tag)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = os.path.join(img, "bench-throughput.png")
    fig.savefig(p, dpi=100)
    plt.close(fig)
    made.append((p, "Mpps of each runner per configuration"))

    # Cycles per packet against table size, at the base workload.
    sizes = [c for n, c in out["configs"].items() if n.startswith("size-")]
    if sizes:
        sizes.sort(key=lambda c: c["devices"])
        fig, ax = plt.subplots(figsize=(7, 4.5))
        xs = [c["devices"] for c in sizes]
        ax.plot(xs, [c["results"][fg_runs(c)[0]]["cycles_per_packet"] for c in sizes], "o-",
                label="framegate, one worker")
        ax.plot(xs, [c["results"]["macswap"]["cycles_per_packet"] for c in sizes], "s--",
                color="#777777", label="testpmd macswap")
        v = out.get("verdict")
        if v:
            ax.plot([v["mappings"]], [v["engine_cycles"]], "^", color="#ff7f0e",
                    label="verdict engine alone (fg-bench-verdict)")
            ax.plot([v["mappings"]], [v["bare_cycles"]], "v", color="#2ca02c",
                    label="bare rte_hash_lookup_bulk_data")
        ax.set_xscale("log")
        ax.set_xlabel("mappings loaded (= devices in the capture's population)")
        ax.set_ylabel("TSC cycles per packet")
        ax.set_ylim(bottom=0)
        ax.set_title("Cost per packet as the table grows" + tag)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = os.path.join(img, "bench-cycles-vs-table.png")
        fig.savefig(p, dpi=100)
        plt.close(fig)
        made.append((p, "cycles per packet against table size"))

    lat = out.get("latency")
    if lat:
        fig, ax = plt.subplots(figsize=(7, 4))
        ps = ("p50", "p99", "p999")
        for i, (k, col) in enumerate((("read", "#999999"), ("change", "#1f77b4"))):
            ax.bar([j * 3 + i for j in range(3)], [lat[k][q] for q in ps], color=col,
                   label={"read": "read (health)", "change": "change (fsync + grace period)"}[k])
        ax.set_xticks([j * 3 + 0.5 for j in range(3)], ["p50", "p99", "p99.9"])
        ax.set_yscale("log")
        ax.set_ylabel("µs")
        ax.set_title("Control operation latency" + tag)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = os.path.join(img, "bench-control-latency.png")
        fig.savefig(p, dpi=100)
        plt.close(fig)
        made.append((p, "control operation latency"))
    return made


def write_doc(path, block):
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text or text.index(END) < text.index(BEGIN):
        raise SystemExit(f"report.py: {path} has no {BEGIN} ... {END} pair to write between")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path + ".tmp", "w") as f:
        f.write(head + BEGIN + "\n" + block + "\n" + END + tail)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--json")
    ap.add_argument("--doc")
    ap.add_argument("--img")
    o = ap.parse_args()
    out = aggregate(load(o.results))
    plots = plot(out, o.img) if o.img else []
    block = markdown(out, plots)
    if o.json:
        with open(o.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    if o.doc:
        write_doc(o.doc, block)
    print(block)
    print()
    print("Goals:")
    for g in out["goals"]:
        print(f"  {goal_verdict(g):>16}  {g['goal']}: {goal_value(g)} (goal {goal_target(g)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
