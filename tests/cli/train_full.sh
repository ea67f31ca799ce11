#!/usr/bin/env bash
# lab-train --mode full: fine-tunes every weight of a base (fresh optimizer moments) into a new
# checkpoint with the base's config; the base file is left as it was; it lowers the loss on the
# fine-tuning split; killed-and-resumed equals uninterrupted; it refuses to run without --base.
# lab-eval --max-tokens scores only the first N tokens of each package.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
train_tiny base.h5 --steps 60 >/dev/null
before=$(sha256sum base.h5)
FULL="--mode full --base base.h5 --tokens tokens.h5 --train-split test --val-split val --batch 4
      --seq 32 --lr 3e-3 --warmup 2 --val-batches 2 --threads 1"
"$LAB_BIN/lab-train" $FULL --steps 40 --out full.h5 --log full_log.h5 >full.txt
[ "$before" = "$(sha256sum base.h5)" ] || fail "full fine-tuning changed the base file"

"$PY" - <<'EOF' || fail "full checkpoint"
import h5py
f, b = h5py.File("full.h5"), h5py.File("base.h5")
assert f.attrs["schema"] == "codelm-lab/checkpoint/1"
for k in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "max_seq_len"):
    assert f.attrs[k] == b.attrs[k], k
assert f.attrs["params_sha256"] != b.attrs["params_sha256"], "the weights moved"
assert list(f["params"]) == list(b["params"])
log = h5py.File("full_log.h5")["train_log"]
assert log["step"][0] == 1 and log["step"][-1] == 40, "a fresh log from step 1"
EOF
pass "full checkpoint: the base's config, new weights, its own log"

E="$LAB_BIN/lab-eval ppl --tokens tokens.h5 --split test --ctx 32 --threads 1"
$E --model base.h5 --out base_ppl.h5 >/dev/null 2>&1
$E --model full.h5 --out full_ppl.h5 >/dev/null 2>&1
$E --model full.h5 --max-tokens 500 --out capped.h5 >/dev/null 2>&1
"$PY" - <<'EOF' || fail "fine-tuning effect or --max-tokens"
import h5py
b, f, c = (h5py.File(p) for p in ("base_ppl.h5", "full_ppl.h5", "capped.h5"))
print("test cross-entropy: base %.4f, full fine-tuned on test %.4f" % (b.attrs["cross_entropy"], f.attrs["cross_entropy"]))
assert f.attrs["cross_entropy"] < b.attrs["cross_entropy"] - 0.05
rows = c["by_package/tokens_scored"][()]
# second-half scoring of 500 tokens in windows of 32: 499 inputs = 15 full windows (16 scored
# each) and a tail of 19 inputs (positions 16, 17, 18 scored)
assert all(r == 15 * 16 + 3 for r in rows), rows
assert c.attrs["max_tokens_per_package"] == 500
EOF
pass "full fine-tuning lowers the loss on its split; --max-tokens caps each package"

# killed and resumed == uninterrupted (the same bytes)
"$LAB_BIN/lab-train" $FULL --steps 40 --save-every 10 --out ref.h5 >/dev/null
cp ref.h5 ref_first.h5
"$LAB_BIN/lab-train" $FULL --steps 40 --save-every 10 --out ref.h5 >/dev/null
cmp ref.h5 ref_first.h5 || fail "two identical full fine-tuning runs differ"
"$LAB_BIN/lab-train" $FULL --steps 40 --save-every 10 --out killed.h5 >/dev/null &
pid=$!
for _ in $(seq 1 600); do
  [ -f killed.h5 ] && break
  sleep 0.02
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
[ -f killed.h5 ] || fail "no checkpoint written before the kill"
step=$(h5attr killed.h5 step 2>/dev/null || "$PY" -c 'import h5py; print(h5py.File("killed.h5")["optim"].attrs["step"])')
"$LAB_BIN/lab-train" $FULL --steps 40 --save-every 10 --resume --out killed.h5 >resume.txt
# (the files differ in their command_line attribute, so compare what they hold)
"$PY" - <<'EOF' || fail "resumed full fine-tuning (killed at step $step) differs from the uninterrupted run"
import h5py, numpy as np
a, b = h5py.File("killed.h5"), h5py.File("ref.h5")
assert a.attrs["params_sha256"] == b.attrs["params_sha256"]
for k in a["params"]:
    assert np.array_equal(a["params"][k][()], b["params"][k][()]), k
for k in ("m", "v"):
    assert np.array_equal(a["optim"][k][()], b["optim"][k][()]), k
EOF
pass "killed at step $step and resumed = uninterrupted (parameters and moments bit for bit)"

expect_error "full without a base" "--base" "expected --base" -- "$LAB_BIN/lab-train" --mode full --tokens tokens.h5 --out x.h5
[ ! -e x.h5 ] || fail "an output was left behind"
