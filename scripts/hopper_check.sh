#!/usr/bin/env bash
# hopper_check.sh [BUILD_DIR] — on an H100/H200 (builds nothing): vmc's own Hopper GEMM against double products and
# cuBLASLt (test_scan_gpu --bench-gemm, the default 128 x 256 tiles and VMC_HOPPER_GEMM=1,128), every own GEMM
# forced in whole tiny steps against the cpu backend (VMC_OWN_GEMM=2 test_cuda_exec --quick), then ARM-B
# pretraining's step with the tuning's choices logged, with each tile. Logs go to $OUT (or a temporary folder); a short table last.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$root/gpu-carry}
source "$root/scripts/gpu_env.sh"
export VMC_ROOT=$root VMC_CACHE=${VMC_CACHE:-/tmp/vmc-hopper-check}
log=${OUT:-$(mktemp -d)}
cd "$root"
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
timeout 150 "$B/tests/test_scan_gpu" --bench-gemm > "$log/gemm256.txt" 2>&1; g1=$?
VMC_HOPPER_GEMM=1,128 timeout 150 "$B/tests/test_scan_gpu" --bench-gemm > "$log/gemm128.txt" 2>&1; g2=$?
# variants, GEMM rows only: HOPPER_VARIANTS="NAME=VAR=VALUE[+VAR=VALUE...] ..."
for v in ${HOPPER_VARIANTS:-}; do
    name=${v%%=*} set=${v#*=}
    env ${set//+/ } timeout 150 "$B/tests/test_scan_gpu" --bench-gemm > "$log/gemm_$name.txt" 2>&1
done
VMC_OWN_GEMM=2 timeout 150 "$B/tests/test_cuda_exec" --quick > "$log/own.txt" 2>&1; o=$?
VMC_GEMM_LOG=1 timeout 200 "$B/vmc" bench models/arm_b.vmc --model arm_b_pretrain --batch 128 --train --steps 5 \
    --top 6 > "$log/pt.txt" 2>&1; p=$?
VMC_HOPPER_GEMM=1,128 VMC_GEMM_LOG=1 timeout 200 "$B/vmc" bench models/arm_b.vmc --model arm_b_pretrain --batch 128 \
    --train --steps 5 --top 6 > "$log/pt128.txt" 2>&1; p2=$?
grep -iE "fail|error|wrong" "$log/gemm256.txt" | head -5
echo "== 128 x 256 tiles (exit $g1)"; grep -E "^\||rel" "$log/gemm256.txt"
echo "== 128 x 128 tiles (exit $g2)"; grep -E "^\|" "$log/gemm128.txt"
for v in ${HOPPER_VARIANTS:-}; do
    name=${v%%=*}
    echo "== $v"; grep -E "^\| gemm" "$log/gemm_$name.txt"; grep -iE "fail" "$log/gemm_$name.txt" | head -3
done
echo "== own GEMMs forced (exit $o): $(grep -o 'worst normalised error [^;]*' "$log/own.txt" | tail -1)"
grep -iE "disagree|fail" "$log/own.txt" | head -5
echo "== pretraining b128 (exit $p)"
grep -E "gemm tune" "$log/pt.txt" | sort -u -k3,3 | head -16
grep -E "images/s|step [0-9.]+ ms|own GEMMs" "$log/pt.txt" | head -6
echo "== pretraining b128, 128 x 128 tiles (exit $p2)"
grep -E "gemm tune" "$log/pt128.txt" | sort -u -k3,3 | head -16
grep -E "images/s|step [0-9.]+ ms|own GEMMs" "$log/pt128.txt" | head -6
