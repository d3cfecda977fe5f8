#!/usr/bin/env bash
# test_sass_loops.sh — scripts/sass_loops.py on a small listing in cuobjdump -sass's form: each kernel's instruction
# count, its loops from their backward branches (nested ones included in the outer count, a kernel's final
# self-branch not a loop), opcodes without modifiers or predicates; and a clear error for text that is no listing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
cat > "$t/k.sass" <<'SASS'
	code for sm_90
		Function : k_outer
	.headerflags	@"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                     /* 0x00000a00ff017b82 */
                                                                              /* 0x000ff00000000800 */
        /*0010*/                   FMUL R2, R3, R4 ;                          /* 0x0000000403027220 */
        /*0020*/                   MUFU.EX2 R5, R2 ;                          /* 0x0000000200057308 */
        /*0030*/                   FFMA R6, R5, R6, R7 ;                      /* 0x0000000605067223 */
        /*0040*/               @P1 BRA 0x20 ;                                 /* 0xfffffff800141947 */
        /*0050*/                   SHFL.BFLY PT, R8, R6, 0x10, 0x1f ;         /* 0x0000000000000000 */
        /*0060*/              @!P0 BRA 0x10 ;                                 /* 0xfffffff800141947 */
        /*0070*/                   EXIT ;                                     /* 0x000000000000794d */
        /*0080*/                   BRA 0x80;                                  /* 0xfffffff000007947 */
		Function : k_flat
        /*0000*/                   STG.E desc[UR4][R2.64], R1 ;               /* 0x0000000102007986 */
        /*0010*/                   EXIT ;                                     /* 0x000000000000794d */
SASS
out=$(python3 "$root/scripts/sass_loops.py" "$t/k.sass")
echo "$out"
fail() { echo "test_sass_loops: $1" >&2; exit 1; }
grep -q "^k_outer: 9 instructions$" <<< "$out" || fail "instruction count of k_outer"
grep -Eq "^  loop 0x0010-0x0060: +6 instructions: BRA 2 FMUL 1 MUFU 1 FFMA 1 SHFL 1$" <<< "$out" || fail "outer loop"
grep -Eq "^  loop 0x0020-0x0040: +3 instructions: MUFU 1 FFMA 1 BRA 1$" <<< "$out" || fail "inner loop"
[ "$(grep -c "loop" <<< "$out")" = 2 ] || fail "the final self-branch counted as a loop"
grep -q "^k_flat: 2 instructions$" <<< "$out" || fail "second kernel"
echo "no functions here" > "$t/bad.sass"
if python3 "$root/scripts/sass_loops.py" "$t/bad.sass" 2> "$t/err"; then fail "accepted text that is no listing"; fi
grep -q "no 'Function :' in the listing" "$t/err" || fail "error message: $(cat "$t/err")"
echo "test_sass_loops: ok"
