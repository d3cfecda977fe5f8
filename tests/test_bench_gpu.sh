#!/usr/bin/env bash
# test_bench_gpu.sh VMC ROOT — [gpu] `vmc bench` on the tiny pretraining step prints its figures and the step's floor
# on this GPU: a positive floor at the measured GEMM peak and copy bandwidth (within what GPUs reach), the floor with
# launches side by side (between the longest dependency path and the floor), and per kernel class the eager time
# beside the floor. Exit 77 (skip) without a GPU.
set -uo pipefail
vmc=$1
root=$2
out=$(VMC_CACHE=$(mktemp -d) "$vmc" bench "$root/models/tiny.vmc" --model tiny_pretrain --batch 8 --train --steps 3 \
      --warmup 0 --top 3 2>&1)
rc=$?
if [ $rc = 2 ] && grep -q "no usable GPU" <<< "$out"; then echo "skipped: $(tail -1 <<< "$out")"; exit 77; fi
echo "$out"
[ $rc = 0 ] || { echo "FAILED: vmc bench exit $rc"; exit 1; }
line=$(grep -E '^  floor at [0-9]+ TFLOP/s, [0-9.]+ TB/s \(copies measured now\)' <<< "$out")
[ -n "$line" ] || { echo "FAILED: no floor line"; exit 1; }
read -r tflops tbps ms ips <<< "$(sed -E 's/^  floor at ([0-9]+) TFLOP\/s, ([0-9.]+) TB\/s.*: ([0-9.]+) ms a step, ([0-9.]+) images\/s.*/\1 \2 \3 \4/' <<< "$line")"
echo "floor: $ms ms a step ($ips images/s) at $tflops TFLOP/s and $tbps TB/s"
awk -v t="$tflops" -v b="$tbps" -v m="$ms" -v i="$ips" 'BEGIN { exit !(t > 10 && t < 10000 && b > 0.1 && b < 20 && m > 0 && i > 0) }' ||
    { echo "FAILED: floor figures out of range"; exit 1; }
# ... and what launches side by side could reach: at least the longest dependency path, and no more than the floor
side=$(grep -oP '^  with launches side by side: at least \K[0-9.]+ ms a step, [0-9.]+ images/s \(the longest dependency path [0-9.]+' <<< "$out")
read -r sms _ _ _ _ _ _ _ _ _ spath <<< "$(tr -d '(,' <<< "$side")"
echo "side by side: at least $sms ms (path $spath)"
awk -v s="$sms" -v p="$spath" -v m="$ms" 'BEGIN { exit !(s != "" && s > 0 && s >= p && s <= m * 1.0001) }' ||
    { echo "FAILED: no floor for launches side by side, or one above the floor"; exit 1; }
classes=$(grep -oE 'per class, eager ms / floor ms:( [a-z]+ [0-9.]+ / [0-9.]+)+$' <<< "$out")
grep -q ' gemm [0-9.]* / [0-9.]*' <<< "$classes" || { echo "FAILED: no per-class eager / floor figures with a gemm class"; exit 1; }
# the kernels furthest above their floor: a heading, then entries "name xCALLS MS / FLOOR"
grep -A1 '^  furthest above their floor' <<< "$out" | grep -qE '^    [A-Za-z0-9_]+ x[0-9]+ [0-9.]+ / [0-9.]+' ||
    { echo "FAILED: no list of the kernels furthest above their floor"; exit 1; }
# generated and template kernels carry the blocks an SM holds (the occupancy calculator), as "N/SM"
grep -A4 '^  furthest above their floor' <<< "$out" | grep -qE ' [0-9.]+ / [0-9.]+ [1-9][0-9]*/SM' ||
    { echo "FAILED: no kernel of the list with its blocks an SM"; exit 1; }
echo ok
