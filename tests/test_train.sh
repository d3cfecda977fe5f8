#!/bin/bash
# test_train.sh — the training commands end to end on the cpu backend with models/tiny.vmc and Fashion-MNIST:
# a short pretraining run whose loss falls; resume equals uninterrupted (losses identical, bit for bit, as
# printed with 9 digits); a checkpoint of another model is refused with the mismatches listed; finetune + eval;
# a diverging run stops on a non-finite loss and its last good checkpoint loads; Ctrl-C writes a checkpoint.
# Skips (77) without the model or data.
# usage: test_train.sh VMC REPO_ROOT   (cpu backend: the bit-for-bit resume check needs its determinism)
set -u
VMC=$1; ROOT=$2
DATA=${VMC_FMNIST:-/usr/share/datasets/fashion-mnist}
MODEL=$ROOT/models/tiny.vmc
[ -f "$MODEL" ] || { echo "skip: $MODEL not found"; exit 77; }
[ -d "$DATA" ] || { echo "skip: $DATA not found"; exit 77; }
# Other jobs share the CI cores: spinning OpenMP workers would waste them.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
T=$(mktemp -d /tmp/vmc_train_XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# Small and fast: batch 8 instead of 64.
COMMON=(--data "$DATA" --backend cpu --set batch=8 --threads 2 --quiet)

losses() { python3 -c 'import json,sys; print(" ".join(repr(json.loads(l)["loss"]) for l in open(sys.argv[1]) if "loss" in l and "split" not in l))' "$1"; }

# 1. a short run: the loss falls (mean of the last 8 steps below the first 8)
"$VMC" pretrain "$MODEL" "${COMMON[@]}" --steps 40 --out "$T/fall" >"$T/fall.log" 2>&1 || { cat "$T/fall.log"; fail "pretrain run"; }
python3 - "$T/fall/metrics.jsonl" <<'EOF' || fail "loss did not fall"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 40 and all(k in rows[0] for k in ("step", "loss", "lr", "img_per_s", "grad_norm", "epoch")), rows[0]
first = sum(r["loss"] for r in rows[:8]) / 8; last = sum(r["loss"] for r in rows[-8:]) / 8
print(f"loss: first 8 mean {first:.4f}, last 8 mean {last:.4f}")
sys.exit(0 if last < first else 1)
EOF
[ -f "$T/fall/recipe.txt" ] && grep -q "effective_lr" "$T/fall/recipe.txt" || fail "recipe.txt missing or incomplete"

# 2. resume equals uninterrupted: 12 steps vs 6 + resume + 6 (same schedule: --steps 12 --stop_at 6)
"$VMC" pretrain "$MODEL" "${COMMON[@]}" --steps 12 --out "$T/full" >/dev/null 2>&1 || fail "uninterrupted run"
"$VMC" pretrain "$MODEL" "${COMMON[@]}" --steps 12 --stop_at 6 --out "$T/part" >/dev/null 2>&1 || fail "first half"
CK=$(ls "$T"/part/checkpoint-*.safetensors | tail -1)
"$VMC" pretrain "$MODEL" "${COMMON[@]}" --steps 12 --resume "$CK" --out "$T/part" >"$T/resume.log" 2>&1 || { cat "$T/resume.log"; fail "resume"; }
A=$(losses "$T/full/metrics.jsonl"); B=$(losses "$T/part/metrics.jsonl")
echo "uninterrupted: $A"; echo "resumed:       $B"
[ "$A" = "$B" ] || fail "resumed losses differ from the uninterrupted run"
# resuming from the step-6 checkpoint again replaces the logged steps after it instead of duplicating them
"$VMC" pretrain "$MODEL" "${COMMON[@]}" --steps 12 --resume "$CK" --out "$T/part" >/dev/null 2>&1 || fail "second resume"
[ "$(losses "$T/part/metrics.jsonl")" = "$A" ] || fail "metrics.jsonl after a second resume: $(losses "$T/part/metrics.jsonl")"

# 3. a checkpoint of another model: refused, mismatches listed
"$VMC" finetune "$MODEL" "${COMMON[@]}" --model tiny_ft --steps 2 --resume "$CK" --out "$T/bad" >"$T/bad.log" 2>&1 && fail "resume from another model's checkpoint succeeded"
grep -q "missing in checkpoint: cls_token" "$T/bad.log" && grep -q "unexpected in checkpoint: ar_token" "$T/bad.log" \
    && grep -q "does not match the model" "$T/bad.log" || { cat "$T/bad.log"; fail "mismatches not listed"; }

# 4. finetune from the pretrained weights (--init: matching names), then eval on part of the test split
"$VMC" finetune "$MODEL" "${COMMON[@]}" --model tiny_ft --steps 6 --eval_steps 2 --init "$CK" --out "$T/ft" >"$T/ft.log" 2>&1 || { cat "$T/ft.log"; fail "finetune"; }
grep -q "loaded" "$T/ft.log" || fail "finetune --init loaded nothing"
FCK=$(ls "$T"/ft/checkpoint-*.safetensors | tail -1)
"$VMC" eval "$MODEL" "${COMMON[@]}" --model tiny_ft --init "$FCK" --ema --steps 4 --out "$T/ft" >"$T/eval.log" 2>&1 || { cat "$T/eval.log"; fail "eval"; }
grep -q '"split": "test", "step": 6, "n": 32, "top1"' "$T/ft/metrics.jsonl" || { cat "$T/ft/metrics.jsonl"; fail "eval metrics"; }

# 5. divergence: a huge lr gives a non-finite loss; exit 3 naming the step and the last good checkpoint
"$VMC" pretrain "$MODEL" "${COMMON[@]}" --steps 30 --set blr=1e12 --set clip_grad=0 --ckpt_every 1 --out "$T/nan" >"$T/nan.log" 2>&1
rc=$?
[ $rc = 3 ] && grep -q "at step" "$T/nan.log" && grep -q "Last good checkpoint: .*checkpoint-" "$T/nan.log" || { cat "$T/nan.log"; fail "non-finite loss: exit $rc"; }
GOOD=$(sed -n 's/.*Last good checkpoint: //p' "$T/nan.log")
[ -f "$GOOD" ] && "$VMC" pretrain "$MODEL" "${COMMON[@]}" --init "$GOOD" --steps 1 --out "$T/nan2" 2>&1 | grep -q "loaded" \
    || fail "the last good checkpoint $GOOD is missing or unreadable"

# 6. Ctrl-C: a checkpoint is written, exit 130
"$VMC" pretrain "$MODEL" "${COMMON[@]}" --steps 100000 --ckpt_every 100000 --out "$T/int" >"$T/int.log" 2>&1 &
pid=$!
for _ in $(seq 600); do [ -s "$T/int/metrics.jsonl" ] && break; sleep 0.1; done
kill -INT $pid
wait $pid
rc=$?
[ $rc = 130 ] && ls "$T"/int/checkpoint-*.safetensors >/dev/null 2>&1 || { cat "$T/int.log"; fail "Ctrl-C: exit $rc, no checkpoint"; }
# the checkpoint is of the last step logged (a step queued ahead of the one logged finishes first)
LAST=$(python3 -c 'import json,sys; print([json.loads(l)["step"] for l in open(sys.argv[1]) if "loss" in l][-1])' "$T/int/metrics.jsonl")
CK=$(ls "$T"/int/checkpoint-*.safetensors | sed 's/.*checkpoint-0*\([0-9]*\)\.safetensors/\1/')
[ "$CK" = "$LAST" ] || fail "Ctrl-C: checkpoint of step $CK, last logged step $LAST"
echo "Ctrl-C at step $LAST: checkpoint-$CK"
echo "test_train.sh: all passed"
