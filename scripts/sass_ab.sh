#!/usr/bin/env bash
# sass_ab.sh OLD [MODEL[:NAME=VALUE]...] — the static side of a template change, no GPU: generates each model's
# training step (bf16) twice, with the templates of OLD (a folder of codegen/templates copies, or a git revision)
# and with this tree's codegen/templates, and prints per template kernel its registers, spill bytes and SASS
# instructions old -> new (scripts/sass_ab.py; the instruction counts need cuobjdump, find_cuobjdump.sh, and are
# left out without it or with CUOBJDUMP=none). Models default to ARM-B pretraining at batch 128 and 4-scan fine-tuning:
# `arm_b_pretrain:batch=128 arm_b_ft224`. VMC: the vmc to run (default build/vmc); VMC_MODEL_FILE: models/arm_b.vmc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
old=${1:?usage: sass_ab.sh OLD_TEMPLATE_DIR_OR_REVISION [MODEL[:NAME=VALUE]...]}
shift
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(arm_b_pretrain:batch=128 arm_b_ft224)
vmc=${VMC:-$root/build/vmc}
file=${VMC_MODEL_FILE:-$root/models/arm_b.vmc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -d "$old" ]; then olddir=$(cd "$old" && pwd)
else
    git -C "$root" rev-parse -q --verify "$old^{commit}" > /dev/null ||
        { echo "sass_ab.sh: '$old' is neither a folder nor a revision" >&2; exit 2; }
    git -C "$root" archive "$old" codegen/templates | tar -x -C "$tmp"
    olddir=$tmp/codegen/templates
fi
source "$here/find_cuobjdump.sh"
if [ "${CUOBJDUMP:-}" = none ]; then dump=   # (registers and spills only, without looking for one)
else dump=$(find_cuobjdump 2>/dev/null) || { dump=; echo "sass_ab.sh: no cuobjdump: registers and spills only" >&2; }; fi
for spec in "${models[@]}"; do
    model=${spec%%:*} set=()
    [ "$model" != "$spec" ] && set=(--set "${spec#*:}")
    for side in old new; do
        dir=$olddir; [ $side = new ] && dir=$root/codegen/templates
        VMC_TEMPLATE_DIR=$dir "$vmc" compile "$file" --model "$model" --train --bf16 --no-nvrtc "${set[@]}" \
            --dump-kernels "$tmp/$model.$side" > "$tmp/$model.$side.log" 2>&1 ||
            { echo "sass_ab.sh: vmc compile failed ($side templates):" >&2; tail -5 "$tmp/$model.$side.log" >&2; exit 1; }
    done
    echo "== $spec"
    python3 "$here/sass_ab.py" "$tmp/$model.old" "$tmp/$model.new" $dump
done
