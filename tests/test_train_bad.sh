#!/bin/bash
# test_train_bad.sh — bad input through the training commands (cpu backend, models/tiny.vmc): a missing or empty
# data path, a class folder without images, corrupt JPEGs (skipped with a warning; an error past the threshold),
# a full disk while saving (VMC_CKPT_FAULT_SINK=/dev/full: exit 2, the previous checkpoint intact and resumable),
# plots surviving a resume, eval --classes, and the live progress line on a terminal. Skips (77) without the model.
# usage: test_train_bad.sh VMC REPO_ROOT
set -u
VMC=$1; ROOT=$2
DATA=${VMC_FMNIST:-/usr/share/datasets/fashion-mnist}
MODEL=$ROOT/models/tiny.vmc
[ -f "$MODEL" ] || { echo "skip: $MODEL not found"; exit 77; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
T=$(mktemp -d /tmp/vmc_trainbad_XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
COMMON=(--backend cpu --set batch=8 --threads 2 --quiet)
# expect_fail NAME RC PATTERN -- command...: exits with RC and prints PATTERN
expect_fail() {
    local name=$1 want=$2 pat=$3; shift 4
    "$@" >"$T/$name.log" 2>&1; local rc=$?
    [ "$rc" = "$want" ] && grep -q -- "$pat" "$T/$name.log" || { cat "$T/$name.log"; fail "$name: exit $rc (want $want), '$pat' expected"; }
    echo "ok: $name: $(grep -m1 -- "$pat" "$T/$name.log")"
}

# 1. missing and empty data paths: exit 1 naming the path
expect_fail missing 1 "$T/nothing/here" -- "$VMC" pretrain "$MODEL" "${COMMON[@]}" --data "$T/nothing/here" --steps 2 --out "$T/o1"
mkdir -p "$T/empty"
expect_fail empty 1 "$T/empty: empty directory" -- "$VMC" pretrain "$MODEL" "${COMMON[@]}" --data "$T/empty" --steps 2 --out "$T/o2"

# Synthetic ImageFolder (10 classes x 16 JPEGs) from vmc bench's generator.
"$VMC" bench --data synthetic:160 --batches 1 --batch 8 --threads 1 --keep >"$T/synth.log" 2>&1 || { cat "$T/synth.log"; fail "synthetic data"; }
SYN=$(sed -n 's/^wrote .* JPEGs to \(.*\) in .*/\1/p' "$T/synth.log")
[ -d "$SYN" ] || { cat "$T/synth.log"; fail "no synthetic folder"; }
mv "$SYN" "$T/img"

# 2. a class folder with no images: exit 1 naming the folder
mkdir -p "$T/img/class_empty"
expect_fail noimages 1 "class_empty: class folder has no JPEG or PNG images" -- "$VMC" pretrain "$MODEL" "${COMMON[@]}" --data "$T/img" --steps 2 --out "$T/o3"
rmdir "$T/img/class_empty"

# 3. one corrupt JPEG in 160 (threshold 1%): a warning naming it, the run finishes a whole epoch (20 steps)
head -c 3000 "$T/img/class3/img000013.jpg" >"$T/img/class3/img000003.jpg"    # truncated
"$VMC" pretrain "$MODEL" "${COMMON[@]}" --data "$T/img" --steps 20 --out "$T/o4" >"$T/corrupt1.log" 2>&1 || { cat "$T/corrupt1.log"; fail "one corrupt JPEG stopped the run"; }
grep -q "warning: skipping .*img000003.jpg" "$T/corrupt1.log" || { cat "$T/corrupt1.log"; fail "no warning for the corrupt JPEG"; }
echo "ok: corrupt1: $(grep -m1 warning "$T/corrupt1.log")"
#    past the threshold (5 corrupt > 1.6): exit 2 with the count
for i in 13 23 33 43; do printf 'garbage' >"$T/img/class3/img0000$i.jpg"; done
expect_fail corrupt5 2 "corrupt images skipped, more than" -- "$VMC" pretrain "$MODEL" "${COMMON[@]}" --data "$T/img" --steps 20 --out "$T/o5"

[ -d "$DATA" ] || { echo "Fashion-MNIST not found: the remaining tests skipped"; echo "test_train_bad.sh: passed"; exit 0; }
F=(--data "$DATA")

# 4. full disk while saving: the step-4 checkpoint is written, the step-8 one fails -> exit 2, the message names
#    the path, no temporary file is left and the step-4 checkpoint still resumes
"$VMC" pretrain "$MODEL" "${COMMON[@]}" "${F[@]}" --steps 8 --stop_at 4 --out "$T/full" >/dev/null 2>&1 || fail "first half"
expect_fail fulldisk 2 "checkpoint-00000008.safetensors: writing the checkpoint failed: No space left on device" -- \
    env VMC_CKPT_FAULT_SINK=/dev/full "$VMC" pretrain "$MODEL" "${COMMON[@]}" "${F[@]}" --steps 8 --resume auto --out "$T/full"
[ "$(ls "$T/full")" = "$(printf 'checkpoint-00000004.safetensors\nloss.png\nlr.png\nmetrics.jsonl\nrecipe.txt')" ] || { ls "$T/full"; fail "run directory after the failed save"; }
"$VMC" pretrain "$MODEL" "${COMMON[@]}" "${F[@]}" --steps 8 --resume auto --out "$T/full" >"$T/full2.log" 2>&1 || { cat "$T/full2.log"; fail "resume after the failed save"; }

# 5. metrics and plots survive a resume: 8 training lines, the plots redrawn after the resumed run
[ "$(grep -c '"loss"' "$T/full/metrics.jsonl")" = 8 ] || { cat "$T/full/metrics.jsonl"; fail "metrics after resume"; }
[ "$T/full/loss.png" -nt "$T/full/checkpoint-00000004.safetensors" ] && [ -s "$T/full/lr.png" ] || fail "plots not redrawn"
head -c 8 "$T/full/loss.png" | od -An -c | grep -q "P   N   G" || fail "loss.png is not a PNG"
echo "ok: resume keeps metrics.jsonl (8 steps) and redraws loss.png / lr.png"

# 6. fine-tuning evaluates model and EMA at the end; eval --classes scores on a class subset
"$VMC" finetune "$MODEL" "${COMMON[@]}" "${F[@]}" --model tiny_ft --steps 4 --eval_steps 2 --out "$T/ft" >"$T/ft.log" 2>&1 || { cat "$T/ft.log"; fail "finetune"; }
grep -q '"split": "test", "step": 4, "n": 16, .*"weights": "model"' "$T/ft/metrics.jsonl" && grep -q '"weights": "ema"' "$T/ft/metrics.jsonl" \
    && [ -s "$T/ft/accuracy.png" ] || { cat "$T/ft/metrics.jsonl"; fail "fine-tuning evaluations"; }
CK=$T/ft/checkpoint-00000004.safetensors
"$VMC" eval "$MODEL" "${COMMON[@]}" "${F[@]}" --model tiny_ft --init "$CK" --classes 0,1 --out "$T/ev" >"$T/ev.log" 2>&1 || { cat "$T/ev.log"; fail "eval --classes"; }
grep -q '"n": 2000, "top1"' "$T/ev/metrics.jsonl" || { cat "$T/ev/metrics.jsonl"; fail "eval --classes 0,1: not 2000 images"; }
python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); sys.exit(0 if r["top5"] == 100 else 1)' "$T/ev/metrics.jsonl" \
    || fail "top-5 over 2 classes must be 100%"
echo "ok: eval --classes 0,1: $(cat "$T/ev/metrics.jsonl")"
expect_fail badclasses 1 "'12' is not a class index in \[0, 10)" -- "$VMC" eval "$MODEL" "${COMMON[@]}" "${F[@]}" --model tiny_ft --init "$CK" --classes 3,12 --out "$T/ev"

# 7. on a terminal: one progress line rewritten with \r, with step/total, loss, lr, img/s and ETA
#    (util-linux `script` gives it a pseudo-terminal; without one, e.g. no /dev/ptmx, the check is skipped)
script -qec "'$VMC' pretrain '$MODEL' --backend cpu --set batch=8 --threads 2 ${F[*]} --steps 5 --out '$T/tty'" "$T/tty.log" >/dev/null 2>&1
if ! grep -q "vmc pretrain: model" "$T/tty.log" 2>/dev/null; then
    echo "skip: no pseudo-terminal (script) here: the tty progress line is not checked"
else
    tr '\r' '\n' <"$T/tty.log" | grep -q "step 3/5  epoch .* loss .* lr .* img/s  ETA " || { cat -A "$T/tty.log"; fail "no live progress line"; }
    [ "$(grep -c 'step ./5' "$T/tty.log")" = 1 ] || { cat -A "$T/tty.log"; fail "progress printed as separate lines on a tty"; }
    echo "ok: tty progress line"
fi
echo "test_train_bad.sh: all passed"
