# find_cuobjdump.sh — sourced by the SASS scripts: find_cuobjdump prints a cuobjdump to run (it runs nvdisasm):
# $CUOBJDUMP, else one on the PATH, else CUDA's bin, else PyPI's nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm
# wheels unpacked into ~/.cache/vmc-tools (pip download; the machine needs PyPI). Fails when there is none.
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
