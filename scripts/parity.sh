#!/usr/bin/env bash
# parity.sh — loss and every gradient of vmc (`vmc grad`, fp32 by default) against the independent PyTorch
# implementations tests/ref/arm_ref.py (ARM pretraining at 192, 4-scan fine-tuning at 224) and
# tests/models/vim_ref.py (Vim-B): same weights, same inputs (batch 2), relative L2 error per tensor <= TOL.
#   scripts/parity.sh [--backend cpu|cuda] [--size b|l|h] [--vmc PATH] [--tol 1e-4] [--no-vim]
#                     [--precision fp32|bf16]   (bf16: vmc's cuda mixed precision against the fp32 reference)
# Needs python3 + torch + safetensors (exit 77 without them, or for --backend cuda without a GPU). Prints a table.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
backend=cpu size=b tol=1e-4 vim=1 precision=fp32 vmc=${VMC:-}
while [ $# -gt 0 ]; do
  case $1 in
    --backend) backend=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --vmc) vmc=$2; shift 2 ;;
    --tol) tol=$2; shift 2 ;;
    --no-vim) vim=0; shift ;;
    --precision) precision=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "parity.sh: unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
done
case $backend in cpu|cuda) ;; *) echo "parity.sh: --backend must be cpu or cuda" >&2; exit 1 ;; esac
case $precision in fp32|bf16) ;; *) echo "parity.sh: --precision must be fp32 or bf16" >&2; exit 1 ;; esac
case $size in b|l|h) ;; *) echo "parity.sh: --size must be b, l or h" >&2; exit 1 ;; esac
[ "$size" = b ] || vim=0                       # only Vim-B has a reference here
if [ -z "$vmc" ]; then
  for c in "$root/build/vmc" "$root"/build-*/vmc; do [ -x "$c" ] && { vmc=$c; break; }; done
fi
[ -x "${vmc:-}" ] || { echo "parity.sh: no vmc executable (pass --vmc PATH)" >&2; exit 1; }
python3 -c "import torch, safetensors" 2>/dev/null || { echo "parity.sh: no PyTorch/safetensors here, skipped"; exit 77; }
if [ "$backend" = cuda ] && ! nvidia-smi -L >/dev/null 2>&1; then echo "parity.sh: no GPU here, skipped"; exit 77; fi

ref="python3 $root/tests/ref/arm_ref.py"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$root"
declare -a rows
status=0

# check NAME FILE MODEL REFCMD... : G_ref from REFCMD, G_vmc from vmc grad FILE --model MODEL, then compare.
check() {
  local name=$1 file=$2 model=$3; shift 3
  local lref="-" lvmc="-" n="-" worst="-" verdict=FAIL
  echo "== $name: PyTorch reference"
  if "$@" --weights "$dir/W.safetensors" --inputs "$dir/X.safetensors" --out "$dir/G_ref.safetensors" \
       2>&1 | tee "$dir/ref.txt"; then
    lref=$(grep -oP '^loss \K[0-9.e+-]+' "$dir/ref.txt")
    echo "== $name: vmc grad $file --model $model ($backend backend, $precision)"
    if "$vmc" grad "$file" --model "$model" --weights "$dir/W.safetensors" --inputs "$dir/X.safetensors" \
         --out "$dir/G_vmc.safetensors" --precision "$precision" --backend "$backend" --set batch=2 --set drop_path_rate=0 \
         2>&1 | grep -v '^vmc grad: note:' | tee "$dir/vmc.txt"; then
      lvmc=$(grep -oP '^loss \K[0-9.e+-]+' "$dir/vmc.txt")
      $ref compare "$dir/G_vmc.safetensors" "$dir/G_ref.safetensors" --tol "$tol" 2>&1 | tee "$dir/cmp.txt"
      [ "${PIPESTATUS[0]}" = 0 ] && verdict=PASS
      n=$(grep -oP 'compared \K[0-9]+' "$dir/cmp.txt")
      worst=$(grep -oP 'worst rel L2 err \K[0-9.e+-]+' "$dir/cmp.txt")
    fi
  fi
  [ -n "$lvmc" ] || verdict=FAIL
  [ $verdict = PASS ] || status=1
  rows+=("$name|$backend|${lref:--}|${lvmc:--}|${n:--}|${worst:--}|$verdict")
}

for mode in pretrain finetune; do
  model=arm_${size}_pretrain
  [ $mode = finetune ] && model=arm_${size}_ft224
  $ref init --mode $mode --size "$size" --out "$dir/W.safetensors" || exit 1
  $ref inputs --mode $mode --batch 2 --out "$dir/X.safetensors" || exit 1
  check "$model" "models/arm_$size.vmc" "$model" $ref grad --mode $mode --size "$size"
done
if [ $vim = 1 ]; then
  python3 tests/models/vim_ref.py init --size b --out "$dir/W.safetensors" || exit 1
  $ref inputs --mode finetune --batch 2 --out "$dir/X.safetensors" || exit 1
  check vim_b models/vim_b.vmc vim_b python3 tests/models/vim_ref.py grad --size b
fi

echo
echo "== parity with PyTorch (vmc $precision, reference fp32, batch 2, tol $tol relative L2 per tensor; tensors = gradients + loss)"
printf '%-16s %-7s %-12s %-12s %-7s %-10s %s\n' model backend "loss ref" "loss vmc" tensors "worst rel" result
for r in "${rows[@]}"; do
  IFS='|' read -r a b c d e f g <<< "$r"
  printf '%-16s %-7s %-12s %-12s %-7s %-10s %s\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g"
done
exit $status
