#!/usr/bin/env bash
# build.sh OUT_DIR — builds cupti_trace.c into OUT_DIR/libvmctrace.so against the CUDA toolkit's CUPTI (CUDA_HOME,
# default /usr/local/cuda) and copies libcupti beside it, so OUT_DIR can travel to a GPU machine (scripts/trace/run.sh).
set -euo pipefail
out=${1:?usage: build.sh OUT_DIR}
cuda=${CUDA_HOME:-/usr/local/cuda}
inc=$(dirname "$(find "$cuda/" "$cuda/extras/CUPTI/" -name cupti.h 2>/dev/null | head -1)")
lib=$(dirname "$(find "$cuda/" -name 'libcupti.so*' 2>/dev/null | head -1)")
[ -n "$inc" ] && [ -n "$lib" ] || { echo "build.sh: no CUPTI (cupti.h, libcupti.so) under $cuda" >&2; exit 1; }
mkdir -p "$out"
gcc -O2 -Wall -shared -fPIC -o "$out/libvmctrace.so" "$(dirname "$0")/cupti_trace.c" -I"$inc" -L"$lib" -lcupti \
    -Wl,-rpath,'$ORIGIN'
cp -L "$lib"/libcupti.so.[0-9]* "$out/" 2>/dev/null || true
echo "built $out/libvmctrace.so"
