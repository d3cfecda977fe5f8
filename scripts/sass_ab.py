#!/usr/bin/env python3
"""sass_ab.py OLD_DIR NEW_DIR [CUOBJDUMP] — a template change's kernels side by side, no GPU: every template
instance (kN_vmc_NAME.cu, as `vmc compile --dump-kernels` names them) found in both folders of kernel sources is
compiled by NVRTC for sm_90 as vmc compiles it; per kernel function one line: registers, spill bytes (stores + loads)
and, with cuobjdump, SASS instructions, old -> new. Static figures: what a GPU run would then time
(scripts/sass_ab.sh makes the folders)."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nvrtc_cubin import compile_source  # noqa: E402
from sass_loops import kernels  # noqa: E402

TEMPLATE = re.compile(r"^k\d+_vmc_\w+\.cu$")


def ptxas_figures(log):
    """{function: [registers, spill bytes]} from ptxas' verbose log."""
    out, cur = {}, None
    for line in log.splitlines():
        m = re.search(r"(?:Compiling entry function|Function properties for) '?(\w+)'?", line)
        if m:
            cur = m.group(1)
            out.setdefault(cur, [0, 0])
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and cur:
            out[cur][1] = int(m.group(1)) + int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            out[cur][0] = int(m.group(1))
    return out


def figures(path, cuobjdump):
    """{function: (registers, spill bytes, SASS instructions or None)} of one kernel source."""
    log, cubin = compile_source(path)
    if cubin is None:
        sys.exit(f"sass_ab.py: {path} does not compile:\n{log}")
    regs = ptxas_figures(log)
    counts = {}
    if cuobjdump:
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(cubin)
            f.flush()
            env = dict(os.environ, PATH=os.path.dirname(cuobjdump) + os.pathsep + os.environ.get("PATH", ""))
            sass = subprocess.run([cuobjdump, "-sass", f.name], capture_output=True, text=True, env=env, check=True)
        counts = {name: len(body) for name, body in kernels(sass.stdout)}
    return {fn: (r, s, counts.get(fn)) for fn, (r, s) in regs.items()}


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    old_dir, new_dir = sys.argv[1], sys.argv[2]
    cuobjdump = sys.argv[3] if len(sys.argv) == 4 else None
    names = sorted(n for n in os.listdir(new_dir) if TEMPLATE.match(n) and os.path.exists(os.path.join(old_dir, n)))
    if not names:
        sys.exit(f"sass_ab.py: no template kernel source (kN_vmc_*.cu) in both {old_dir} and {new_dir}")
    print(f"{'kernel source':36} {'function':24} {'registers':>11} {'spill bytes':>13} {'SASS instructions':>19}")
    for name in names:
        old = figures(os.path.join(old_dir, name), cuobjdump)
        new = figures(os.path.join(new_dir, name), cuobjdump)
        for fn in sorted(new):
            o = old.get(fn, (None, None, None))
            cols = []
            for i in range(3):
                a, b = o[i], new[fn][i]
                cols.append("-" if b is None else f"{a if a is not None else '?'} -> {b}")
            changed = "" if o == new[fn] else "  *"
            print(f"{name:36} {fn:24} {cols[0]:>11} {cols[1]:>13} {cols[2]:>19}{changed}")


if __name__ == "__main__":
    main()
