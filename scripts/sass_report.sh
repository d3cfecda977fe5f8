#!/usr/bin/env bash
# sass_report.sh SOURCE.cu [ARCH] — static SASS of one of vmc's kernel modules, no GPU needed: NVRTC compiles it as
# vmc does (scripts/nvrtc_cubin.py; ptxas' registers and spills printed), cuobjdump disassembles it, and
# sass_loops.py lists each kernel's loops with their instruction counts and opcode mix. Get the sources with
# `vmc compile FILE --model M [--train --bf16] --dump-kernels DIR`; try a template variant with VMC_TEMPLATE_DIR.
# cuobjdump (it runs nvdisasm): $CUOBJDUMP, else on the PATH, else CUDA's bin, else PyPI's nvidia-cuda-cuobjdump and
# nvidia-cuda-nvdisasm wheels unpacked into ~/.cache/vmc-tools (pip download; the machine needs PyPI).
set -euo pipefail
src=${1:?usage: sass_report.sh SOURCE.cu [ARCH]}
arch=${2:-90}
here=$(cd "$(dirname "$0")" && pwd)
find_cuobjdump() {
    [ -n "${CUOBJDUMP:-}" ] && { echo "$CUOBJDUMP"; return; }
    command -v cuobjdump 2>/dev/null && return
    [ -x /usr/local/cuda/bin/cuobjdump ] && { echo /usr/local/cuda/bin/cuobjdump; return; }
    local tools=${XDG_CACHE_HOME:-$HOME/.cache}/vmc-tools
    local found
    found=$(find "$tools" -name cuobjdump -type f 2>/dev/null | head -1)
    if [ -z "$found" ]; then
        mkdir -p "$tools"
        pip download -q --no-deps -d "$tools" nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm >&2 || return 1
        for w in "$tools"/*.whl; do python3 -m zipfile -e "$w" "$tools/unpacked" >&2; done
        found=$(find "$tools" -name cuobjdump -type f | head -1)
        find "$tools/unpacked" -path "*/bin/*" -type f -exec chmod +x {} +
    fi
    [ -n "$found" ] && echo "$found"
}
dump=$(find_cuobjdump) || { echo "sass_report.sh: no cuobjdump (set CUOBJDUMP, or allow pip to fetch it)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$here/nvrtc_cubin.py" "$src" "$tmp/k.cubin" "$arch" | grep -E "Compiling entry|spill|Used" || true
PATH="$(dirname "$dump"):$PATH" "$dump" -sass "$tmp/k.cubin" > "$tmp/k.sass"
python3 "$here/sass_loops.py" "$tmp/k.sass"
