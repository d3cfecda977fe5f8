#!/usr/bin/env bash
# skinny_sweep.sh BUILD_DIR [MODEL [CONFIG...]] — on a GPU machine: times vmc's own skinny GEMM kernel against
# cuBLASLt on MODEL's products (default arm_b_ft224, batch 128, training step) for each VMC_SKINNY_GEMM CONFIG
# (TILE,BK,STAGES,CTAS,STAGED; default: the README's sweep), each in an empty cache so that the tuning times them,
# then prints a table of µs a call per shape.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${1:?usage: skinny_sweep.sh BUILD_DIR [MODEL [CONFIG...]]}
model=${2:-arm_b_ft224}
shift $(($# >= 2 ? 2 : 1))
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(128,32,4,264,0 128,64,3,264,0 128,32,4,264,1 128,64,3,264,1 64,64,4,264,1)
source "$root/scripts/gpu_env.sh"
cd "$root" || exit 2
log=$(mktemp -d)
for k in "${configs[@]}"; do
    VMC_CACHE="$log/cache_$k" VMC_GEMM_LOG=1 VMC_SKINNY_GEMM=$k timeout 120 "$B/vmc" bench models/arm_b.vmc \
        --model "$model" --batch 128 --train --steps 2 --warmup 0 --top 0 > "$log/$k.txt" 2>&1 ||
        { echo "config $k: vmc bench failed; its last lines:"; tail -3 "$log/$k.txt"; }
done
python3 - "$log" "${configs[@]}" <<'PY'
import re, sys
log, configs = sys.argv[1], sys.argv[2:]
times = {}   # shape -> config -> (cublaslt, own)
for k in configs:
    for line in open(f"{log}/{k}.txt"):
        m = re.match(r"gemm tune: gemm_(\S+): cuBLASLt ([\d.]+) us .*own kernel ([\d.]+) us", line)
        if m: times.setdefault(m.group(1), {})[k] = (float(m.group(2)), float(m.group(3)))
shapes = sorted(times)
print("| µs a call | " + " | ".join(shapes) + " |")
print("| --- |" + " --- |" * len(shapes))
cell = lambda s, k, i: "%.1f" % times[s][k][i] if k in times[s] else ""
print("| cuBLASLt (first config's run) | " + " | ".join(cell(s, configs[0], 0) for s in shapes) + " |")
for k in configs: print(f"| own {k} | " + " | ".join(cell(s, k, 1) for s in shapes) + " |")
PY
