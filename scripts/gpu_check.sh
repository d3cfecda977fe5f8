#!/usr/bin/env bash
# gpu_check.sh [BUILD_DIR] — run on a GPU machine; builds nothing. Runs the gpu tests (cuda backend vs the cpu
# oracle: kernels, gradients, 50 training steps; templates vs fp64), the ARM-B benchmarks, `vmc pretrain` on both
# backends, the out-of-memory report and a short default job, then prints a short table (its logs come back packed:
# $OUT/gpu_check_logs.tgz; each row of the table also goes into $OUT/gpu_check_rows.txt as soon as it is made).
# BUILD_DIR (default build-cuda2) holds vmc and tests/test_cuda_exec; a lib/ folder beside them is added to the
# library path (carry libopenblas etc. there when the machine lacks them). VMC_GPU_QUICK=1: fewer checks/steps;
# BENCH_TOP=N: the benchmarks list their N slowest kernels (default 12); GPU_AB: variants timed against this build
# in the same run (below, after the benchmarks).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$root/build-cuda2}
source "$root/scripts/gpu_env.sh"
export VMC_CACHE=${VMC_CACHE:-/tmp/vmc-gpu-check-cache}
export VMC_ROOT=$root   # test_cuda_exec reads models/tiny.vmc from here
cd "$root"
# The logs, packed into one file of the device machine's $OUT at the end, or when a timeout stops the script (at
# most 8 files come back from $OUT: one for all of them)
log=$(mktemp -d)
pack_logs() { [ -n "${OUT:-}" ] && tar czf "$OUT/gpu_check_logs.tgz" -C "$log" . 2>/dev/null; }
trap pack_logs EXIT
trap 'exit 143' TERM INT
declare -a rows
# each row also goes straight into $OUT as it is made, so that a run stopped early still brings back what it found
format_row() { IFS='|' read -r a b c <<< "$1"; printf '%-38s %-5s %s\n' "$a" "$b" "$c"; }
add_row() {
    rows+=("$1")
    if [ -n "${OUT:-}" ]; then format_row "$1" >> "$OUT/gpu_check_rows.txt"; fi
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'

echo "== gpu tests"
quick=""
[ "${VMC_GPU_QUICK:-0}" = 1 ] && quick="--quick"
if "$B/tests/test_cuda_exec" $quick 2>&1 | tee "$log/test.txt"; then t="pass"; else t="FAIL"; fi
add_row "cuda vs cpu tests|$t|$(grep -o 'worst normalised error [^;]*' "$log/test.txt" | tail -1)"
loss=$(grep -o 'max relative loss difference over [0-9]* steps: [^;]*' "$log/test.txt" | sed 's/max relative loss difference over //' | paste -sd ' ' -)
[ -n "$loss" ] && add_row "training loss cpu vs cuda|$t|$loss"
# vmc's own kernel for every GEMM that has one (where otherwise only those timed faster than cuBLASLt run it), the
# weight gradients' Hopper kernels included
if VMC_OWN_GEMM=2 VMC_HOPPER_GEMM_WGRAD=1 "$B/tests/test_cuda_exec" --quick > "$log/own.txt" 2>&1; then t=pass
else t=FAIL; fi
grep -A3 "skinny GEMMs" "$log/own.txt" | head -8
add_row "cuda vs cpu, own skinny GEMMs forced|$t|$(grep -o 'worst normalised error [^;]*' "$log/own.txt" | tail -1)"
# the directions' conv1d backwards each a launch (by default one launch sums their dx)
if VMC_CONV_MULTI_BWD=0 "$B/tests/test_cuda_exec" --quick > "$log/mbwd.txt" 2>&1; then t=pass; else t=FAIL; fi
add_row "cuda vs cpu, VMC_CONV_MULTI_BWD=0|$t|$(grep -o 'worst normalised error [^;]*' "$log/mbwd.txt" | tail -1)"
# the directions' conv1d backward with each direction's loads issued at its start (by default while the one before computes)
if VMC_CONV_MBWD_AHEAD=0 "$B/tests/test_cuda_exec" --quick > "$log/ahead.txt" 2>&1; then t=pass; else t=FAIL; fi
add_row "cuda vs cpu, VMC_CONV_MBWD_AHEAD=0|$t|$(grep -o 'worst normalised error [^;]*' "$log/ahead.txt" | tail -1)"
# every memset a launch (by default those that stand together are one zeroing kernel, program_zero.c), and the
# gradient-norm sums kept after the last GEMM, batched there (by default each runs right after its gradient)
if VMC_ZERO_MERGE=0 VMC_HOIST_TAIL=0 "$B/tests/test_cuda_exec" --quick > "$log/zero.txt" 2>&1; then t="pass"; else t="FAIL"; fi
add_row "cuda vs cpu, VMC_ZERO_MERGE=0 VMC_HOIST_TAIL=0|$t|$(grep -o 'worst normalised error [^;]*' "$log/zero.txt" | tail -1)"
# the scan forward's Bm/Cm tiles loaded value by value (by default copied a tile ahead by cp.async), and the templates then
if VMC_SCAN_BC_ASYNC=0 "$B/tests/test_cuda_exec" --quick > "$log/bcasync.txt" 2>&1 &&
    VMC_SCAN_BC_ASYNC=0 "$B/tests/test_scan_gpu" > "$log/bcasync_scan.txt" 2>&1; then t="pass"; else t="FAIL"; fi
add_row "cuda vs cpu + templates vs fp64, VMC_SCAN_BC_ASYNC=0|$t|$(grep -o 'worst normalised error [^;]*' "$log/bcasync.txt" | tail -1)"
# the scan forward's timing knobs (off by default): every decay by the FMA-pipe polynomial, y in 4 partial sums
if VMC_SCAN_POLY_EXP=16 VMC_SCAN_Y_SPLIT=4 "$B/tests/test_scan_gpu" > "$log/polyexp.txt" 2>&1; then t="pass"; else t="FAIL"; fi
add_row "templates vs fp64, VMC_SCAN_POLY_EXP=16 VMC_SCAN_Y_SPLIT=4|$t|$(tail -1 "$log/polyexp.txt")"
if bash tests/test_own_gemm_check.sh "$B" "$root" > "$log/check.txt" 2>&1; then t=pass; else t=FAIL; fi
add_row "a broken own GEMM kernel rejected|$t|$(grep 'broken own kernel' "$log/check.txt")"

echo "== scan, conv1d and attention templates against fp64 references (test_scan_gpu), then their times"
if "$B/tests/test_scan_gpu" > "$log/scan.txt" 2>&1; then s=pass; else s=FAIL; fi
tail -3 "$log/scan.txt"
"$B/tests/test_scan_gpu" --bench 2>&1 | tee "$log/scanb.txt" | grep "^|"
add_row "scan/conv1d/attention templates vs fp64|$s|ARM-B ft shapes: $(grep -m1 'scan B128 L197 D768 bf16->f32 |' "$log/scanb.txt" | awk -F'|' '{gsub(/ +/, " "); print "scan"$3", scan"$5", conv"}') $(grep -m1 'conv1d B128 L197' "$log/scanb.txt" | awk -F'|' '{gsub(/ +/, " "); print $3", "$5}'); pt attention$(grep -m1 'attention B128' "$log/scanb.txt" | awk -F'|' '{gsub(/ +/, " "); print $3", "$5}')"

echo "== SwiGLU's backward in one kernel, every variant against fp64 and timed (test_scan_gpu --bench-swiglu-bwd)"
if "$B/tests/test_scan_gpu" --bench-swiglu-bwd > "$log/swb.txt" 2>&1; then s=pass; else s=FAIL; fi
grep "^|" "$log/swb.txt"
# at pretraining's shape: the default, the fastest variant, and the parts it would replace (cuBLASLt's dh + the pass)
swb=$(grep "^| swiglu backward 16384x" "$log/swb.txt" | awk -F'|' '{split($3, f, " "); print f[2], $2}' | sort -n)
sw_default=$(grep -oP '^\| swiglu backward 16384x\S+ default \| fused \K[0-9.]+' "$log/swb.txt")
sw_best=$(head -1 <<< "$swb" | sed 's/ *swiglu backward 16384x2048x768, / (/; s/ *$/)/')
sw_dh=$(grep -m1 -oP "^\| swiglu backward 16384x.*cuBLASLt's dh \K[0-9.]+" "$log/swb.txt")
add_row "SwiGLU backward variants vs fp64|$s|16384x2048x768 ms: default $sw_default, fastest $sw_best, cuBLASLt's dh $sw_dh + the generated pass"

bench() {   # label, then vmc bench arguments
    local label=$1; shift
    echo "== vmc bench $*"
    if VMC_GEMM_LOG=1 "$B/vmc" bench "$@" --top "${BENCH_TOP:-12}" 2>&1 | tee "$log/bench.txt"; then
        cp "$log/bench.txt" "$log/bench_${3}_$5.txt"   # (model and batch: bench.txt is the next one's)
        local ips ms frac cold warm mem
        ips=$(grep -oP '[0-9.]+(?= images/s)' "$log/bench.txt" | head -1)   # sustained (after bench's warm-up)
        burst=$(grep -oP 'right after the first: [0-9.]+ ms, \K[0-9.]+(?= images/s)' "$log/bench.txt" | head -1)
        clk=$(grep -oP 'SM clock [0-9-]+ MHz \(mean \K[0-9]+' "$log/bench.txt" | head -1)
        ms=$(grep -oP 'step \K[0-9.]+(?= ms)' "$log/bench.txt" | head -1)
        frac=$(grep -oP '= \K[0-9.]+(?=% of the measured)' "$log/bench.txt" | head -1)
        cold=$(grep -oP 'cold \K[0-9.]+' "$log/bench.txt" | head -1)
        warm=$(grep -oP 'warm start \K[0-9.]+' "$log/bench.txt" | head -1)
        mem=$(grep -oP 'process total \K[0-9.]+' "$log/bench.txt" | head -1)
        own=$(grep -oP 'own GEMMs: \K[0-9]+ of [0-9]+' "$log/bench.txt" | head -1)
        sw=$(grep -oP 'SwiGLU: \K[0-9]+ of [0-9]+' "$log/bench.txt" | head -1)
        floor=$(grep -oP 'ms a step, \K[0-9.]+(?= images/s; the step takes)' "$log/bench.txt" | head -1)
        add_row "$label|ok|${ips} img/s (burst ${burst}; floor ${floor:-?}), ${ms} ms/step at ${clk:-?} MHz, ${frac}% of GEMM peak, ${mem} GiB, cold ${cold} s, warm ${warm} s, own GEMM kernels ${own:-none}, SwiGLU in one ${sw:-none}"
    else
        add_row "$label|FAIL|see log above"
    fi
}
steps=20
[ "${VMC_GPU_QUICK:-0}" = 1 ] && steps=5
bench "ARM-B pretrain 192px b128 (>=5000)" models/arm_b.vmc --model arm_b_pretrain --batch 128 --train --steps $steps
bench "ARM-B finetune 224 b128 (>=3000)" models/arm_b.vmc --model arm_b_ft224 --batch 128 --train --steps $steps
bench "ARM-B inference 224 b256 (>=10000)" models/arm_b.vmc --model arm_b_ft224 --batch 256 --infer --steps $steps

# Variants timed against this build in the same run (scripts/bench_ab.sh, 2 rounds, alternating):
# GPU_AB="LABEL=SETTINGS ...", SETTINGS either VAR=VALUE[+VAR=VALUE...] (this build with those settings) or the path
# of another vmc (gpu_carry.sh REV puts one in gpu-carry/REV/vmc); GPU_AB_WHICH: the steps (default "pt ft").
# Example: GPU_AB="zero=VMC_ZERO_MERGE=1 mbwd=VMC_CONV_MULTI_BWD=1+VMC_CONV_MBWD=16,1,1 old=gpu-carry/3bee6c6/vmc"
if [ -n "${GPU_AB:-}" ]; then
  variants=("base=$B/vmc")
  for item in $GPU_AB; do
    label=${item%%=*} rest=${item#*=}
    if [[ $rest == */* ]]; then variants+=("$label=$rest"); else variants+=("$label=${rest//+/ } $B/vmc"); fi
  done
  which=${GPU_AB_WHICH:-pt ft}
  echo "== bench_ab ($which): ${variants[*]}"
  bash scripts/bench_ab.sh -r 2 -w "$which" "${variants[@]}" 2>&1 | tee "$log/ab.txt"
  for v in "${variants[@]}"; do
    label=${v%%=*}
    line=$(grep -E "^$label +\|" "$log/ab.txt" | tail -1 | cut -d'|' -f2- | tr -s ' ' | sed 's/ | /; /g')
    add_row "A/B ms a step ($which): $label|$([[ $line == *FAIL* || -z $line ]] && echo FAIL || echo ok)|${line:-no result}"
  done
fi

# Template settings timed on the scan rows alone (test_scan_gpu --bench-scan; 2 rounds, alternating with this build's
# defaults): GPU_SCAN_AB="LABEL=VAR=VALUE[+VAR=VALUE...] ...". Each row: the forward's ms a call, round 1/2, at
# pretraining's gated shape, fine-tuning's 4-direction one and inference's batch 256.
# Example: GPU_SCAN_AB="p1=VMC_SCAN_POLY_EXP=1 p2=VMC_SCAN_POLY_EXP=2 s2=VMC_SCAN_Y_SPLIT=2"
if [ -n "${GPU_SCAN_AB:-}" ]; then
  echo "== scan rows under: base $GPU_SCAN_AB"
  for r in 1 2; do
    for item in "base=" $GPU_SCAN_AB; do
      set=${item#*=}
      env ${set//+/ } "$B/tests/test_scan_gpu" --bench-scan > "$log/scanab_${item%%=*}.$r.txt" 2>&1
    done
  done
  scan_fwd_ms() {   # LABEL SHAPE: "r1/r2" of the forward's ms
    grep -h -F "| scan $2 |" "$log/scanab_$1.1.txt" "$log/scanab_$1.2.txt" | grep -oP 'fwd \K[0-9.]+' | paste -sd/ -
  }
  for item in "base=" $GPU_SCAN_AB; do
    l=${item%%=*}
    figs="pt $(scan_fwd_ms "$l" 'B128 L128 D768 bf16->f32'), ft $(scan_fwd_ms "$l" 'B128 L197 D768 bf16->bf16 ungated'),"
    figs+=" inf $(scan_fwd_ms "$l" 'B256 L197 D768 bf16->bf16 recompute ungated')"
    n=$(grep -oE '[0-9.]+/[0-9.]+' <<< "$figs" | wc -l)   # both rounds of all three shapes
    add_row "scan fwd ms a call (r1/r2): $l|$([ "$n" = 3 ] && echo ok || echo FAIL)|$figs"
  done
fi

# Loss and every gradient of ARM-B (pretraining, 4-scan fine-tuning) and Vim-B against the independent PyTorch
# implementation (tests/ref/arm_ref.py, tests/models/vim_ref.py): scripts/parity.sh runs `vmc grad` on each backend, fp32, tol 1e-4.
if [ "${VMC_GPU_PARITY:-1}" = 1 ]; then
  for backend in cuda cpu; do
    echo "== parity with PyTorch ($backend backend)"
    if bash scripts/parity.sh --backend $backend --vmc "$B/vmc" 2>&1 | tee "$log/parity.txt"; then p=pass; else p=FAIL; fi
    add_row "PyTorch parity, $backend|$p|$(grep -oP 'worst rel L2 err \K[0-9.e+-]+' "$log/parity.txt" | paste -sd ' ' -) (arm_b_pretrain arm_b_ft224 vim_b)"
  done
fi

# Training through the real data path (JPEG decode + RandomResizedCrop on 16 cores, pinned buffers) on the GPU.
echo "== vmc pretrain --backend cuda on synthetic JPEGs"
data=$("$B/vmc" bench --data synthetic:2048 --keep --batches 1 --batch 64 2>&1 | grep -oP 'JPEGs to \K\S+')
out=$(mktemp -d)
if [ -n "$data" ] && "$B/vmc" pretrain models/arm_b.vmc --model arm_b_pretrain --backend cuda --data "$data" \
     --out "$out/armb" --steps 48 --batch_size 128 --threads 16 2>&1 | tee "$log/train.txt" | tail -5; then
  # 48 steps (3 epochs of 16): the mean from step 3 on (after the first step's capture and tuning), and the median
  # of the last 10
  mean=$(grep -oP '"img_per_s":\s*\K[0-9.]+' "$out/armb/metrics.jsonl" | sed -n '3,$p' | awk '{s+=$1; n++} END {printf "%.0f", s/n}')
  ips=$(grep -oP '"img_per_s":\s*\K[0-9.]+' "$out/armb/metrics.jsonl" | tail -10 | sort -n | awk '{a[NR]=$1} END {printf "%.0f", a[int((NR+1)/2)]}')
  l0=$(grep -oP '"loss":\s*\K[0-9.e+-]+' "$out/armb/metrics.jsonl" | head -1)
  l1=$(grep -oP '"loss":\s*\K[0-9.e+-]+' "$out/armb/metrics.jsonl" | tail -1)
  add_row "ARM-B pretrain, data + cuda, b128|ok|${mean} img/s over steps 3-48 (last 10: median ${ips}), loss $l0 -> $l1"
  # A checkpoint written by vmc loads in PyTorch's safetensors reader under the reference names.
  ck=$(ls -t "$out"/armb/*.safetensors 2>/dev/null | head -1)
  if [ -n "$ck" ] && python3 - "$ck" <<'PY' 2>&1 | tee "$log/ckpt.txt"; then c=pass; else c=FAIL; fi
import sys
from safetensors.torch import load_file
t = load_file(sys.argv[1])
need = {"patch_embed.proj.weight": (768, 3, 16, 16), "layers.11.mixer.A_log": (768, 16), "dec_block.3.attn2.kv.weight": (1024, 512),
        "enc2dec.weight": (2048, 3072), "pos_embed": (1, 144, 768), "mask": (128, 128)}
bad = [k for k, s in need.items() if k not in t or tuple(t[k].shape) != s]
print(f"{sys.argv[1]}: {len(t)} tensors; reference names/shapes checked: {len(need) - len(bad)}/{len(need)}")
sys.exit(1 if bad else 0)
PY
  add_row "checkpoint read by PyTorch|$c|$(tail -1 "$log/ckpt.txt" | cut -c1-90)"
else
  add_row "ARM-B pretrain, data + cuda, b128|FAIL|see log above"
fi
rm -rf "$out" "$data"

# Training through `vmc pretrain` on both backends: the tiny ARM, 50 steps on Fashion-MNIST, fp32 (the same
# numerics), first/last losses side by side; then an out-of-memory run (the message, exit 2) and a short default job.
fm=${VMC_FMNIST:-/usr/share/datasets/fashion-mnist}
[ -d "$fm" ] || fm=$B/fmnist   # a copy carried beside the build (GPU machines lack the Debian package)
if [ -d "$fm" ]; then
  out=$(mktemp -d)
  curve=""
  for backend in cuda cpu; do
    echo "== vmc pretrain tiny --backend $backend (50 steps, fp32)"
    if OMP_WAIT_POLICY=passive "$B/vmc" pretrain models/tiny.vmc --model tiny_pretrain --backend $backend --precision fp32 \
         --data "$fm" --steps 50 --out "$out/$backend" 2>&1 | tail -3; then
      l0=$(grep -oP '"loss":\s*\K[0-9.e+-]+' "$out/$backend/metrics.jsonl" | head -1)
      l1=$(grep -oP '"loss":\s*\K[0-9.e+-]+' "$out/$backend/metrics.jsonl" | tail -1)
      ips=$(grep -oP '"img_per_s":\s*\K[0-9.]+' "$out/$backend/metrics.jsonl" | tail -10 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
      add_row "tiny pretrain 50 steps, $backend|ok|loss $l0 -> $l1, ${ips} img/s"
    else
      add_row "tiny pretrain 50 steps, $backend|FAIL|see log above"
    fi
  done
  echo "== out of memory: ARM-B pretrain at batch 16384"
  "$B/vmc" pretrain models/arm_b.vmc --model arm_b_pretrain --backend cuda --data "$fm" --batch_size 16384 --steps 1 \
       --out "$out/oom" >"$log/oom.txt" 2>&1
  rc=$?
  cat "$log/oom.txt" | tail -2
  if [ $rc = 2 ] && grep -q "out of GPU memory: batch 16384 needs" "$log/oom.txt"; then o=pass; else o="FAIL (exit $rc)"; fi
  add_row "out-of-memory message, exit 2|$o|$(grep -oP 'a batch of about \K[0-9]+' "$log/oom.txt" | head -1) suggested"
  echo "== default job (--backend auto), 100 + 100 steps"
  if VMC_FMNIST="$fm" PRETRAIN_STEPS=100 FINETUNE_STEPS=100 VMC="$B/vmc" bash scripts/default_job.sh "$out/job" 2>&1 | tee "$log/job.txt" | tail -6; then
    add_row "default job, 100+100 steps|ok|$(grep -oP 'wall time \K.*' "$log/job.txt")"
  else
    add_row "default job, 100+100 steps|FAIL|see log above"
  fi
  rm -rf "$out"
fi

echo
{
    echo "== summary (wall time ${SECONDS} s)"
    printf '%-38s %-5s %s\n' "check" "state" "figures"
    for r in "${rows[@]}"; do format_row "$r"; done
} | tee "$log/summary.txt"
