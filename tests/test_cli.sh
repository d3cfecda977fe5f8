#!/bin/bash
# test_cli.sh — the command line of every vmc command: --help prints usage naming each of its flags and exits 0;
# every flag named there parses (`vmc CMD FLAG VALUE --help` still exits 0); an unknown flag prints one line naming
# it with a pointer to --help and exits 1 (a usage error, commands.h); malformed numbers and a bad template knob are
# named. Needs no data or GPU (models/tiny.vmc for the knob).
# usage: test_cli.sh VMC
set -u
VMC=$1
T=$(mktemp -d /tmp/vmc_cli_XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# COMMAND: its flags; a trailing ':' marks a flag that takes a value. bench's loader flags follow `--data PATH`.
declare -A FLAGS=(
  [check]="--dump-ast --set: -I:"
  [info]="--model: --json --set: -I:"
  [graph]="--model: --dot --set: -I:"
  [compile]="--model: --arch: --train --bf16 --dump-kernels: --dump-groups --dump-launches --rates: --no-nvrtc --ptxas-info
             --scan-recompute --threads: --set: -I:"
  [bench]="--model: --batch: --train --infer --fp32 --bf16 --steps: --top: --warmup: --scan-recompute --set: -I:"
  [grad]="--model: --weights: --inputs: --out: --backend: --precision: --set: --allow-missing"
  [pretrain]="--model: --recipe: --data: --out: --backend: --precision: --seed: --set: -I: --steps: --stop_at: --eval_steps:
              --resume: --init: --log_every: --ckpt_every: --keep: --batch_size: --epochs: --blr: --lr: --min_lr:
              --warmup_epochs: --weight_decay: --drop_path: --layer_decay: --ema_decay: --clip_grad: --threads: --quiet
              --scan-recompute"
  [eval]="--model: --recipe: --data: --out: --backend: --precision: --seed: --set: -I: --init: --resume: --steps: --ema
          --classes: --batch_size: --threads: --quiet"
)
FLAGS[finetune]=${FLAGS[pretrain]}
BENCH_DATA="--size: --threads: --batches: --batch: --eval --exact --randaugment --keep"

value_of() { case $1 in --set) echo a=1 ;; --arch) echo sm_90 ;; --rates) echo 1,1,1 ;; *) echo 1 ;; esac; }

# check_flags CMD HELP_FILE PREFIX... -- FLAGS...: each flag is in the help text and parses
check_flags() {
    local cmd=$1 help=$2; shift 2
    local pre=()
    while [ "$1" != -- ]; do pre+=("$1"); shift; done; shift
    for spec in "$@"; do
        local f=${spec%:} args=("${spec%:}")
        [ "$f" != "$spec" ] && args+=("$(value_of "$f")")
        grep -q -- "$f\b" "$help" || fail "vmc $cmd --help does not mention $f"
        "$VMC" "$cmd" "${pre[@]}" "${args[@]}" --help >"$T/flag.out" 2>&1; local rc=$?
        [ $rc = 0 ] || fail "vmc $cmd ${pre[*]} ${args[*]} --help: exit $rc: $(head -1 "$T/flag.out")"
    done
}

# vmc --help: every command listed
"$VMC" --help >"$T/help" 2>&1 || fail "vmc --help: exit $?"
for cmd in "${!FLAGS[@]}"; do grep -q "^  $cmd " "$T/help" || fail "vmc --help does not list $cmd"; done

for cmd in check info graph compile bench grad pretrain finetune eval; do
    "$VMC" "$cmd" --help >"$T/$cmd.help" 2>"$T/$cmd.err"; rc=$?
    [ $rc = 0 ] || fail "vmc $cmd --help: exit $rc"
    [ -s "$T/$cmd.err" ] && fail "vmc $cmd --help wrote to stderr: $(cat "$T/$cmd.err")"
    grep -q "^usage: vmc $cmd" "$T/$cmd.help" || fail "vmc $cmd --help: no usage line"
    "$VMC" "$cmd" -h >"$T/$cmd.h" 2>&1 && cmp -s "$T/$cmd.h" "$T/$cmd.help" || fail "vmc $cmd -h differs from --help"
    # shellcheck disable=SC2086
    check_flags "$cmd" "$T/$cmd.help" -- ${FLAGS[$cmd]}
    # an unknown flag: exit 1, nothing on stdout, one line on stderr naming it and --help
    "$VMC" "$cmd" --no-such-flag >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 1 ] || fail "vmc $cmd --no-such-flag: exit $rc (want 1)"
    [ -s "$T/out" ] && fail "vmc $cmd --no-such-flag wrote to stdout"
    [ "$(wc -l <"$T/err")" = 1 ] && grep -q -- "'--no-such-flag'.*vmc $cmd --help" "$T/err" \
        || fail "vmc $cmd --no-such-flag: want one line naming the flag and --help, got: $(cat "$T/err")"
    echo "ok: vmc $cmd: --help, $(echo ${FLAGS[$cmd]} | wc -w) flags, unknown flag: $(cat "$T/err")"
done
# shellcheck disable=SC2086
check_flags bench "$T/bench.help" --data "$T/none" -- $BENCH_DATA
"$VMC" bench --data "$T/none" --no-such-flag >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q -- "'--no-such-flag'.*--help" "$T/err" || fail "vmc bench --data: unknown flag: exit $rc, $(cat "$T/err")"
"$VMC" --no-such-flag >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q -- "'--no-such-flag'.*vmc --help" "$T/err" || fail "vmc --no-such-flag: exit $rc, $(cat "$T/err")"

# a malformed or out-of-range number: exit 1, one line naming the flag and the value given
bad_number() {   # WANT (a pattern the line must match), then the arguments
    local want=$1; shift
    "$VMC" "$@" >"$T/out" 2>"$T/err"; rc=$?
    [ $rc = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q -- "$want" "$T/err" \
        || fail "vmc $*: want exit 1 and one line matching '$want', got exit $rc: $(cat "$T/err")"
}
bad_number "vmc bench: --batch expects an integer from 1 to .*, found 'abc'" bench m.vmc --model m --batch abc
bad_number "vmc bench: --batch expects .*found '12x'" bench m.vmc --model m --batch 12x
bad_number "vmc bench: --steps expects .*found '0'" bench m.vmc --model m --steps 0
bad_number "vmc bench: --top expects .*found '-1'" bench m.vmc --model m --top -1
bad_number "vmc bench: --warmup expects an integer from 0 to 600, found '700'" bench m.vmc --model m --warmup 700
bad_number "vmc bench: --threads expects .*found 'x'" bench --data "$T/none" --threads x
bad_number "vmc bench: --data synthetic:N expects .*found 'abc'" bench --data synthetic:abc
bad_number "vmc compile: --threads expects .*found 'x'" compile m.vmc --threads x
bad_number "vmc compile: --arch sm_XX expects .*found '9x'" compile m.vmc --arch sm_9x
bad_number "vmc compile: --arch expects sm_XX, found '90'" compile m.vmc --arch 90
bad_number "--steps expects a non-negative integer, found 'abc'" pretrain m.vmc --steps abc
echo "ok: malformed numbers"

# A template knob's bad value is named once on stderr (though every scan instance reads it) and the default used
VMC_SCAN_POLY_EXP=99 VMC_CACHE="$T/cache" "$VMC" compile "$(dirname "$0")/../models/tiny.vmc" \
    --model tiny_ft --train --no-nvrtc >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 0 ] && [ "$(grep -c 'VMC_SCAN_POLY_EXP=99 ignored: expects an integer from 0 to 16 (using 0)' "$T/err")" = 1 ] \
    || fail "VMC_SCAN_POLY_EXP=99: want exit 0 and the knob named once, got exit $rc: $(cat "$T/err")"
echo "ok: a bad template knob named"

# A trainable attention mask is refused where the model wrote the attention, before anything runs
cat > "$T/tm.vmc" <<'EOF_VMC'
model m(b = 2) {
  input q[b, 5, 6]
  param mask[5, 5] = zeros
  let o = attention(q, q, q, mask, 2)
  loss mean(o)
}
EOF_VMC
bad_number "tm.vmc:4:11: no gradient for attention's mask: it must not depend on trainable parameters" \
    compile "$T/tm.vmc" --model m --train --no-nvrtc
echo "ok: trainable attention mask refused"

[ $fails = 0 ] || { echo "test_cli.sh: $fails failures"; exit 1; }
echo "test_cli.sh: all passed"
