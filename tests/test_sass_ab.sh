#!/usr/bin/env bash
# test_sass_ab.sh — scripts/sass_ab.sh on the tiny models (no GPU; NVRTC; no cuobjdump, which CI may not fetch:
# its SASS counts come from sass_loops.py, tested by test_sass_loops.sh):
# against an unchanged copy of the templates no kernel is marked changed; against a copy whose scan forward reads
# fewer rows ahead (SCAN_PF 2) the scan forward is marked and its registers are listed, every other kernel is not;
# a bad revision is refused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "test_sass_ab: $1" >&2; exit 1; }
export VMC=${VMC:?the vmc to test (ctest sets it)} VMC_MODEL_FILE=$root/models/tiny.vmc CUOBJDUMP=none
cp -r "$root/codegen/templates" "$t/same"
out=$(bash "$root/scripts/sass_ab.sh" "$t/same" tiny_pretrain tiny_ft 2>&1) || fail "unchanged copy: $out"
echo "$out"
grep -q '^k[0-9]*_vmc_scan_fwd.cu  *vmc_scan_fwd  *[0-9]* -> [0-9]*' <<< "$out" || fail "no scan forward line"
grep -q '^k[0-9]*_vmc_conv1d_fwd_multi.cu' <<< "$out" || fail "no multi-direction conv1d line (tiny_ft)"
grep -q '  \*$' <<< "$out" && fail "a kernel marked changed against an unchanged copy"
cp -r "$root/codegen/templates" "$t/pf2"
sed -i 's/^#define SCAN_PF 4 /#define SCAN_PF 2 /' "$t/pf2/selective_scan_fwd.cuh"
grep -q '^#define SCAN_PF 2 ' "$t/pf2/selective_scan_fwd.cuh" || fail "the test's edit did not apply"
out=$(bash "$root/scripts/sass_ab.sh" "$t/pf2" tiny_pretrain 2>&1) || fail "edited copy: $out"
echo "$out"
grep -qE '^k[0-9]*_vmc_scan_fwd.cu +vmc_scan_fwd .*  \*$' <<< "$out" || fail "the scan forward not marked changed"
[ "$(grep -c '  \*$' <<< "$out")" = 1 ] || fail "kernels other than the scan forward marked changed"
if bash "$root/scripts/sass_ab.sh" no-such-revision > "$t/bad" 2>&1; then fail "a bad revision accepted"; fi
grep -q "neither a folder nor a revision" "$t/bad" || fail "the bad revision's message: $(cat "$t/bad")"
echo "test_sass_ab: ok"
