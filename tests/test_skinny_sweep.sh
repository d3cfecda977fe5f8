#!/bin/bash
# test_skinny_sweep.sh — scripts/skinny_sweep.sh without a GPU: a stand-in "vmc" prints the GEMM tuning lines of
# `vmc bench` with times that depend on VMC_SKINNY_GEMM, and the table must hold them per shape and configuration,
# each configuration in its own empty cache; a failing configuration is reported with its message.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/vmc_skinny_sweep_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat > "$T/vmc" <<'SH'
#!/bin/bash
case "$*" in *"--model arm_b_ft224 --batch 128 --train --steps 2 --warmup 0 --top 0"*) ;;
    *) echo "unexpected arguments: $*" >&2; exit 3 ;; esac
[ "$VMC_GEMM_LOG" = 1 ] || { echo "VMC_GEMM_LOG not set" >&2; exit 3; }
[ -e "$VMC_CACHE" ] && { echo "cache $VMC_CACHE not empty" >&2; exit 3; }
mkdir -p "$VMC_CACHE"
tile=${VMC_SKINNY_GEMM%%,*}
[ "$tile" = 99 ] && { echo "vmc bench: no usable GPU" >&2; exit 2; }
echo "gemm tune: gemm_25216x80x768_tb: cuBLASLt 19.0 us (best of 8), own kernel $tile.5 us: cuBLASLt"
echo "gemm tune: gemm_80x768x25216_ta: cuBLASLt 22.0 us (best of 8), own kernel 58.5 us: cuBLASLt"
echo "  step 67.0 ms, 1910.0 images/s"
SH
chmod +x "$T/vmc"
out=$(bash "$root/scripts/skinny_sweep.sh" "$T" arm_b_ft224 128,32,4,264,0 64,64,4,264,1 2>&1); rc=$?
[ $rc = 0 ] || fail "skinny_sweep.sh: exit $rc: $out"
grep -qF '| µs a call | 25216x80x768_tb | 80x768x25216_ta |' <<< "$out" || fail "header: $out"
grep -qF '| cuBLASLt (first config'"'"'s run) | 19.0 | 22.0 |' <<< "$out" || fail "cuBLASLt row: $out"
grep -qF '| own 128,32,4,264,0 | 128.5 | 58.5 |' <<< "$out" || fail "first config's row: $out"
grep -qF '| own 64,64,4,264,1 | 64.5 | 58.5 |' <<< "$out" || fail "second config's row: $out"
out=$(bash "$root/scripts/skinny_sweep.sh" "$T" arm_b_ft224 99,32,4,264,0 64,64,4,264,1 2>&1)
grep -q "config 99,32,4,264,0: vmc bench failed" <<< "$out" && grep -q "no usable GPU" <<< "$out" ||
    fail "a failing configuration is reported: $out"
grep -qF '| own 64,64,4,264,1 | 64.5 | 58.5 |' <<< "$out" || fail "the other configuration still runs: $out"
bash "$root/scripts/skinny_sweep.sh" > /dev/null 2>&1 && fail "no build folder accepted"
[ $fails = 0 ] && echo "test_skinny_sweep.sh: all passed" || { echo "test_skinny_sweep.sh: $fails failure(s)"; exit 1; }
