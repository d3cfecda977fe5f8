#!/usr/bin/env python3
"""timeline.py TRACE.csv [--bins] [--kernels N] — a `vmc bench` trace (cupti_trace.c's csv). Bench runs the step first as CUDA
graph replays (back to back: one stretch of launches over the graph's many internal streams), then eagerly on one
stream for its time per kernel class. Reported for the replays: time per step, the fraction of it some kernel runs
(the union of kernel and memset intervals), how many run at once on average, the idle gaps; with --bins, each
millisecond of the last replay with its busy fraction and three longest-running kernels; with --kernels N, the last
replay's time split among the kernels running at each instant (a kernel sharing the GPU with two others gets a third
of that stretch), summed per class (GEMM, scan, conv1d, attention, generated kernels, memsets) and for the N largest kernels: where
the step's time goes, overlap included. For the eager run (each
launch after the last, events between): the same, which shows launch latency, not the graph's schedule. Stretches
are told apart by host gaps of more than 200 us. Traced steps run a little longer than untraced ones: compare traces
with traces."""
import collections
import re
import sys


def load(path):
    rows = []
    for line in open(path):
        a = line.rstrip("\n").split(",", 3)
        if len(a) == 4:
            rows.append((int(a[0]), int(a[1]), int(a[2]), a[3]))
    rows.sort()
    return rows


def steps(rows, gap_ns=200_000):
    segs, cur, end = [], [], 0
    for r in rows:
        if cur and r[0] - end > gap_ns:
            segs.append(cur)
            cur = []
        cur.append(r)
        end = max(end, r[1]) if len(cur) > 1 else r[1]
    if cur:
        segs.append(cur)
    return segs


def report(label, seg, bins, replays=1):
    t0, t1 = seg[0][0], max(r[1] for r in seg)
    busy, end, prev, work = 0, t0, None, 0
    gaps = collections.defaultdict(int)
    hist = collections.Counter()
    for s, e, _, n in seg:
        if s > end:
            gaps[(prev, n)] += s - end
            hist[min((s - end) // 1000, 20)] += 1
        busy += max(0, e - max(s, end))
        work += e - s
        if e > end:
            end, prev = e, n
    span = t1 - t0
    print(f"{label}: {len(seg) // replays} kernels and memsets a step, {span / replays / 1e6:.3f} ms a step "
          f"({replays} step{'s' if replays > 1 else ''} traced), busy {100 * busy / span:.1f}%, idle "
          f"{100 * (span - busy) / span:.1f}%, {work / max(busy, 1):.2f} kernels running on average while busy")
    print("  idle gaps by length in us (20: 20 or more):", sorted(hist.items()))
    for (a, b), g in sorted(gaps.items(), key=lambda x: -x[1])[:10]:
        print(f"  {g / replays / 1e3:8.1f} us a step idle after {a} before {b}")
    if not bins:
        return
    t0 = t1 - span // replays   # the last step
    nb = (t1 - t0) // 1_000_000 + 1
    top = [collections.Counter() for _ in range(nb)]
    ub = [0] * nb
    end = t0
    for s, e, _, n in seg:
        if e <= t0:
            continue
        s = max(s, t0)
        for b in range((s - t0) // 1_000_000, (e - t0) // 1_000_000 + 1):
            lo, hi = max(s, t0 + b * 1_000_000), min(e, t0 + (b + 1) * 1_000_000)
            if hi > lo:
                top[b][n[:32]] += hi - lo
            lo = max(lo, end)
            if hi > lo:
                ub[b] += hi - lo
        end = max(end, e)
    for b in range(nb):
        print(f"{b:4d} ms busy {ub[b] / 1e4:5.1f}%  " + ", ".join(f"{k} {v / 1e3:.0f} us" for k, v in top[b].most_common(3)))


def kernel_class(name):
    if name == "memset" or name.startswith("vmc_zero"):
        return "memsets"
    for key, cls in (("vmc_scan_bwd", "scan backward"), ("vmc_scan_fwd", "scan forward"), ("conv1d", "conv1d"),
                     ("skinny_gemm", "GEMM (vmc)"), ("vmc_gemm", "GEMM (vmc)"),
                     ("vmc_attn", "attention")):
        if key in name:
            return cls
    if re.match(r"k[0-9]+_", name):
        return "generated"
    return "GEMM (cuBLASLt)" if re.search(r"gemm|xmma|nvjet|cutlass|sm[0-9]+_", name) else "other"


def split_time(seg, replays, top):
    t1 = max(r[1] for r in seg)
    t0 = t1 - (t1 - seg[0][0]) // replays   # the last step
    edges = []
    for s, e, _, n in seg:
        if e > t0:
            edges += [(max(s, t0), 1, n), (e, -1, n)]
    edges.sort(key=lambda x: (x[0], x[1]))
    active, share, prev, idle = collections.Counter(), collections.Counter(), t0, 0
    for t, kind, n in edges:
        m = sum(active.values())
        if t > prev:
            if m == 0:
                idle += t - prev
            for k, c in active.items():
                share[k] += (t - prev) * c / m
        prev = max(prev, t)
        active[n] += kind
        if active[n] == 0:
            del active[n]
    cls = collections.Counter()
    for k, v in share.items():
        cls[kernel_class(k)] += v
    span = t1 - t0
    print(f"last replay {span / 1e6:.3f} ms, split among the kernels running at each instant:")
    for k, v in cls.most_common():
        print(f"  {k:24s} {v / 1e6:7.3f} ms {100 * v / span:5.1f}%")
    print(f"  {'idle':24s} {idle / 1e6:7.3f} ms {100 * idle / span:5.1f}%")
    for k, v in share.most_common(top):
        print(f"    {v / 1e6:7.3f} ms  {k[:90]}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    segs = [s for s in steps(load(sys.argv[1])) if len(s) > 100]
    if not segs:
        sys.exit(f"{sys.argv[1]}: no step found")
    nstreams = [len({r[2] for r in s}) for s in segs]
    eager = [s for s, n in zip(segs, nstreams) if n == 1]
    graph = max(zip(segs, nstreams), key=lambda x: (x[1], len(x[0])))[0] if max(nstreams) > 1 else None
    if graph is None and eager:   # a one-stream graph (inference): the replays are the longest stretch
        graph = max(eager, key=len)
        eager = [s for s in eager if s is not graph]
    per_step = len(eager[-1]) if eager else len(graph)
    replays = max(1, round(len(graph) / per_step))
    report("graph replays", graph, "--bins" in sys.argv, replays)
    if "--kernels" in sys.argv:
        split_time(graph, replays, int(sys.argv[sys.argv.index("--kernels") + 1]))
    if eager:
        report("eager run (one stream, launch after launch)", eager[-1], False)
