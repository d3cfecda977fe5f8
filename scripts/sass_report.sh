#!/usr/bin/env bash
# sass_report.sh SOURCE.cu [ARCH] — static SASS of one of vmc's kernel modules, no GPU needed: NVRTC compiles it as
# vmc does (scripts/nvrtc_cubin.py; ptxas' registers and spills printed), cuobjdump disassembles it, and
# sass_loops.py lists each kernel's loops with their instruction counts and opcode mix. Get the sources with
# `vmc compile FILE --model M [--train --bf16] --dump-kernels DIR`; try a template variant with VMC_TEMPLATE_DIR.
# cuobjdump: find_cuobjdump.sh says where it is looked for. scripts/sass_ab.sh compares a template change's kernels.
set -euo pipefail
src=${1:?usage: sass_report.sh SOURCE.cu [ARCH]}
arch=${2:-90}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/find_cuobjdump.sh"
dump=$(find_cuobjdump) || { echo "sass_report.sh: no cuobjdump (set CUOBJDUMP, or allow pip to fetch it)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$here/nvrtc_cubin.py" "$src" "$tmp/k.cubin" "$arch" | grep -E "Compiling entry|spill|Used" || true
PATH="$(dirname "$dump"):$PATH" "$dump" -sass "$tmp/k.cubin" > "$tmp/k.sass"
python3 "$here/sass_loops.py" "$tmp/k.sass"
