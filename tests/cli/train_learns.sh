#!/usr/bin/env bash
# lab-train learns: a small model pretrained for 300 steps on real Python source reaches a
# validation loss well below the unigram entropy of the validation tokens (computed here, from the
# tokens file, independently of the C code). Also checks the train log (codelm-lab/trainlog/1)
# against the schedule and the flags, and the per-interval lines on stdout.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
STEPS=300 B=8 T=64 LR=3e-3 WARMUP=20
"$LAB_BIN/lab-train" --mode pretrain --tokens tokens.h5 --out base.h5 --log log.h5 --dim 64 \
  --layers 2 --heads 4 --ctx $T --batch $B --steps $STEPS --lr $LR --lr-min 3e-4 --warmup $WARMUP \
  --val-every 100 --val-batches 16 --log-every 50 --threads 1 >train.txt
cat train.txt

# one line per log interval, with loss, lr, norm, tok/s and GFLOP/s
[ "$(grep -cE '^step +[0-9]+/300 \| loss [0-9.]+ \| lr [0-9.e+-]+ \| norm [0-9.]+ \| [0-9]+ tok/s \| [0-9.]+ GFLOP/s' train.txt)" -eq 6 ] ||
  fail "expected 6 progress lines (every 50 steps) with loss, lr, norm, tok/s and GFLOP/s"
grep -qE '^trained 300 steps, 153600 tokens: [0-9]+ tokens/s, [0-9.]+ GFLOP/s achieved' train.txt ||
  fail "expected the closing tokens/s and GFLOP/s line"

"$PY" - <<EOF || fail "the train log or the learning check failed"
import math, sys, h5py, numpy as np
f = h5py.File("log.h5")
assert f.attrs["schema"] == "codelm-lab/trainlog/1", f.attrs["schema"]
t = f["train_log"]
cols = t.attrs["columns"]
assert cols == "step,tokens_seen,train_loss,val_loss,lr,grad_norm,tokens_per_s", cols
step = t["step"][:]
assert (step == np.arange(1, $STEPS + 1)).all(), "a row per step"
assert (t["tokens_seen"][:] == step * $B * $T).all(), "tokens seen = step * B * T"
lr = t["lr"][:]
# warmup: lr * (s+1)/warmup for the update of step s (row s+1); cosine to lr-min at the end
assert math.isclose(lr[0], $LR / $WARMUP, rel_tol=1e-5), lr[0]
assert math.isclose(lr[$WARMUP - 1], $LR, rel_tol=1e-5), lr[$WARMUP - 1]
mid = ($WARMUP + $STEPS) // 2
assert math.isclose(lr[mid], 3e-4 + (3e-3 - 3e-4) * 0.5 * (1 + math.cos(math.pi * (mid - $WARMUP) / ($STEPS - $WARMUP))), rel_tol=1e-5)
val = t["val_loss"][:]
evaluated = np.flatnonzero(~np.isnan(val)) + 1
assert list(evaluated) == [100, 200, 300], evaluated
assert (t["tokens_per_s"][:] > 0).all() and np.isfinite(t["grad_norm"][:]).all()
assert t["train_loss"].attrs["units"] == "nats/token"

tokens = h5py.File("tokens.h5")["val/tokens"][:]
p = np.bincount(tokens) / len(tokens)
p = p[p > 0]
entropy = float(-(p * np.log(p)).sum())
final = float(val[-1])
print(f"validation loss {final:.4f} nats/token; unigram entropy of the val tokens {entropy:.4f}")
margin = 0.3
assert final < entropy - margin, f"expected val loss < {entropy - margin:.4f}, found {final:.4f}"
assert val[-1] < val[99], "validation loss fell between step 100 and the end"
EOF
pass "learns, and the train log matches the schedule"
echo "train_learns: all passed"
