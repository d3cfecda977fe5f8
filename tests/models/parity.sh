#!/usr/bin/env bash
# parity.sh — ARM-B pretraining and 4-scan fine-tuning from models/arm_b.vmc against tests/ref/arm_ref.py (an
# independent PyTorch implementation of ARM_SPEC), and Vim-B (models/vim_b.vmc) against tests/models/vim_ref.py:
# the same weights and inputs, fp32; the loss and every gradient must agree to a relative L2 error of TOL.
# Skips (77) without PyTorch + safetensors.
#   parity.sh VMC ROOT [TOL] [BACKEND]      (BACKEND cpu (default) or cuda; `vmc grad` runs the model files)
set -euo pipefail
vmc=$1 root=$2 tol=${3:-1e-4} backend=${4:-cpu}
python3 -c "import torch, safetensors" 2>/dev/null || { echo "parity: no PyTorch/safetensors here, skipped"; exit 77; }
ref="python3 $root/tests/ref/arm_ref.py"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$root"
status=0
for mode in pretrain finetune; do
  model=arm_b_pretrain; sets=(batch=2)
  if [ $mode = finetune ]; then model=arm_b_ft224; sets=(batch=2 drop_path_rate=0.0); fi
  $ref init --mode $mode --size b --out "$dir/W.safetensors"
  $ref inputs --mode $mode --batch 2 --out "$dir/X.safetensors"
  echo "== $model: PyTorch reference"
  $ref grad --mode $mode --size b --weights "$dir/W.safetensors" --inputs "$dir/X.safetensors" --out "$dir/G_ref.safetensors"
  setargs=(); for kv in "${sets[@]}"; do setargs+=(--set "$kv"); done
  echo "== $model: vmc grad (models/arm_b.vmc, $backend backend, fp32)"
  "$vmc" grad models/arm_b.vmc --model $model --weights "$dir/W.safetensors" --inputs "$dir/X.safetensors" \
    --out "$dir/G_vmc.safetensors" --precision fp32 --backend $backend "${setargs[@]}"
  $ref compare "$dir/G_vmc.safetensors" "$dir/G_ref.safetensors" --tol "$tol" || status=1
done
echo "== vim_b: PyTorch reference (tests/models/vim_ref.py)"
python3 "$root/tests/models/vim_ref.py" init --size b --out "$dir/W.safetensors"
$ref inputs --mode finetune --batch 2 --out "$dir/X.safetensors"
python3 "$root/tests/models/vim_ref.py" grad --size b --weights "$dir/W.safetensors" --inputs "$dir/X.safetensors" \
  --out "$dir/G_ref.safetensors"
echo "== vim_b: vmc grad (models/vim_b.vmc, $backend backend, fp32)"
"$vmc" grad models/vim_b.vmc --model vim_b --weights "$dir/W.safetensors" --inputs "$dir/X.safetensors" \
  --out "$dir/G_vmc.safetensors" --precision fp32 --backend $backend --set batch=2 --set drop_path_rate=0.0
$ref compare "$dir/G_vmc.safetensors" "$dir/G_ref.safetensors" --tol "$tol" || status=1
exit $status
