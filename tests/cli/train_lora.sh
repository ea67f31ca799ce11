#!/usr/bin/env bash
# lab-train --mode lora and lab-merge: the adapter file holds only the adapter (the chosen targets,
# shapes (L, r, in) and (L, out, r)), the base config and the base's parameter sha256; the base
# file is left as it was; lab-merge writes base + (alpha/r) B A, checked here with numpy from the
# files; fine-tuning on one document lowers the perplexity there.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
train_tiny base.h5 --steps 150 >/dev/null
# the fine-tuning data: the test split cut down to one document of 3000..10000 tokens
"$PY" - <<'EOF'
import h5py, numpy as np
with h5py.File("tokens.h5", "a") as f:
    g = f["test"]
    off = g["doc_offsets"][:]
    d = int(np.flatnonzero((np.diff(off) > 3000) & (np.diff(off) < 10000))[0])
    parts = {"tokens": g["tokens"][off[d]:off[d + 1]], "doc_package": g["doc_package"][d:d + 1],
             "doc_bytes": g["doc_bytes"][d:d + 1], "doc_offsets": np.array([0, off[d + 1] - off[d]], np.uint64)}
    for name, data in parts.items():
        del g[name]
        g[name] = data
EOF
before=$(sha256sum base.h5)
LORA="--mode lora --base base.h5 --tokens tokens.h5 --train-split test --val-split test --batch 4
      --seq 32 --lr 1e-2 --warmup 5 --val-batches 2 --threads 1"
"$LAB_BIN/lab-train" $LORA --steps 100 --lora-targets q,v,down --lora-rank 4 --lora-alpha 8 --out adapter.h5 >lora.txt
"$LAB_BIN/lab-train" $LORA --steps 200 --lora-targets all --lora-rank 8 --lora-dropout 0 --out all.h5 >/dev/null
[ "$before" = "$(sha256sum base.h5)" ] || fail "LoRA training changed the base file"
grep -q 'lora: targets q,v,down, rank 4, alpha 8, dropout 0.05' lora.txt || fail "expected the adapter settings in: $(head -3 lora.txt)"

"$PY" - <<'EOF' || fail "adapter file"
import h5py, numpy as np
a, b = h5py.File("adapter.h5"), h5py.File("base.h5")
assert a.attrs["schema"] == "codelm-lab/adapter/1"
assert a.attrs["targets"] == "q,v,down" and a.attrs["rank"] == 4 and a.attrs["alpha"] == 8
assert a.attrs["base_sha256"] == b.attrs["params_sha256"], "the adapter names its base"
for k in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "max_seq_len"):
    assert a.attrs[k] == b.attrs[k], k
assert "params" not in a, "the base's weights are not in the adapter"
assert sorted(a["lora"]) == ["down_A", "down_B", "q_A", "q_B", "v_A", "v_B"], list(a["lora"])
L, C, F = 2, 32, b["params/w_gate"].shape[1]
kv = b["params/wk"].shape[1]
assert a["lora/q_A"].shape == (L, 4, C) and a["lora/q_B"].shape == (L, C, 4)
assert a["lora/v_A"].shape == (L, 4, C) and a["lora/v_B"].shape == (L, kv, 4)
assert a["lora/down_A"].shape == (L, 4, F) and a["lora/down_B"].shape == (L, C, 4)
assert np.abs(a["lora/q_B"][()]).max() > 0, "B moved away from its zero init"
assert len(h5py.File("all.h5")["lora"]) == 14, "--lora-targets all: seven A, B pairs"
EOF
pass "adapter files: targets, shapes, base config and sha256"

E="$LAB_BIN/lab-eval ppl --tokens tokens.h5 --split test --ctx 32 --threads 1"
$E --model base.h5 --out base_ppl.h5 >/dev/null 2>&1
$E --model base.h5 --adapter adapter.h5 --out lora_ppl.h5 >/dev/null 2>&1
$E --model base.h5 --adapter all.h5 --out all_ppl.h5 >/dev/null 2>&1
"$LAB_BIN/lab-merge" --base base.h5 --adapter adapter.h5 --out merged.h5 >/dev/null
$E --model merged.h5 --out merged_ppl.h5 >/dev/null 2>&1
"$PY" - <<'EOF' || fail "fine-tuning or merging"
import h5py, numpy as np
ce = {k: float(h5py.File(f"{k}_ppl.h5").attrs["cross_entropy"]) for k in ("base", "lora", "all", "merged")}
print("cross-entropy on the fine-tuning document:", ce)
assert ce["all"] < ce["base"] - 0.1, "fine-tuning all projections on the document lowers its loss"
assert ce["lora"] < ce["base"], "fine-tuning q,v,down on the document lowers its loss"
assert abs(ce["merged"] - ce["lora"]) < 1e-6, "the merged model scores as base + adapter"
a, b, m = h5py.File("adapter.h5"), h5py.File("base.h5"), h5py.File("merged.h5")
assert m.attrs["schema"] == "codelm-lab/checkpoint/1" and "optim" not in m
scale = a.attrs["alpha"] / a.attrs["rank"]
for target, weight in (("q", "wq"), ("v", "wv"), ("down", "w_down")):
    A, B = a[f"lora/{target}_A"][()].astype(np.float64), a[f"lora/{target}_B"][()].astype(np.float64)
    want = b[f"params/{weight}"][()] + scale * np.einsum("lor,lri->loi", B, A)
    err = np.abs(m[f"params/{weight}"][()] - want).max()
    assert err < 1e-5, f"{weight}: merged differs from base + scale B A by {err}"
for weight in ("wk", "wo", "w_gate", "w_up", "tok_emb", "attn_norm"):
    assert (m[f"params/{weight}"][()] == b[f"params/{weight}"][()]).all(), f"{weight} is not adapted"
EOF
pass "fine-tuning lowers the loss on its document; merged = base + (alpha/r) B A"
echo "train_lora: all passed"
