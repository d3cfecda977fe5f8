#!/usr/bin/env python3
"""sass_loops.py [SASS_FILE] — the loops of each kernel in a `cuobjdump -sass` listing (a file, or standard input),
with no GPU: a backward branch closes a loop whose body runs from the branch target to the branch. Per kernel it
prints its instruction count, then per loop its address range, its instructions (nested loops included) and the
opcodes that take most of them. Static counts: what an issue-bound kernel's loop costs per trip, before any run
(scripts/sass_report.sh makes the listing from vmc's generated sources)."""
import collections
import re
import sys

LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)([^;]*);")
FUNC = re.compile(r"^\s*Function\s*:\s*(\S+)")


def kernels(text):
    """(name, [(address, opcode, operands)]) per function, in listing order."""
    out, name, body = [], None, []
    for line in text.splitlines():
        f = FUNC.match(line)
        if f:
            if name is not None:
                out.append((name, body))
            name, body = f.group(1), []
            continue
        m = LINE.match(line)
        if m and name is not None:
            body.append((int(m.group(1), 16), m.group(2).split(".")[0], m.group(3)))
    if name is not None:
        out.append((name, body))
    return out


def loops(body):
    """(start, end) address pairs, one per backward branch (self-branches that end a kernel excluded)."""
    found = set()
    for addr, op, args in body:
        t = re.search(r"0x([0-9a-f]+)", args) if op == "BRA" else None
        if t and int(t.group(1), 16) < addr:
            found.add((int(t.group(1), 16), addr))
    return sorted(found)


def report(text, out=sys.stdout):
    ks = kernels(text)
    if not ks:
        sys.exit("sass_loops.py: no 'Function :' in the listing (not cuobjdump -sass output?)")
    for name, body in ks:
        print(f"{name}: {len(body)} instructions", file=out)
        for start, end in loops(body):
            ops = collections.Counter(op for addr, op, _ in body if start <= addr <= end)
            n = sum(ops.values())
            top = " ".join(f"{op} {k}" for op, k in ops.most_common(8))
            print(f"  loop {start:#06x}-{end:#06x}: {n:5d} instructions: {top}", file=out)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit(__doc__)
    report(open(sys.argv[1]).read() if len(sys.argv) == 2 else sys.stdin.read())
