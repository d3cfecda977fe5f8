#!/usr/bin/env bash
# scan_profile.sh [BUILD_DIR] [bwd|fwd|infer|ungated] — on a GPU machine with Nsight Compute (ncu): profiles one
# selective-scan kernel at ARM-B fine-tuning shapes (B128 L197 D768, bf16 inputs, saved chunk states: `test_scan_gpu
# --profile`; infer: the forward at the inference batch, B256 without states, bf16 out; ungated: the backward of a
# 4-direction mixer's scan, bf16 in and out)
# and prints its duration, issue rate and occupancy, the stall reasons per issued instruction, and the instruction
# mix per element with the loop bodies' sizes (scan_profile.py). With VMC_TEMPLATE_DIR set it profiles that
# variant of the templates. The report and its exports stay in $PROFILE_OUT (default: a new temporary folder).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$root/build-cuda2}
kernel=${2:-bwd}
case $kernel in bwd|fwd) shape=; elems=$((128 * 197 * 768)) ;; infer) kernel=fwd; shape=infer; elems=$((256 * 197 * 768)) ;;
  ungated) kernel=bwd; shape=ungated; elems=$((128 * 197 * 768)) ;;
  *) echo "scan_profile.sh: the kernel is bwd, fwd, infer or ungated, not '$kernel'" >&2; exit 2 ;; esac
command -v ncu >/dev/null || { echo "scan_profile.sh: needs Nsight Compute's ncu on the PATH" >&2; exit 2; }
[ -x "$B/tests/test_scan_gpu" ] || { echo "scan_profile.sh: no $B/tests/test_scan_gpu (build it first)" >&2; exit 2; }
source "$root/scripts/gpu_env.sh"
out=${PROFILE_OUT:-$(mktemp -d)}
mkdir -p "$out"
rep="$out/scan_$kernel"
# clocks left as they are (a lent machine's settings are not ours to change)
if ! ncu --clock-control none -k "regex:vmc_scan_$kernel" -c 1 --section SpeedOfLight --section Occupancy \
       --section ComputeWorkloadAnalysis --section InstructionStats --section WarpStateStats --section SourceCounters \
       -f -o "$rep" "$B/tests/test_scan_gpu" --profile $shape > "$out/ncu.log" 2>&1; then
    tail -5 "$out/ncu.log"; exit 1
fi
ncu --import "$rep.ncu-rep" --print-details all > "$out/details.txt" 2>&1
ncu --import "$rep.ncu-rep" --page source --print-source sass --csv > "$out/source.csv" 2>&1
echo "== vmc_scan_$kernel${shape:+ ($shape)}, B$((elems / 197 / 768)) L197 D768 bf16 (report: $rep.ncu-rep)"
grep -E "^ +(Duration|Executed Ipc Active|Issue Slots Busy|Theoretical Occupancy|Achieved Active Warps Per SM|Block Limit Registers|Block Limit Shared Mem|Registers Per Thread) " "$out/details.txt" | tr -s ' '
echo "== cycles per issued instruction, by warp state"
grep -E "^ +(Selected|Stall [A-Za-z ]+) +inst +[0-9.]+$" "$out/details.txt" | tr -s ' ' || echo "(no warp-state table in the details)"
echo "== instruction mix"
python3 "$root/scripts/scan_profile.py" "$out/source.csv" $elems
