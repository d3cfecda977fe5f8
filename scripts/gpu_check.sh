#!/usr/bin/env bash
# gpu_check.sh [BUILD_DIR] — run on a GPU machine; builds nothing. Runs the gpu tests (cuda backend vs the cpu
# oracle: kernels, gradients, 50 training steps) and the ARM-B benchmarks, then prints a short table.
# BUILD_DIR (default build-cuda2) holds vmc and tests/test_cuda_exec; a lib/ folder beside them is added to the
# library path (carry libopenblas etc. there when the machine lacks them). VMC_GPU_QUICK=1: fewer checks/steps.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$root/build-cuda2}
[ -d "$B/lib" ] && export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export VMC_CACHE=${VMC_CACHE:-/tmp/vmc-gpu-check-cache}
export VMC_ROOT=$root   # test_cuda_exec reads models/tiny.vmc from here
cd "$root"
log=$(mktemp -d)
declare -a rows
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'

echo "== gpu tests"
quick=""
[ "${VMC_GPU_QUICK:-0}" = 1 ] && quick="--quick"
if "$B/tests/test_cuda_exec" $quick 2>&1 | tee "$log/test.txt"; then t="pass"; else t="FAIL"; fi
rows+=("cuda vs cpu tests|$t|$(grep -o 'worst normalised error [^;]*' "$log/test.txt" | tail -1)")
loss=$(grep -o 'max relative loss difference over [0-9]* steps: [^;]*' "$log/test.txt" | sed 's/max relative loss difference over //' | paste -sd ' ' -)
[ -n "$loss" ] && rows+=("training loss cpu vs cuda|$t|$loss")

bench() {   # label, then vmc bench arguments
    local label=$1; shift
    echo "== vmc bench $*"
    if "$B/vmc" bench "$@" 2>&1 | tee "$log/bench.txt"; then
        local ips ms frac cold warm mem
        ips=$(grep -oP '[0-9.]+(?= images/s)' "$log/bench.txt" | head -1)
        ms=$(grep -oP 'step \K[0-9.]+(?= ms)' "$log/bench.txt" | head -1)
        frac=$(grep -oP '= \K[0-9.]+(?=% of the measured)' "$log/bench.txt" | head -1)
        cold=$(grep -oP 'cold \K[0-9.]+' "$log/bench.txt" | head -1)
        warm=$(grep -oP 'warm start \K[0-9.]+' "$log/bench.txt" | head -1)
        mem=$(grep -oP 'process total \K[0-9.]+' "$log/bench.txt" | head -1)
        rows+=("$label|ok|${ips} img/s, ${ms} ms/step, ${frac}% of GEMM peak, ${mem} GiB, cold ${cold} s, warm ${warm} s")
    else
        rows+=("$label|FAIL|see log above")
    fi
}
steps=20
[ "${VMC_GPU_QUICK:-0}" = 1 ] && steps=5
bench "ARM-B pretrain 192px b128 (>=5000)" models/arm_b.vmc --model arm_b_pretrain --batch 128 --train --steps $steps
bench "ARM-B finetune 224 b128 (>=3000)" models/arm_b.vmc --model arm_b_ft224 --batch 128 --train --steps $steps
bench "ARM-B inference 224 b256 (>=10000)" models/arm_b.vmc --model arm_b_ft224 --batch 256 --infer --steps $steps

echo
echo "== summary"
printf '%-38s %-5s %s\n' "check" "state" "figures"
for r in "${rows[@]}"; do
    IFS='|' read -r a b c <<< "$r"
    printf '%-38s %-5s %s\n' "$a" "$b" "$c"
done
