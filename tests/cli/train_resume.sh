#!/usr/bin/env bash
# lab-train checkpoints: two identical runs write byte-identical files (same output path; the first
# is copied away, since the command line is recorded); a run killed with SIGKILL after a periodic
# save and resumed with --resume ends with the same parameters, optimizer moments and log as an
# uninterrupted one, for pretraining and for LoRA; --resume refuses other settings.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
STEPS=120
RUN="--steps $STEPS --save-every 10 --val-every 40 --log-every 40"

# same_state A B WHAT: identical parameters (or adapter), moments, step, tokens seen and log
same_state() {
  "$PY" - "$1" "$2" <<'EOF' || fail "$3: the resumed run's state differs from the uninterrupted one"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
weights = "params" if "params" in a else "lora"
for group in (weights, "optim", "train_log"):
    for name in a[group]:
        x, y = a[group][name][()], b[group][name][()]
        if x.shape != y.shape or x.tobytes() != y.tobytes():
            sys.exit(f"{group}/{name} differs")
for attr in ("step", "tokens_seen"):
    if a.attrs[attr] != b.attrs[attr]:
        sys.exit(f"attribute {attr}: {a.attrs[attr]} vs {b.attrs[attr]}")
EOF
}

# identical_then_resumed WHAT OUT COMMAND...: COMMAND (a program, not a shell function, so that
# the kill reaches it) writes OUT every 10 steps. Two uninterrupted runs must write the same bytes
# (the first is kept as WHAT.first.h5); then a run killed with SIGKILL once the first save is there
# (checked to be before the end) and resumed must end with the first run's state.
identical_then_resumed() {
  local what=$1 out=$2
  shift 2
  "$@" >"$what.first.txt"
  mv "$out" "$what.first.h5"
  "$@" >/dev/null
  cmp -s "$out" "$what.first.h5" || fail "$what: two identical runs wrote different files"
  pass "$what: two identical runs wrote byte-identical files ($(stat -c %s "$out") bytes)"
  rm "$out"

  "$@" >killed.txt &
  local pid=$!
  while [ ! -e "$out" ] && kill -0 $pid 2>/dev/null; do sleep 0.002; done
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  [ -e "$out" ] || fail "$what: no checkpoint was written before the kill"
  local step
  step=$(h5attr "$out" step)
  [ "$step" -lt $STEPS ] || fail "$what: the kill came after the last step ($step); use a longer run"
  "$@" --resume >resumed.txt
  grep -q "resuming $out from step $step " resumed.txt || fail "$what: expected 'resuming $out from step $step' in: $(cat resumed.txt)"
  local want got
  want=$(grep 'trainable parameters sha256' "$what.first.txt")
  got=$(grep 'trainable parameters sha256' resumed.txt)
  [ "$want" = "$got" ] || fail "$what: the resumed run ends with other parameters: '$got' vs '$want'"
  same_state "$what.first.h5" "$out" "$what"
  pass "$what: killed after step $step and resumed = uninterrupted ($got)"
}

identical_then_resumed pretrain run.h5 "$LAB_BIN/lab-train" $TINY --out run.h5 $RUN
expect_error "resume with another --batch" run.h5 "cannot resume: it was trained with --batch 4, this run asks for 8" -- \
  train_tiny run.h5 $RUN --resume --batch 8
expect_error "resume with another model shape" run.h5 "cannot resume: it holds a model with dim 32, this run asks for 64" -- \
  train_tiny run.h5 $RUN --resume --dim 64

# LoRA on the pretrained base, dropout on: the masks must be drawn the same after a resume
LORA="--mode lora --base pretrain.first.h5 --tokens tokens.h5 --lora-targets q,v,down --lora-rank 4
      --lora-dropout 0.1 --batch 4 --seq 32 --lr 1e-2 --warmup 5 --val-batches 2 --threads 1 $RUN"
identical_then_resumed lora a.h5 "$LAB_BIN/lab-train" $LORA --out a.h5
expect_error "resume an adapter with another rank" a.h5 "cannot resume: it holds an adapter with rank 4" -- \
  "$LAB_BIN/lab-train" $LORA --out a.h5 --resume --lora-rank 8
echo "train_resume: all passed"
