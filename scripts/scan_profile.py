#!/usr/bin/env python3
"""scan_profile.py SOURCE_CSV ELEMENTS — the instruction mix of one kernel from Nsight Compute's source page
(`ncu --import R --page source --print-source sass --csv`): per SASS opcode, its share of the executed warp
instructions and of the stall samples, and thread instructions per element (ELEMENTS = B L D for the scan); then
the execution counts that repeat most (a loop body executes its instructions equally often: per-row, per-chunk and
once-per-thread code show up as separate counts)."""
import collections
import csv
import re
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = list(csv.reader(open(sys.argv[1], newline="")))
    head = next((i for i, r in enumerate(rows) if "Source" in r and "Instructions Executed" in r), None)
    if head is None:
        sys.exit(f"{sys.argv[1]}: no 'Source' and 'Instructions Executed' columns: not an ncu source page as CSV")
    col = {name: i for i, name in enumerate(rows[head])}
    elements = float(sys.argv[2])
    stall = "Warp Stall Sampling (All Samples)"
    count = collections.Counter()
    samples = collections.Counter()
    body = collections.Counter()   # execution count -> instructions executed that often
    for r in rows[head + 1:]:
        if len(r) <= col["Instructions Executed"]:
            continue
        n = int(r[col["Instructions Executed"]] or 0)
        s = int(r[col[stall]] or 0) if stall in col else 0
        m = re.match(r"(@!?U?P\w+\s+)?([A-Z0-9_]+)", r[col["Source"]].strip())
        op = m.group(2) if m else "?"
        count[op] += n
        samples[op] += s
        body[n] += 1
    total, total_s = sum(count.values()), max(1, sum(samples.values()))
    print(f"{total:,} warp instructions executed = {total * 32 / elements:.1f} thread instructions per element")
    print(f"{'opcode':10s} {'instr %':>8s} {'stalls %':>9s} {'per element':>12s}")
    for op, n in count.most_common(20):
        print(f"{op:10s} {100 * n / total:8.2f} {100 * samples[op] / total_s:9.2f} {n * 32 / elements:12.1f}")
    print("execution counts with the most instructions (count: instructions executed that often, their share):")
    for n, k in sorted(body.items(), key=lambda kv: -kv[0] * kv[1])[:6]:
        print(f"  {n:>10,}: {k:4d} instructions, {100 * n * k / total:5.1f}%")


main()
