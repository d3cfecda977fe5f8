#!/usr/bin/env bash
# template_ab.sh BUILD_DIR VARIANT_DIR... — times template variants on a GPU: for each folder (holding edited
# copies of codegen/templates/*.cuh; "-" for the built-in ones) runs `test_scan_gpu --bench` with
# VMC_TEMPLATE_DIR set to it, in one process per variant, and prints the ARM-B-shape scan and conv1d rows side by side.
set -uo pipefail
B=$1; shift
[ -d "$B/lib" ] && export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
printf '%-28s %-34s %-34s %s\n' "variant" "scan fwd bf16->bf16 B128 L197" "scan bwd bf16 B128 L197" "conv1d fwd / bwd"
for v in "$@"; do
    if [ "$v" = - ]; then out=$("$B/tests/test_scan_gpu" --bench 2>&1); else out=$(VMC_TEMPLATE_DIR="$v" "$B/tests/test_scan_gpu" --bench 2>&1); fi
    if ! grep -q "test_scan_gpu: ok" <<< "$out"; then printf '%-28s FAILED: %s\n' "$v" "$(grep -m1 -i 'fail\|error' <<< "$out")"; continue; fi
    s=$(grep 'scan B128 L197 D768 bf16->bf16' <<< "$out" | awk -F'|' '{print $3 "|" $5}')
    c=$(grep 'conv1d B128 L197' <<< "$out" | awk -F'|' '{print $3 "/" $5}')
    printf '%-28s %-34s %-34s %s\n' "$(basename "$v")" "$(cut -d'|' -f1 <<< "$s")" "$(cut -d'|' -f2 <<< "$s")" "$c"
done
