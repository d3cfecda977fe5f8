#!/usr/bin/env bash
# bench_ab.sh [-r ROUNDS] [-s STEPS] [-w WHICH] LABEL=COMMAND... — same-run comparison of vmc builds or settings on a
# GPU: each round runs `COMMAND bench` of every variant in turn (alternating, so clock and power drift hit all
# alike) for each step in WHICH (default "pt ft": ARM-B pretraining 192 px b128, 4-scan fine-tuning 224 b128;
# "inf": inference 224 b256), then prints each variant's sustained ms per step, round by round.
# COMMAND is run by bash: 'A=gpu-carry/vA/vmc' 'B=VMC_INTO_PLACE=0 gpu-carry/vmc' both work.
set -uo pipefail
rounds=2 steps=20 which="pt ft"
while getopts "r:s:w:" o; do
    case $o in
    r) rounds=$OPTARG ;;
    s) steps=$OPTARG ;;
    w) which=$OPTARG ;;
    *) echo "usage: $0 [-r ROUNDS] [-s STEPS] [-w 'pt ft inf'] LABEL=COMMAND..." >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-r ROUNDS] [-s STEPS] [-w 'pt ft inf'] LABEL=COMMAND..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
args_of() {
    case $1 in
    pt) echo "models/arm_b.vmc --model arm_b_pretrain --batch 128 --train" ;;
    ft) echo "models/arm_b.vmc --model arm_b_ft224 --batch 128 --train" ;;
    inf) echo "models/arm_b.vmc --model arm_b_ft224 --batch 256 --infer" ;;
    esac
}
for w in $which; do
    case $w in pt | ft | inf) ;; *) echo "$0: unknown step '$w' (pt, ft or inf)" >&2; exit 2 ;; esac
done
declare -A ms   # ms[label,step] = "r1 / r2 ..."
for ((r = 1; r <= rounds; r++)); do
    for w in $which; do
        for v in "$@"; do
            label=${v%%=*} cmd=${v#*=}
            out=$(bash -c "$cmd bench $(args_of "$w") --steps $steps --top 0" 2>&1)
            t=$(grep -oP 'step \K[0-9.]+(?= ms)' <<< "$out" | head -1)
            if [ -n "$t" ]; then echo "round $r $w $label: $t ms" >&2
            else t=FAIL; echo "round $r $w $label: no step time; its last lines:" >&2; tail -3 <<< "$out" >&2; fi
            ms[$label,$w]="${ms[$label,$w]:+${ms[$label,$w]} / }$t"
        done
    done
done
printf '%-24s' "ms per step"
for w in $which; do printf ' | %-28s' "$w"; done
echo
for v in "$@"; do
    label=${v%%=*}
    printf '%-24s' "$label"
    for w in $which; do printf ' | %-28s' "${ms[$label,$w]}"; done
    echo
done
