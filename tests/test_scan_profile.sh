#!/usr/bin/env bash
# test_scan_profile.sh — scripts/scan_profile.py on a small source page in ncu's CSV form: opcode shares, thread
# instructions per element and loop-body sizes, and a clear error for a file that is not such a page.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
cat > "$t/src.csv" <<'CSV'
"Kernel Name","vmc_scan_bwd",
"Address","Source","Warp Stall Sampling (All Samples)","Instructions Executed",
"0x10","FMUL R1, R2, R3","30","100",
"0x20","FFMA R1, R2, R3, R4","10","100",
"0x30","@!P0 FMUL R5, R6, R7","20","100",
"0x40","MUFU.EX2 R8, R9","40","100",
"0x50","STG.E [R2.64], R1","0","4",
CSV
out=$(python3 "$root/scripts/scan_profile.py" "$t/src.csv" 3200)
echo "$out"
fail() { echo "test_scan_profile: $1" >&2; exit 1; }
grep -q "^404 warp instructions executed = 4.0 thread instructions per element" <<< "$out" || fail "totals"
grep -Eq "^FMUL +49\.50 +50\.00 +2\.0$" <<< "$out" || fail "FMUL row (a predicated one counts under its opcode)"
grep -Eq "^MUFU +24\.75 +40\.00 +1\.0$" <<< "$out" || fail "MUFU row (the opcode without its modifiers)"
grep -Eq "^ +100:    4 instructions, +99\.0%$" <<< "$out" || fail "loop body of 4 instructions"
echo "not a csv" > "$t/bad.csv"
if python3 "$root/scripts/scan_profile.py" "$t/bad.csv" 3200 2> "$t/err"; then fail "accepted a file that is no source page"; fi
grep -q "bad.csv: no 'Source' and 'Instructions Executed' columns" "$t/err" || fail "error message: $(cat "$t/err")"
echo "test_scan_profile: ok"
