#!/usr/bin/env bash
# bench_ab.sh [-r ROUNDS] [-s STEPS] [-w WHICH] [-k N] LABEL=COMMAND... — same-run comparison of vmc builds or
# settings on a GPU: each round runs `COMMAND bench` of every variant in turn (alternating, so clock and power drift
# hit all alike) for each step in WHICH (default "pt ft": ARM-B pretraining 192 px b128, 4-scan fine-tuning 224 b128;
# "inf": inference 224 b256), then prints each variant's sustained ms per step, round by round. With -k N, also the
# N slowest kernels of each (`vmc bench --top N`, eager) side by side, ms a step averaged over the rounds.
# COMMAND is run by bash: 'A=gpu-carry/vA/vmc' 'B=VMC_INTO_PLACE=0 gpu-carry/vmc' both work.
set -uo pipefail
rounds=2 steps=20 which="pt ft" top=0
usage="usage: $0 [-r ROUNDS] [-s STEPS] [-w 'pt ft inf'] [-k KERNELS] LABEL=COMMAND..."
while getopts "r:s:w:k:" o; do
    case $o in
    r) rounds=$OPTARG ;;
    s) steps=$OPTARG ;;
    w) which=$OPTARG ;;
    k) top=$OPTARG ;;
    *) echo "$usage" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
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
declare -A kms kruns kseen   # per label, step and kernel: eager ms summed over rounds, rounds seen; kernels per step
# The "slowest kernels" list of one bench output as "name ms" lines (entries "NAME xCALLS MS ms G GB/s[ B/SM]").
kernels_of() {
    awk '/^  slowest kernels/ { f = 1; next } f && /^    / { print; next } f { exit }' <<< "$1" | tr ',' '\n' |
        awk 'NF >= 3 && $4 == "ms" { print $1, $3 }'
}
for ((r = 1; r <= rounds; r++)); do
    for w in $which; do
        for v in "$@"; do
            label=${v%%=*} cmd=${v#*=}
            out=$(bash -c "$cmd bench $(args_of "$w") --steps $steps --top $top" 2>&1)
            t=$(grep -oP 'step \K[0-9.]+(?= ms)' <<< "$out" | head -1)
            one=$(grep -oP 'SwiGLU: \K[0-9]+ of [0-9]+' <<< "$out" | head -1)   # (one-kernel launches chosen)
            if [ -n "$t" ]; then echo "round $r $w $label: $t ms${one:+ (SwiGLU one-kernel launches: $one)}" >&2
            else t=FAIL; echo "round $r $w $label: no step time; its last lines:" >&2; tail -3 <<< "$out" >&2; fi
            ms[$label,$w]="${ms[$label,$w]:+${ms[$label,$w]} / }$t"
            while read -r kname kt; do
                [ -n "$kname" ] || continue
                kms[$label,$w,$kname]=$(awk -v a="${kms[$label,$w,$kname]:-0}" -v b="$kt" 'BEGIN { print a + b }')
                kruns[$label,$w,$kname]=$((${kruns[$label,$w,$kname]:-0} + 1))
                [[ " ${kseen[$w]:-} " == *" $kname "* ]] || kseen[$w]="${kseen[$w]:-} $kname"
            done <<< "$(kernels_of "$out")"
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
[ "$top" -gt 0 ] || exit 0
for w in $which; do   # each step's kernels, the first variant's slowest first; "-": not in that variant's list
    echo
    printf '%-40s' "$w kernels, eager ms a step"
    for v in "$@"; do printf ' | %-10s' "${v%%=*}"; done
    echo
    first=${1%%=*}
    for kname in ${kseen[$w]:-}; do
        n=${kruns[$first,$w,$kname]:-0}
        awk -v s="${kms[$first,$w,$kname]:-0}" -v n="$n" -v k="$kname" 'BEGIN { printf "%.6f %s\n", n ? s / n : -1, k }'
    done | sort -rn | while read -r _ kname; do
        printf '%-40s' "$kname"
        for v in "$@"; do
            l=${v%%=*} n=${kruns[${v%%=*},$w,$kname]:-0}
            if [ "$n" -gt 0 ]; then printf ' | %-10s' "$(awk -v s="${kms[$l,$w,$kname]}" -v n="$n" 'BEGIN { printf "%.3f", s / n }')"
            else printf ' | %-10s' "-"; fi
        done
        echo
    done
done
