#!/usr/bin/env bash
# test_own_gemm_check.sh BUILD ROOT — [gpu] a wrong own GEMM kernel is caught before it runs: with a
# skinny_gemm.cuh and a hopper_gemm.cuh whose results are scaled by 1.5 (through VMC_TEMPLATE_DIR), VMC_OWN_GEMM=3 (the own kernel
# wherever it agrees with cuBLASLt) warns for every skinny product and leaves them to cuBLASLt (and SwiGLU's one
# launch to its GEMMs and gate, the input gradient's pair to its two GEMMs), so test_cuda_exec still matches the cpu backend; with the real template none is
# rejected. Exit 77 (skip) without a GPU.
set -uo pipefail
B=$1
ROOT=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$ROOT/codegen/templates" "$tmp/broken"
sed -i 's/o\[e\] = v\[e\] \* (float)(SG_ALPHA)/o[e] = 1.5f * v[e] * (float)(SG_ALPHA)/' "$tmp/broken/skinny_gemm.cuh"
grep -q '1.5f \* v\[e\]' "$tmp/broken/skinny_gemm.cuh" || { echo "FAIL: the template's store line changed: update the test"; exit 1; }
# and the Hopper GEMM's (sm_90: the forward products that are not skinny), the same way
# (its accumulators scaled at the end of each tile's main loop, whichever way they are stored)
sed -i 's/^    if (signal) vmc_mbar_arrive(&r.empty\[prev\]);$/&\n    for (int b = 0; b < HG_NB; b++) for (int i = 0; i < HG_BN \/ 2; i++) d[b][i] *= 1.5f;/' "$tmp/broken/hopper_gemm.cuh"
grep -q 'd\[b\]\[i\] \*= 1.5f' "$tmp/broken/hopper_gemm.cuh" || { echo "FAIL: the Hopper GEMM's main loop end changed: update the test"; exit 1; }
export VMC_ROOT=$ROOT VMC_OWN_GEMM=3
VMC_CACHE=$tmp/c1 VMC_TEMPLATE_DIR=$tmp/broken "$B/tests/test_cuda_exec" --quick > "$tmp/broken.log" 2>&1
rc=$?
if [ $rc = 77 ]; then echo "skipped: $(tail -1 "$tmp/broken.log")"; exit 77; fi
n=$(grep -c 'disagrees with cuBLASLt' "$tmp/broken.log")
# (SwiGLU's one launches, and its input gradient's pair, share the Hopper GEMM's main loop: their parts run instead)
sw=$(grep -c 'the one kernel .* disagrees' "$tmp/broken.log")
echo "broken own kernel: test_cuda_exec exit $rc, $n product(s) left to cuBLASLt, $sw SwiGLU launch(es) to their parts"
if [ $rc != 0 ] || [ "$n" = 0 ] || [ "$sw" = 0 ]; then tail -20 "$tmp/broken.log"; echo "FAILED"; exit 1; fi
VMC_CACHE=$tmp/c2 "$B/tests/test_cuda_exec" --quick > "$tmp/real.log" 2>&1
rc=$?
n=$(grep -c 'disagrees' "$tmp/real.log")
echo "real own kernel: test_cuda_exec exit $rc, $n product(s) left to cuBLASLt or SwiGLU parts"
if [ $rc != 0 ] || [ "$n" != 0 ]; then tail -20 "$tmp/real.log"; echo "FAILED"; exit 1; fi
echo ok
