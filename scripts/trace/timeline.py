#!/usr/bin/env python3
"""timeline.py TRACE.csv [--bins] — the last captured step of a `vmc bench` trace (cupti_trace.c's csv): its span,
the time some kernel runs (the union of kernel and memset intervals), the idle gaps between them and, with --bins,
each millisecond's busy fraction and its three longest-running kernels. Steps are told apart by host gaps of more
than 200 us (the bench synchronises between replays). Timings under tracing run longer than untraced ones (about
6 ms on a 33 ms step): compare traces with traces."""
import collections
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


def report(seg, bins):
    t0, t1 = seg[0][0], max(r[1] for r in seg)
    busy, end, prev = 0, t0, None
    gaps = collections.defaultdict(int)
    hist = collections.Counter()
    for s, e, _, n in seg:
        if s > end:
            gaps[(prev, n)] += s - end
            hist[min((s - end) // 1000, 20)] += 1
        busy += max(0, e - max(s, end))
        if e > end:
            end, prev = e, n
    span = t1 - t0
    print(f"step: {len(seg)} kernels and memsets, span {span / 1e6:.3f} ms, busy {busy / 1e6:.3f} ms, "
          f"idle {100 * (span - busy) / span:.1f}%")
    print("idle gaps by length in us (20: 20 or more):", sorted(hist.items()))
    for (a, b), g in sorted(gaps.items(), key=lambda x: -x[1])[:15]:
        print(f"  {g / 1e3:8.1f} us idle after {a} before {b}")
    if not bins:
        return
    nb = span // 1_000_000 + 1
    top = [collections.Counter() for _ in range(nb)]
    ub = [0] * nb
    end = t0
    for s, e, _, n in seg:
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


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    segs = [s for s in steps(load(sys.argv[1])) if len(s) > 100]
    if not segs:
        sys.exit(f"{sys.argv[1]}: no step found")
    report(segs[-1], "--bins" in sys.argv)
