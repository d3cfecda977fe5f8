#!/usr/bin/env bash
# test_timeline.sh — scripts/trace/timeline.py on a synthetic trace shaped like `vmc bench`'s: three CUDA graph
# replays back to back over two streams, then (after a host gap) the eager per-class run on one stream. The report
# must describe the replays as the step (not the eager run) and the eager run apart.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
python3 - "$t/trace.csv" <<'PY'
import sys
rows, us = [], 1000
t = 1_000_000 * us
for step in range(3):              # replays: 60 pairs a step, A on stream 5 (10 us), B beside it on stream 6 (8 us)
    for i in range(60):
        rows.append((t, t + 10 * us, 5, f"kA{i}"))
        rows.append((t + 2 * us, t + 10 * us, 6, f"kB{i}"))
        t += 11 * us               # 1 us idle after each pair
t += 5000 * us                     # host gap
for i in range(120):               # eager: the same 120 launches one after another, 5 us each, 3 us apart
    rows.append((t, t + 5 * us, 9, f"k{i}"))
    t += 8 * us
with open(sys.argv[1], "w") as f:
    for r in rows: f.write("%d,%d,%d,%s\n" % r)
PY
out=$(python3 "$root/scripts/trace/timeline.py" "$t/trace.csv")
echo "$out"
fail() { echo "test_timeline: $1" >&2; exit 1; }
grep -q "^graph replays: 120 kernels and memsets a step, 0.660 ms a step (3 steps traced), busy 91.0%, idle 9.0%, 1.80 kernels" <<< "$out" || fail "replays line"
grep -q "^eager run (one stream, launch after launch): 120 kernels and memsets a step, 0.957 ms a step (1 step traced), busy 62.7%" <<< "$out" || fail "eager line"
echo "test_timeline: ok"
