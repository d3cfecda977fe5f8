#!/usr/bin/env bash
# run.sh LIB_DIR COMMAND... — runs COMMAND (a `vmc bench ... --steps 5`) with cupti_trace.c injected from LIB_DIR
# (scripts/trace/build.sh) and prints timeline.py's report of its last captured step (--bins: per millisecond too,
# when TRACE_BINS=1; --kernels N, the step's time split among its kernels and classes, when TRACE_KERNELS=N).
# The csv stays in $VMC_TRACE (default /tmp/vmc-trace.csv).
set -uo pipefail
lib=$(cd "${1:?usage: run.sh LIB_DIR COMMAND...}" && pwd); shift
export VMC_TRACE=${VMC_TRACE:-/tmp/vmc-trace.csv}
CUDA_INJECTION64_PATH="$lib/libvmctrace.so" LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
python3 "$(dirname "$0")/timeline.py" "$VMC_TRACE" $([ "${TRACE_BINS:-0}" = 1 ] && echo --bins) \
    ${TRACE_KERNELS:+--kernels "$TRACE_KERNELS"}
