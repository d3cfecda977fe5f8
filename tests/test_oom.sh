#!/usr/bin/env bash
# test_oom.sh — [gpu] ARM-B pretraining at a batch far beyond the GPU's memory: `vmc pretrain --backend cuda` exits 2
# before the first step with the bytes needed and free and a batch size that fits, and writes no checkpoint.
# Skips (77) without a GPU or without Fashion-MNIST.
# usage: test_oom.sh VMC REPO_ROOT
set -uo pipefail
VMC=$1 ROOT=$2
nvidia-smi -L >/dev/null 2>&1 || { echo "test_oom.sh: no GPU here, skipped"; exit 77; }
fm=${VMC_FMNIST:-/usr/share/datasets/fashion-mnist}
[ -d "$fm" ] || { echo "test_oom.sh: no Fashion-MNIST at $fm, skipped"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$VMC" pretrain "$ROOT/models/arm_b.vmc" --model arm_b_pretrain --backend cuda --data "$fm" --batch_size 16384 \
    --steps 1 --out "$T/run" >"$T/log" 2>&1
rc=$?
cat "$T/log" | tail -3
[ $rc = 2 ] || { echo "FAIL: exit $rc, expected 2"; exit 1; }
grep -q "out of GPU memory: batch 16384 needs" "$T/log" || { echo "FAIL: no out-of-memory message"; exit 1; }
fit=$(grep -oP 'pass --batch_size \K[0-9]+' "$T/log" | head -1)
[ -n "$fit" ] && [ "$fit" -ge 1 ] && [ "$fit" -lt 16384 ] || { echo "FAIL: no batch size that fits ($fit)"; exit 1; }
! ls "$T/run"/*.safetensors >/dev/null 2>&1 || { echo "FAIL: a checkpoint was written"; exit 1; }
echo "test_oom.sh: ok (suggested --batch_size $fit)"
