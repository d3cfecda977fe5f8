#!/usr/bin/env bash
# scan_profile.sh [BUILD_DIR] [bwd|fwd] — on a GPU machine with Nsight Compute (ncu): profiles one selective-scan
# kernel at ARM-B fine-tuning shapes (B128 L197 D768, bf16 inputs, saved chunk states: `test_scan_gpu --profile`)
# and prints its duration, issue rate and occupancy, the stall reasons per issued instruction, and the instruction
# mix per element with the loop bodies' sizes (scan_profile.py). With VMC_TEMPLATE_DIR set it profiles that
# variant of the templates. The report and its exports stay in $PROFILE_OUT (default: a new temporary folder).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$root/build-cuda2}
kernel=${2:-bwd}
case $kernel in bwd|fwd) ;; *) echo "scan_profile.sh: the kernel is bwd or fwd, not '$kernel'" >&2; exit 2 ;; esac
command -v ncu >/dev/null || { echo "scan_profile.sh: needs Nsight Compute's ncu on the PATH" >&2; exit 2; }
[ -x "$B/tests/test_scan_gpu" ] || { echo "scan_profile.sh: no $B/tests/test_scan_gpu (build it first)" >&2; exit 2; }
source "$root/scripts/gpu_env.sh"
out=${PROFILE_OUT:-$(mktemp -d)}
mkdir -p "$out"
rep="$out/scan_$kernel"
# clocks left as they are (a lent machine's settings are not ours to change)
if ! ncu --clock-control none -k "regex:vmc_scan_$kernel" -c 1 --section SpeedOfLight --section Occupancy \
       --section ComputeWorkloadAnalysis --section InstructionStats --section WarpStateStats --section SourceCounters \
       -f -o "$rep" "$B/tests/test_scan_gpu" --profile > "$out/ncu.log" 2>&1; then
    tail -5 "$out/ncu.log"; exit 1
fi
ncu --import "$rep.ncu-rep" --print-details all > "$out/details.txt" 2>&1
ncu --import "$rep.ncu-rep" --page source --print-source sass --csv > "$out/source.csv" 2>&1
echo "== vmc_scan_$kernel, B128 L197 D768 bf16 (report: $rep.ncu-rep)"
grep -E "^ +(Duration|Executed Ipc Active|Issue Slots Busy|Theoretical Occupancy|Achieved Active Warps Per SM|Block Limit Registers|Block Limit Shared Mem|Registers Per Thread) " "$out/details.txt" | tr -s ' '
echo "== cycles per issued instruction, by warp state"
grep -E "^ +(Selected|Stall [A-Za-z ]+) +inst +[0-9.]+$" "$out/details.txt" | tr -s ' ' || echo "(no warp-state table in the details)"
echo "== instruction mix"
python3 "$root/scripts/scan_profile.py" "$out/source.csv" $((128 * 197 * 768))
