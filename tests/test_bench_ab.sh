#!/bin/bash
# test_bench_ab.sh — scripts/bench_ab.sh without a GPU: stand-in "vmc" commands print a bench line (or fail), and the
# table must hold each variant's step times round by round, in the order run; with -k, each step's kernels side by
# side (averaged over the rounds, "-" where a variant's list lacks one); bad step names are refused.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/vmc_bench_ab_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# a stand-in vmc: the step time comes from a counter file, so each call prints the next number; VMC_FAKE_FAIL fails
cat > "$T/vmc" <<'SH'
#!/bin/bash
[ -n "${VMC_FAKE_FAIL:-}" ] && { echo "vmc bench: no usable GPU" >&2; exit 2; }
n=$(cat "$COUNTER" 2>/dev/null || echo 0); echo $((n + 1)) > "$COUNTER"
case "$*" in *"--model arm_b_pretrain --batch 128 --train --steps 7 --top "[03]*|*"--model arm_b_ft224 --batch 128 --train --steps 7 --top "[03]*) ;;
    *) echo "unexpected arguments: $*" >&2; exit 3 ;; esac
echo "  step $((30 + n)).5 ms, 4000.0 images/s (CUDA graph over 8 streams)"
case "$*" in *"--top 3"*)   # the scan backward's time is the call's number; variant B (VMC_X) lists no k2
    echo "  slowest kernels (per step; GB/s: the memory each launch declares, whole buffers, over its time):"
    echo "    vmc_scan_bwd x48 $n.000 ms 818 GB/s 6/SM, gemm_25216x768x48 x48 1.250 ms 2000 GB/s, k1_add x1 0.500 ms 100 GB/s 4/SM"
    [ -z "${VMC_X:-}" ] && echo "    k2_mul x2 0.100 ms 10 GB/s"
    echo "  compile: cold 1.00 s" ;;
esac
SH
chmod +x "$T/vmc"
export COUNTER=$T/counter
out=$(bash "$root/scripts/bench_ab.sh" -r 2 -s 7 "A=$T/vmc" "B=VMC_X=1 $T/vmc" 2>"$T/err"); rc=$?
[ $rc = 0 ] || fail "bench_ab.sh: exit $rc: $(cat "$T/err")"
# run order: round 1 pt A B, ft A B; round 2 pt A B, ft A B -> A pt 30.5 / 34.5, ft 32.5 / 36.5; B pt 31.5 / 35.5 ...
grep -qE '^A +\| 30\.5 / 34\.5 +\| 32\.5 / 36\.5' <<< "$out" || fail "row A: $out"
grep -qE '^B +\| 31\.5 / 35\.5 +\| 33\.5 / 37\.5' <<< "$out" || fail "row B: $out"
[ "$(grep -c 'round' "$T/err")" = 8 ] || fail "progress lines: $(cat "$T/err")"
# -k: run order pt A (call 8), B (9), round 2 pt A (10), B (11): scan backward A 9.000, B 10.000
echo 8 > "$COUNTER"
out=$(bash "$root/scripts/bench_ab.sh" -r 2 -s 7 -w pt -k 3 "A=$T/vmc" "B=VMC_X=1 $T/vmc" 2>"$T/err"); rc=$?
[ $rc = 0 ] || fail "bench_ab.sh -k: exit $rc: $(cat "$T/err")"
grep -qE '^pt kernels, eager ms a step +\| A +\| B' <<< "$out" || fail "-k heading: $out"
grep -qE '^vmc_scan_bwd +\| 9\.000 +\| 10\.000' <<< "$out" || fail "-k scan backward row: $out"
grep -qE '^gemm_25216x768x48 +\| 1\.250 +\| 1\.250' <<< "$out" || fail "-k GEMM row: $out"
grep -qE '^k2_mul +\| 0\.100 +\| -' <<< "$out" || fail "-k a kernel one variant lacks: $out"
[ "$(grep -A1 'pt kernels' <<< "$out" | tail -1 | cut -d' ' -f1)" = vmc_scan_bwd ] || fail "-k order: $out"
out=$(VMC_FAKE_FAIL=1 bash "$root/scripts/bench_ab.sh" -r 1 -w pt "A=$T/vmc" 2>"$T/err")
grep -qE '^A +\| FAIL' <<< "$out" || fail "a failing run shows FAIL: $out"
grep -q "no usable GPU" "$T/err" || fail "a failing run's message is passed on: $(cat "$T/err")"
bash "$root/scripts/bench_ab.sh" -w xyz "A=$T/vmc" >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "unknown step 'xyz'" "$T/err" || fail "bad -w: exit $rc, $(cat "$T/err")"
bash "$root/scripts/bench_ab.sh" >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] && grep -q "usage" "$T/err" || fail "no variants: exit $rc, $(cat "$T/err")"
[ $fails = 0 ] && echo "test_bench_ab.sh: all passed" || { echo "test_bench_ab.sh: $fails failure(s)"; exit 1; }
