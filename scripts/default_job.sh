#!/usr/bin/env bash
# default_job.sh — the demonstration job: pretrain the tiny ARM (models/tiny.vmc) on Fashion-MNIST, fine-tune it
# from that checkpoint and evaluate it on the test set; train the same classifier from scratch (supervised) with
# the same fine-tuning budget and evaluate it; print both accuracies, the wall time and the machine. Uses the GPU
# when there is one (--backend auto). Step counts are sized for ~7 minutes on a quiet 2-core machine without one
# (~13 on one twice as slow: shared cores);
# with a GPU the recipes' full 4 epochs run (top-1/top-5 of the model and its EMA after each epoch).
# usage: default_job.sh [OUTDIR]   (env: VMC=path/to/vmc, PRETRAIN_STEPS, FINETUNE_STEPS, VMC_FMNIST)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VMC=${VMC:-$ROOT/build/vmc}
DATA=${VMC_FMNIST:-/usr/share/datasets/fashion-mnist}
OUT=${1:-$ROOT/build/default_job}
# A GPU (vmc uses it through --backend auto) runs the recipes' 4 epochs (937 steps each) in about a minute.
GPU="no GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
  G=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
  [ -z "$G" ] || GPU=$G
fi
# Without a GPU the fine-tuning runs are a few hundred steps: an EMA of decay 0.999 (a ~1000-step horizon) would
# still be mostly its initialisation, so it is switched off there, which also saves two test evaluations.
EMA=()
if [ "$GPU" = "no GPU" ]; then PRE=${PRETRAIN_STEPS:-300}; FT=${FINETUNE_STEPS:-160}; EMA=(--ema_decay 0)
else PRE=${PRETRAIN_STEPS:-3748}; FT=${FINETUNE_STEPS:-3748}; fi
MODEL=$ROOT/models/tiny.vmc
[ -x "$VMC" ] || { echo "default_job: $VMC not found (run scripts/setup.sh)" >&2; exit 2; }
[ -d "$DATA" ] || { echo "default_job: Fashion-MNIST not found at $DATA (apt-get install dataset-fashion-mnist)" >&2; exit 2; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
rm -rf "$OUT"; mkdir -p "$OUT"
COMMON=(--data "$DATA" --backend auto)
t0=$(date +%s)

# The test evaluations the fine-tuning runs end with (whole test split, model and EMA weights).
top1() { grep '"split": "test"' "$1" | grep "\"weights\": \"$2\"" | tail -1 | sed 's/.*"top1": \([0-9.]*\).*/\1/'; }

echo "== 1/4 pretrain tiny_pretrain, $PRE steps"
"$VMC" pretrain "$MODEL" --model tiny_pretrain "${COMMON[@]}" --steps "$PRE" --ckpt_every "$PRE" --out "$OUT/pretrain"
CK=$(ls "$OUT"/pretrain/checkpoint-*.safetensors | tail -1)
echo "== 2/4 fine-tune tiny_ft from $CK, $FT steps, then top-1/top-5 on the test set"
"$VMC" finetune "$MODEL" --model tiny_ft "${COMMON[@]}" "${EMA[@]}" --steps "$FT" --ckpt_every "$FT" --init "$CK" --out "$OUT/finetune"
echo "== 3/4 supervised tiny_supervised from scratch, $FT steps (same budget)"
"$VMC" finetune "$MODEL" --model tiny_supervised "${COMMON[@]}" "${EMA[@]}" --steps "$FT" --ckpt_every "$FT" --out "$OUT/scratch"
t1=$(date +%s)

echo "== 4/4 results (Fashion-MNIST test set, top-1)"
printf '%-44s %-8s %s\n' "" "model" "EMA"
for run in finetune scratch; do
  label="pretrained ($PRE steps) + fine-tuned ($FT)"; [ $run = scratch ] && label="from scratch ($FT steps)"
  ema=$(top1 "$OUT/$run/metrics.jsonl" ema || true)   # none when the EMA is off
  printf '%-44s %-8s %s\n' "$label" "$(top1 "$OUT/$run/metrics.jsonl" model)%" "$([ -n "$ema" ] && echo "$ema%" || echo off)"
done
echo "wall time $((t1 - t0)) s on $(nproc) cores, $GPU; runs in $OUT"
