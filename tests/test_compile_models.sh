#!/usr/bin/env bash
# test_compile_models.sh VMC ROOT — `vmc compile` over models/*.vmc for sm_90, ARM-B also for sm_80 and sm_89
# (NVRTC needs no GPU).
# Every model goes through fusion, planning and code generation (inference step); the first model of each file is
# NVRTC-compiled in full, inference and training step; tiny.vmc's training steps are compiled in full.
# VMC_COMPILE_ALL=1 NVRTC-compiles every model (minutes on a small machine).
set -euo pipefail
vmc=$1
root=$2
if [ -z "${VMC_CACHE:-}" ]; then
    VMC_CACHE=$(mktemp -d)
    trap 'rm -rf "$VMC_CACHE"' EXIT
fi
export VMC_CACHE
fail=0
run() {
    echo "+ vmc compile $*"
    if ! "$vmc" compile "$@" > "$VMC_CACHE/out.log" 2>&1; then
        cat "$VMC_CACHE/out.log"; echo "FAILED: vmc compile $*"; fail=1; return
    fi
    grep "step, sm_" "$VMC_CACHE/out.log" || true
}
for f in "$root"/models/*.vmc; do
    first=$(grep -m1 -oP '^model \K[A-Za-z0-9_]+' "$f" || true)
    [ -n "$first" ] || continue
    if [ "${VMC_COMPILE_ALL:-0}" = 1 ]; then run "$f" --arch sm_90; else run "$f" --arch sm_90 --no-nvrtc; fi
    run "$f" --arch sm_90 --model "$first"
    run "$f" --arch sm_90 --model "$first" --train --no-nvrtc
done
run "$root/models/tiny.vmc" --arch sm_90 --train
# Ampere and Ada (sm_80+ is supported): every kernel of ARM-B's bf16 training step compiles for them too
run "$root/models/arm_b.vmc" --arch sm_80 --model arm_b_ft224 --train --bf16
# the same with every memset a launch of its own (by default runs of them are zeroing kernels, program_zero.c)
VMC_ZERO_MERGE=0 run "$root/models/arm_b.vmc" --arch sm_80 --model arm_b_ft224 --train --bf16
run "$root/models/arm_b.vmc" --arch sm_89 --model arm_b_pretrain --train --bf16
# No kernel of ARM-B fine-tuning (training, also with the directions' conv1d backwards a launch each, and inference)
# spills registers or takes a stack frame: ptxas' own report (vmc compile --ptxas-info)
no_spills() {
    run "$@" --ptxas-info
    grep "^ptxas:" "$VMC_CACHE/out.log" || true
    if ! grep -q "^ptxas: .*stack frames or spills: none$" "$VMC_CACHE/out.log"; then
        echo "FAILED: a kernel spills or takes a stack frame: vmc compile $* --ptxas-info"; fail=1
    fi
}
no_spills "$root/models/arm_b.vmc" --arch sm_90 --model arm_b_ft224 --train --bf16
VMC_CONV_MULTI_BWD=0 no_spills "$root/models/arm_b.vmc" --arch sm_90 --model arm_b_ft224 --train --bf16
no_spills "$root/models/arm_b.vmc" --arch sm_90 --model arm_b_ft224 --bf16 --set batch=256
# the same inference with each layer's direction merge in its last scan forward (scan_epi.c), with and without the
# L2 prefetches of its inputs: every module compiles, unspilled
VMC_SCAN_EPI=1 no_spills "$root/models/arm_b.vmc" --arch sm_90 --model arm_b_ft224 --bf16 --set batch=256
VMC_SCAN_EPI=2 no_spills "$root/models/arm_b.vmc" --arch sm_90 --model arm_b_ft224 --bf16 --set batch=256
# ARM-H's skinny products (dt_rank 96, x_proj 128 wide) in vmc's own GEMM kernel, bf16 training
run "$root/models/arm_h.vmc" --arch sm_90 --model arm_h_pretrain --train --bf16
# ARM-B fine-tuning's token embedding (patch GEMM + bias, the class token concatenated in the middle, + pos) is
# computed by the first LayerNorm's kernel alone: later row kernels read it back instead of recomputing it per phase
"$vmc" compile "$root/models/arm_b.vmc" --model arm_b_ft224 --train --bf16 --no-nvrtc --dump-groups > "$VMC_CACHE/groups.log" 2>&1
n=$(grep -cE '^k[0-9]+ +row .* concat%' "$VMC_CACHE/groups.log" || true)
echo "arm_b_ft224 training: $n row kernel(s) compute the token embedding"
if [ "$n" != 1 ]; then echo "FAILED: expected 1"; fail=1; fi
# ARM-B pretraining (one direction): each layer's in_proj output gradient [dx | dz] is written in place by the conv
# and scan backwards (packed_copies_into_place), no kernel of its own
"$vmc" compile "$root/models/arm_b.vmc" --model arm_b_pretrain --train --bf16 --no-nvrtc --dump-groups > "$VMC_CACHE/groups.log" 2>&1
n=$(grep -c 'assembled in place' "$VMC_CACHE/groups.log" || true)
echo "arm_b_pretrain training: $n group(s) assembled in place"
if [ "$n" != 12 ]; then echo "FAILED: expected 12"; fail=1; fi
# vmc's own kernel is generated for the mixer's six skinny products of every layer (x_proj and dt_proj forward,
# input and weight gradients) in bf16, to be timed against cuBLASLt's, and on sm_90 the Hopper GEMM for the 83
# forward products x W^T that are not skinny and every input gradient dy W (A B: 106, the mixer's tall ones
# included), with VMC_HOPPER_GEMM_WGRAD=1 the weight gradients dy^T x too (all 320) (VMC_HOPPER_GEMM=0 or another
# architecture: the 72 skinny ones); none in fp32
n=$(grep -oP '[0-9]+(?= GEMMs with vmc.s own kernel)' "$VMC_CACHE/groups.log" || true)
echo "arm_b_pretrain training: ${n:-no} GEMM(s) with an own kernel"
if [ "$n" != 237 ]; then echo "FAILED: expected 237 (107 A B^T, 106 A B, 24 A^T B)"; fail=1; fi
n=$(VMC_HOPPER_GEMM_WGRAD=1 "$vmc" compile "$root/models/arm_b.vmc" --model arm_b_pretrain --train --bf16 --no-nvrtc 2>&1 |
      grep -oP '[0-9]+(?= GEMMs with vmc.s own kernel)' || true)
echo "arm_b_pretrain training, VMC_HOPPER_GEMM_WGRAD=1: ${n:-no} GEMM(s) with an own kernel"
if [ "$n" != 320 ]; then echo "FAILED: expected 320"; fail=1; fi
for case in "0 sm_90" "1 sm_80"; do
    n=$(VMC_HOPPER_GEMM=${case% *} "$vmc" compile "$root/models/arm_b.vmc" --model arm_b_pretrain --train --bf16 \
          --no-nvrtc --arch "${case#* }" 2>&1 | grep -oP '[0-9]+(?= GEMMs with vmc.s own kernel)' || true)
    echo "arm_b_pretrain training, VMC_HOPPER_GEMM=${case% *} --arch ${case#* }: ${n:-no} GEMM(s) with an own kernel"
    if [ "$n" != 72 ]; then echo "FAILED: expected 72"; fail=1; fi
done
n=$("$vmc" compile "$root/models/arm_b.vmc" --model arm_b_pretrain --train --no-nvrtc 2>&1 | grep -oP '[0-9]+(?= GEMMs with vmc.s own kernel)' || true)
if [ "$n" != 0 ]; then echo "FAILED: $n own GEMM kernels in fp32, expected 0"; fail=1; fi
# ARM-B fine-tuning's 4 scan directions convolve in_proj's x through 4 row orders: one launch a layer reads it
# once for all four (conv_multi.c)
"$vmc" compile "$root/models/arm_b.vmc" --model arm_b_ft224 --bf16 --no-nvrtc --dump-launches > "$VMC_CACHE/launches.log" 2>&1
n=$(grep -c 'vmc_conv1d_fwd_multi' "$VMC_CACHE/launches.log" || true)
m=$(grep -c 'vmc_conv1d_fwd ' "$VMC_CACHE/launches.log" || true)
echo "arm_b_ft224 inference: $n four-direction conv1d launch(es), $m single"
if [ "$n" != 12 ] || [ "$m" != 0 ]; then echo "FAILED: expected 12 and 0"; fail=1; fi
# ... and `vmc compile` reads the program's knobs as the cuda backend does (program_knobs.c): VMC_CONV_MULTI=0, a
# launch each
VMC_CONV_MULTI=0 "$vmc" compile "$root/models/arm_b.vmc" --model arm_b_ft224 --bf16 --no-nvrtc --dump-launches > "$VMC_CACHE/launches.log" 2>&1
n=$(grep -c 'vmc_conv1d_fwd_multi' "$VMC_CACHE/launches.log" || true)
m=$(grep -c 'vmc_conv1d_fwd ' "$VMC_CACHE/launches.log" || true)
echo "arm_b_ft224 inference, VMC_CONV_MULTI=0: $n four-direction conv1d launch(es), $m single"
if [ "$n" != 0 ] || [ "$m" != 48 ]; then echo "FAILED: expected 0 and 48"; fail=1; fi
# Their backwards are one launch a layer too, summing the directions' dx (conv_multi.c): 36 of ARM-B fine-tuning's
# 48 conv1d backwards are elided; with VMC_CONV_MULTI_BWD=0 none, and every kernel of that step compiles
n=$("$vmc" compile "$root/models/arm_b.vmc" --model arm_b_ft224 --train --bf16 --no-nvrtc --dump-groups 2>&1 | grep -c "computed by another conv1d's launch" || true)
echo "arm_b_ft224 training: $n conv1d launches elided"
if [ "$n" != 72 ]; then echo "FAILED: expected 72 (36 forward, 36 backward)"; fail=1; fi
n=$(VMC_CONV_MULTI_BWD=0 "$vmc" compile "$root/models/arm_b.vmc" --model arm_b_ft224 --train --bf16 --no-nvrtc --dump-groups 2>&1 | grep -c "computed by another conv1d's launch" || true)
echo "arm_b_ft224 training, VMC_CONV_MULTI_BWD=0: $n conv1d launches elided"
if [ "$n" != 36 ]; then echo "FAILED: expected 36 (the forwards)"; fail=1; fi
VMC_CONV_MULTI_BWD=0 run "$root/models/arm_b.vmc" --arch sm_90 --model arm_b_ft224 --train --bf16
# A packed backward output counts the parts its launch writes: ARM-B fine-tuning's scan backward (B 128, L 197, D 768,
# N 16, ungated) writes du and ddelta as bf16 copies only, 2 x 2 BLD bytes, and its f32 sums dA_log, dB, dC, dD and
# ddelta_bias, 4 (DN + 2 BLN + 2D): 80.75 MB; each conv1d backward its dx copy and dw, db: 2 BLD + 4 (4D + D), 38.75 MB
VMC_CONV_MULTI_BWD=0 "$vmc" compile "$root/models/arm_b.vmc" --model arm_b_ft224 --train --bf16 --no-nvrtc --dump-launches > "$VMC_CACHE/ft.log" 2>&1
s=$(grep -m1 ' vmc_scan_bwd ' "$VMC_CACHE/ft.log" | awk '{print $NF}')
c=$(grep -m1 ' vmc_conv1d_bwd ' "$VMC_CACHE/ft.log" | awk '{print $NF}')
echo "arm_b_ft224 training: the scan backward writes $s MB, a conv1d backward $c MB"
if [ "$s" != 80.75 ] || [ "$c" != 38.75 ]; then echo "FAILED: expected 80.75 and 38.75"; fail=1; fi
# ARM-B pretraining's decoder attention is one launch a block each way (attention.cuh): 4 forwards, 4 backwards
# writing dq, dk and dv as bf16 copies only (3 x 2 x 16384 x 512 bytes: 50.33 MB); spelt out (attn "explicit"), none
"$vmc" compile "$root/models/arm_b.vmc" --model arm_b_pretrain --set batch=128 --train --bf16 --no-nvrtc --dump-launches > "$VMC_CACHE/pt.log" 2>&1
n=$(grep -c ' vmc_attn_fwd ' "$VMC_CACHE/pt.log" || true)
m=$(grep -c ' vmc_attn_bwd ' "$VMC_CACHE/pt.log" || true)
w=$(grep -m1 ' vmc_attn_bwd ' "$VMC_CACHE/pt.log" | awk '{print $NF}')
echo "arm_b_pretrain training: $n attention forwards, $m backwards writing $w MB"
if [ "$n" != 4 ] || [ "$m" != 4 ] || [ "$w" != 50.33 ]; then echo "FAILED: expected 4, 4 and 50.33"; fail=1; fi
n=$("$vmc" compile "$root/models/arm_b.vmc" --model arm_b_pretrain --set 'attn="explicit"' --train --bf16 --no-nvrtc --dump-launches 2>&1 | grep -c ' vmc_attn_' || true)
echo "arm_b_pretrain training, attn \"explicit\": $n attention launches"
if [ "$n" != 0 ]; then echo "FAILED: expected 0"; fail=1; fi
# --dump-launches lists every launch of the step once, in order: as many lines as the summary counts
"$vmc" compile "$root/models/tiny.vmc" --model tiny_pretrain --train --bf16 --no-nvrtc --dump-launches > "$VMC_CACHE/launches.log" 2>&1
want=0
for n in $(grep -oP 'in \K[0-9]+(?= launches)|[0-9]+(?= GEMMs,)|[0-9]+(?= memsets)|[0-9]+(?= copies)|[0-9]+(?= SwiGLU launches)' "$VMC_CACHE/launches.log"); do
    want=$((want + n))
done
got=$(grep -cE '^L[0-9]+ ' "$VMC_CACHE/launches.log" || true)
last=$(grep -oE '^L[0-9]+ ' "$VMC_CACHE/launches.log" | tail -1 | tr -d 'L ')
echo "tiny_pretrain training: --dump-launches lists $got launch(es), the summary counts $want"
if [ "$got" != "$want" ] || [ "$last" != $((want - 1)) ]; then echo "FAILED: launch list"; fail=1; fi
# ... and ends with the per-class totals of the step: the launches that are not `once`, and their bytes (a SwiGLU
# gate's one launch counted, not the three it stands for, each marked "(or one launch N)")
grep -q ' SwiGLU launches' "$VMC_CACHE/launches.log" || { echo "FAILED: no SwiGLU launch in tiny_pretrain's training step"; fail=1; }
sums=$(awk '/^L[0-9]+ / && !/once, not per step/ && !/\(or one launch / {n++; r += $(NF-1); w += $NF} END {printf "%d %.2f %.2f", n, r / 1e3, w / 1e3}' "$VMC_CACHE/launches.log")
total=$(awk '$1 == "total" {printf "%d %.2f %.2f", $2, $3, $4}' "$VMC_CACHE/launches.log")
echo "tiny_pretrain training: per-class totals '$total', the launch lines sum to '$sums'"
if [ -z "$total" ] || [ "$total" != "$sums" ]; then echo "FAILED: per-class totals"; fail=1; fi
# SwiGLU's backward as one launch (VMC_SWIGLU_BWD=1, program_swiglu.c): one for each of ARM-B pretraining's 12 MLPs,
# its two parts marked, beside the default's one launch for the gate (three parts) and for the input gradient's
# two products (program_pair.c: two parts); the per-class totals count them instead of their parts
VMC_SWIGLU_BWD=1 "$vmc" compile "$root/models/arm_b.vmc" --model arm_b_pretrain --set batch=128 --train --bf16 --no-nvrtc --dump-launches > "$VMC_CACHE/ptb.log" 2>&1
n=$(grep -oP '[0-9]+(?= SwiGLU backward launches)' "$VMC_CACHE/ptb.log" || true)
l=$(grep -cE '^L[0-9]+ .* swiglu backward ' "$VMC_CACHE/ptb.log" || true)
parts=$(grep -cE '^L[0-9]+ .*\(or one launch ' "$VMC_CACHE/ptb.log" || true)
sums=$(awk '/^L[0-9]+ / && !/once, not per step/ && !/\(or one launch / {n++; r += $(NF-1); w += $NF} END {printf "%d %.2f %.2f", n, r / 1e3, w / 1e3}' "$VMC_CACHE/ptb.log")
total=$(awk '$1 == "total" {printf "%d %.2f %.2f", $2, $3, $4}' "$VMC_CACHE/ptb.log")
pairs=$(grep -oP '[0-9]+(?= sums of two products in one launch)' "$VMC_CACHE/ptb.log" || true)
lp=$(grep -cE '^L[0-9]+ .* A B \+ A2 B2 \(own\)' "$VMC_CACHE/ptb.log" || true)
echo "arm_b_pretrain training, VMC_SWIGLU_BWD=1: $n SwiGLU backward launches ($l listed), $pairs pairs ($lp listed), $parts parts; totals '$total', lines '$sums'"
if [ "$n" != 12 ] || [ "$l" != 12 ] || [ "$pairs" != 12 ] || [ "$lp" != 12 ] ||
    [ "$parts" != $((12 * 3 + 12 * 2 + 12 * 2)) ] || [ "$total" != "$sums" ]; then
    echo "FAILED: expected 12 backward launches and 12 pairs, 84 parts, totals as the lines"; fail=1
fi
# ... and with its floor: each launch at the largest of its GEMM work, bytes and special-function work at --rates.
# With two rates out of reach the floor is the third kind of work alone: the GEMM work at 1 TFLOP/s (GFLOP ms), the
# bytes at 1 TB/s (GB ms), the scans' special-function work at 1 T/s.
floor() {   # rates -> "floor GEMM-bound memory-bound special-function-bound" (ms)
    "$vmc" compile "$root/models/tiny.vmc" --model tiny_pretrain --train --bf16 --no-nvrtc --dump-launches --rates "$1" 2>&1 |
        grep -oP '^floor at .*: \K[0-9.]+ ms a step \(GEMM-bound [0-9.]+, memory-bound [0-9.]+, special-function-bound [0-9.]+' |
        tr -d 'a-zA-Z(),-' | tr -s ' '
}
gflop=$(grep -oP 'GEMM work per step: \K[0-9.]+' "$VMC_CACHE/launches.log")
gb=$(awk '$1 == "total" {print $3 + $4}' "$VMC_CACHE/launches.log")
read -r f1 g1 _ <<< "$(floor 1,1e9,1e9)"
read -r f2 _ m2 _ <<< "$(floor 1e9,1,1e9)"
read -r f3 _ _ s3 <<< "$(floor 1e9,1e9,1)"
echo "tiny_pretrain training: floors $f1 ms (GEMM work $gflop GFLOP at 1 TFLOP/s), $f2 ms ($gb GB at 1 TB/s), $f3 ms (special-function work at 1 T/s)"
awk -v f1="$f1" -v g1="$g1" -v gf="$gflop" -v f2="$f2" -v m2="$m2" -v gb="$gb" -v f3="$f3" -v s3="$s3" 'BEGIN {
    d = 0.011; ok = f1 - gf < d && gf - f1 < d && f1 == g1 && f2 - gb < 0.02 && gb - f2 < 0.02 && f2 == m2 && f3 > 0 && f3 == s3
    exit !ok }' || { echo "FAILED: floor"; fail=1; }
# ... and what launches side by side could reach: the longest dependency path, all GEMM work, all bytes, all
# special-function work at the rates, the largest of them. With GEMM work alone counted, all of it is the floor and
# the bound; with bytes alone, all bytes are (every launch declares some), and the path is shorter than the launches
# one after another (the weight gradients and the optimizer's updates wait for no data-gradient launch).
side() {   # rates -> "bound path gemm bytes special-function" (ms)
    "$vmc" compile "$root/models/tiny.vmc" --model tiny_pretrain --train --bf16 --no-nvrtc --dump-launches --rates "$1" 2>&1 |
        grep -oP '^with launches side by side: at least \K[0-9.]+ ms a step \(the longest dependency path [0-9.]+; all GEMM work [0-9.]+, all bytes [0-9.]+, all special-function work [0-9.]+' |
        tr -d 'a-zA-Z(),;-' | tr -s ' '
}
read -r b1 p1 w1 _ <<< "$(side 1,1e9,1e9)"
read -r b2 p2 _ y2 _ <<< "$(side 1e9,1,1e9)"
echo "tiny_pretrain training, side by side: GEMM work alone $b1 ms (path $p1), bytes alone $b2 ms (path $p2)"
awk -v f1="$f1" -v b1="$b1" -v p1="$p1" -v w1="$w1" -v f2="$f2" -v b2="$b2" -v p2="$p2" -v y2="$y2" 'BEGIN {
    ok = b1 != "" && w1 == f1 && b1 == w1 && p1 <= f1 && y2 == f2 && b2 == y2 && p2 < 0.9 * f2
    exit !ok }' || { echo "FAILED: floor with launches side by side"; fail=1; }
"$vmc" compile "$root/models/tiny.vmc" --model tiny_pretrain --dump-launches --rates 1,2 > /dev/null 2>&1 && { echo "FAILED: --rates 1,2 accepted"; fail=1; }
if [ "$fail" != 0 ]; then echo "some models failed to compile"; exit 1; fi
echo "all models compiled"
