#!/usr/bin/env bash
# Prompt/completion pairs, the loss on the completion only: lab-tokenizer encode-pairs and
# lab-train on its output.
# - encode-pairs, checked in Python from the JSONL and the tokenizer's vocabulary: each document
#   decodes to prompt + completion + eot and its first doc_prompt_tokens tokens to the prompt alone;
#   the train/val split follows sha256(task_id); packages, bytes and the --max-tokens drop count
#   are right; two runs give the same bytes.
# - LoRA from a small pretrained base on 200 pairs whose completion is a function of the prompt
#   (`def f_17(): """Return 17."""` -> `return 17`): the completion-only val loss falls well below
#   the base's.
# - The losses are completion-only means: the logged val loss of the adapter, and the train loss of
#   a step of three micro-batches scoring different numbers of tokens, equal a NumPy forward of base + adapter over rows rebuilt here from
#   the documented rules (splitmix64 draws, eot padding, targets -1 on prompt and padding), and
#   differ from the all-token mean and from a mean over B*T positions.
# - The gradient of a step is that of the token mean however the rows are cut into micro-batches;
#   a pairs run stopped and resumed ends as one never stopped.
# - A file whose completions are all the same after random prompts is learnt to a loss near 0;
#   the same documents with the prompts scored too (doc_prompt_tokens set to 0) are not.
# - Bad input gives one line naming the file (file:line for a bad pair) and no output.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
TOK="$LAB_BIN/lab-tokenizer"
BASE="--mode pretrain --tokens tokens.h5 --dim 64 --layers 2 --heads 2 --ctx 32 --batch 8 --lr 3e-3
      --warmup 5 --val-batches 2 --threads 1"
"$LAB_BIN/lab-train" $BASE --steps 300 --out base.h5 >base.txt || fail "pretraining the base: $(tail -3 base.txt)"

"$PY" - <<'EOF'
import json, random
# 200 pairs; the completion returns the number the docstring names (distinct numbers of 1 to 3
# digits, so completions differ in length). A package on most, not all; a non-ASCII docstring on
# some (doc_bytes counts UTF-8 bytes).
with open("pairs.jsonl", "w") as f:
    for k in range(200):
        i = k * k % 997
        doc = f"Return {i} é." if k % 7 == 0 else f"Return {i}."
        row = {"task_id": f"synth/f_{i}", "prompt": f'def f_{i}():\n    """{doc}"""\n', "entry_point": f"f_{i}",
               "canonical_solution": f"    return {i}\n", "test": ""}
        if k % 5:
            row["package"] = "synth-b" if k % 3 else "synth-a"
        f.write(json.dumps(row) + "\n")
# the same completion after random prompts
r = random.Random(5)
words = "alpha beta gamma delta value index count name path items total first last next".split()
with open("const.jsonl", "w") as f:
    for k in range(200):
        doc = " ".join(r.choice(words) for _ in range(r.randrange(2, 6))).capitalize()
        f.write(json.dumps({"task_id": f"const/{k}", "prompt": f'def g_{r.randrange(10**6)}(x):\n    """{doc}."""\n',
                            "canonical_solution": "    return x\n"}) + "\n")
EOF

# ---------------------------------------------------------------------------------------------
# encode-pairs
ENCODE="$TOK encode-pairs --pairs pairs.jsonl --tokenizer tokenizer.h5 --out pairs.h5 --val-fraction 0.2 --max-tokens 33"
$ENCODE >enc.txt
mv pairs.h5 first.h5
$ENCODE >/dev/null
cmp -s pairs.h5 first.h5 || fail "two runs of encode-pairs gave different bytes"
"$TOK" encode-pairs --pairs pairs.jsonl --tokenizer tokenizer.h5 --out unlimited.h5 >/dev/null
"$TOK" encode-pairs --pairs pairs.jsonl --tokenizer tokenizer.h5 --out cut.h5 --max-tokens 26 >cut.txt
cat enc.txt cut.txt
"$PY" - <<'EOF' || fail "the pairs file"
import hashlib, json, h5py, numpy as np
pairs = [json.loads(line) for line in open("pairs.jsonl")]
tz = h5py.File("tokenizer.h5")
vb, vo = tz["vocab_bytes"][:].tobytes(), tz["vocab_offsets"][:]
eot = int(tz.attrs["eot_token"])
decode = lambda ids: b"".join(vb[vo[t]:vo[t + 1]] for t in ids)

def is_val(task_id, fraction):
    u = int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big")
    return (u >> 11) / 2**53 < fraction

def docs(path):
    f = h5py.File(path)
    out = {}
    for split in ("train", "val"):
        if split not in f:
            continue
        g = f[split]
        tok, off = g["tokens"][:], g["doc_offsets"][:]
        out[split] = [(tok[off[d]:off[d + 1]], int(g["doc_prompt_tokens"][d]), int(g["doc_package"][d]),
                       int(g["doc_bytes"][d])) for d in range(len(off) - 1)]
    return f, out

f, got = docs("unlimited.h5")
assert f.attrs["schema"] == "codelm-lab/tokens/1" and f.attrs["eot_token"] == eot
assert f.attrs["pairs_val_fraction"] == 0.05 and f.attrs["pairs_max_tokens"] == 0 and f.attrs["pairs_dropped"] == 0
packages = [p.decode() for p in f["packages"][:]]
assert packages == ["", "synth-a", "synth-b"], packages
lengths = {}
for split, fraction in (("train", 0.05), ("val", 0.05)):
    want = [p for p in pairs if is_val(p["task_id"], fraction) == (split == "val")]
    assert len(got[split]) == len(want), (split, len(got[split]), len(want))
    for p, (tok, n_prompt, pkg, nbytes) in zip(want, got[split]):
        assert tok[-1] == eot and eot not in tok[:-1], p["task_id"]
        assert decode(tok[:n_prompt]) == p["prompt"].encode(), ("the prompt's tokens", p["task_id"])
        assert decode(tok[n_prompt:-1]) == p["canonical_solution"].encode(), ("the completion's tokens", p["task_id"])
        assert packages[pkg] == p.get("package", ""), p["task_id"]
        assert nbytes == len((p["prompt"] + p["canonical_solution"]).encode()), p["task_id"]
        lengths[p["task_id"]] = len(tok)
print(f"unlimited.h5: {len(got['train'])} train, {len(got['val'])} val pairs; {min(lengths.values())}.."
      f"{max(lengths.values())} tokens each")

# --val-fraction 0.2 --max-tokens 33 (the context + 1): all fit; --max-tokens 26 drops the longer
# ones, and says how many
assert max(lengths.values()) <= 33
f, got = docs("pairs.h5")
assert f.attrs["pairs_val_fraction"] == 0.2 and f.attrs["pairs_max_tokens"] == 33 and f.attrs["pairs_dropped"] == 0
n_val = sum(is_val(p["task_id"], 0.2) for p in pairs)
assert len(got["val"]) == n_val and len(got["train"]) == 200 - n_val and 20 < n_val < 60, n_val
f, got = docs("cut.h5")
dropped = sum(n > 26 for n in lengths.values())
assert 0 < dropped < 200 and f.attrs["pairs_dropped"] == dropped, (dropped, f.attrs["pairs_dropped"])
assert sum(len(v) for v in got.values()) == 200 - dropped
assert all(len(d[0]) <= 26 for v in got.values() for d in v)
assert f"dropped {dropped} of 200 pairs longer than --max-tokens 26" in open("cut.txt").read()
print(f"--max-tokens 26 dropped {dropped} pairs")
EOF
pass "encode-pairs: tokens, prompt lengths, split, packages, bytes and drops as computed here; same bytes twice"

# ---------------------------------------------------------------------------------------------
# LoRA on the pairs: the completion-only val loss falls well below the base's
LORA="--mode lora --base base.h5 --tokens pairs.h5 --batch 8 --val-batches 4 --lora-targets all --lora-rank 8 --threads 1"
# a step of learning rate 0 leaves the adapter's B at zero: its val loss is the base's; and one
# of three micro-batches of a row each (scoring different numbers of tokens) checks the train loss
"$LAB_BIN/lab-train" $LORA --steps 1 --lr 0 --out start.h5 --log start_log.h5 >/dev/null
"$LAB_BIN/lab-train" $LORA --steps 1 --lr 0 --batch 1 --accum 3 --val-split none --out accum.h5 --log accum_log.h5 >/dev/null
"$LAB_BIN/lab-train" $LORA --steps 300 --lr 3e-3 --warmup 5 --val-every 100 --out adapter.h5 --log log.h5 >lora.txt
cat lora.txt
"$PY" - <<'EOF' || fail "the completion-only loss printout or its fall"
import re, h5py, numpy as np
text = open("lora.txt").read()
f = h5py.File("pairs.h5")
T = 32
def scored(split):
    g = f[split]
    n, p = np.diff(g["doc_offsets"][:]).astype(np.int64), g["doc_prompt_tokens"][:].astype(np.int64)
    return int((np.minimum(n - 1, T) - np.maximum(p, 1) + 1).clip(0).sum()), len(n)
for split in ("train", "val"):
    s, n = scored(split)
    line = f"{split} split '{split}': loss on completions only: {n} pairs, {s} scored tokens in rows of {T}"
    assert line in text, f"expected the line: {line}"
start = float(h5py.File("start_log.h5")["train_log/val_loss"][0])
val = h5py.File("log.h5")["train_log/val_loss"][:]
final = float(val[-1])
print(f"completion-only val loss: base {start:.4f}, after 300 LoRA steps {final:.4f}")
assert final < start - 2, f"expected the val loss well below the base's {start:.4f}, found {final:.4f}"
EOF
pass "LoRA on the pairs: the completion-only val loss falls well below the base's"

"$PY" - <<'EOF' || fail "the losses are not the completion-only means computed here"
import h5py, numpy as np
base, ad, pf = h5py.File("base.h5"), h5py.File("adapter.h5"), h5py.File("pairs.h5")
eot = int(pf.attrs["eot_token"])
C, L, NH, NKV = (int(base.attrs[k]) for k in ("dim", "n_layers", "n_heads", "n_kv_heads"))
HD, eps, theta = C // NH, float(base.attrs["norm_eps"]), float(base.attrs["rope_theta"])
BASE = {k: base["params"][k][()].astype(np.float64) for k in base["params"]}

def weights(adapter):
    P = dict(BASE)
    if adapter is not None:
        scale = adapter.attrs["alpha"] / adapter.attrs["rank"]
        for t, w in (("q", "wq"), ("k", "wk"), ("v", "wv"), ("o", "wo"), ("gate", "w_gate"), ("up", "w_up"), ("down", "w_down")):
            A, B = adapter[f"lora/{t}_A"][()].astype(np.float64), adapter[f"lora/{t}_B"][()].astype(np.float64)
            P[w] = P[w] + scale * np.einsum("lor,lri->loi", B, A)
    return P

def rms(x, g):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

def rope(x):  # (T, heads, HD): pairs (2i, 2i+1) turned by t * theta^(-2i/HD)
    ang = np.arange(x.shape[0])[:, None] * theta ** (-2.0 * np.arange(HD // 2) / HD)
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
    out[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
    return out

def nll(P, ids, targets):  # per-position cross-entropy, 0 where the target is -1
    T = len(ids)
    x = P["tok_emb"][ids]
    for l in range(L):
        h = rms(x, P["attn_norm"][l])
        q = rope((h @ P["wq"][l].T).reshape(T, NH, HD))
        k = np.repeat(rope((h @ P["wk"][l].T).reshape(T, NKV, HD)), NH // NKV, axis=1)
        v = np.repeat((h @ P["wv"][l].T).reshape(T, NKV, HD), NH // NKV, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(HD) + np.triu(np.full((T, T), -np.inf), 1)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", att, v).reshape(T, C) @ P["wo"][l].T
        h = rms(x, P["ffn_norm"][l])
        g, u = h @ P["w_gate"][l].T, h @ P["w_up"][l].T
        x = x + (g / (1 + np.exp(-g)) * u) @ P["w_down"][l].T
    logits = rms(x, P["final_norm"]) @ P["tok_emb"].T
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    return np.where(targets >= 0, lse - logits[np.arange(T), np.maximum(targets, 0)], 0.0)

def row(split, d, T, prompt_scored=False):  # documented in tokens.h
    g = pf[split]
    off = g["doc_offsets"][:]
    x, p = g["tokens"][off[d]:off[d + 1]].astype(np.int64), 0 if prompt_scored else int(g["doc_prompt_tokens"][d])
    ids = np.full(T, eot)
    ids[:min(T, len(x))] = x[:T]
    tgt = np.array([x[t + 1] if p <= t + 1 < len(x) else -1 for t in range(T)])
    return ids, tgt

M = 2**64 - 1
def hash64(x):  # lab_hash64: the splitmix64 finaliser
    x = (x + 0x9e3779b97f4a7c15) & M
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M
    return x ^ (x >> 31)

def summary(rows, P):
    losses = [nll(P, ids, tgt) for ids, tgt in rows]
    scored = sum(int((tgt >= 0).sum()) for _, tgt in rows)
    total = sum(l.sum() for l in losses)
    return total / scored, total / (len(rows) * 32), scored

B, T = 8, 32
# val: val-batches 4 x B rows, documents floor(w (n-1) / (W-1))
n_val = len(pf["val/doc_offsets"]) - 1
W = 4 * B
val_rows = [row("val", w * (n_val - 1) // (W - 1), T) for w in range(W)]
logged = float(h5py.File("log.h5")["train_log/val_loss"][-1])
mean, per_position, scored = summary(val_rows, weights(ad))
every = summary([row("val", w * (n_val - 1) // (W - 1), T, prompt_scored=True) for w in range(W)], weights(ad))[0]
print(f"adapter's val loss: logged {logged:.5f}; here {mean:.5f} over {scored} scored tokens "
      f"(over B*T positions {per_position:.5f}, over prompt and completion {every:.5f})")
assert abs(logged - mean) < 1e-3, "the logged val loss is the mean over the completion tokens"
assert abs(logged - per_position) > 0.1 and abs(logged - every) > 0.1, "the check tells the means apart"

# train, step 0 of seed 1: row b of micro-batch k is document hash64(h ^ b) % n_train, with
# h = hash64(hash64(hash64(1) ^ 0) ^ k)
n_train = len(pf["train/doc_offsets"]) - 1
rows = [row("train", hash64(hash64(hash64(hash64(1) ^ 0) ^ k) ^ 0) % n_train, T) for k in range(3)]
counts = [int((t >= 0).sum()) for _, t in rows]
logged = float(h5py.File("accum_log.h5")["train_log/train_loss"][0])
mean = summary(rows, weights(None))[0]
of_means = np.mean([summary([r], weights(None))[0] for r in rows])
print(f"the base's train loss on a step of 3 micro-batches of {counts} scored tokens: logged {logged:.6f}; "
      f"here {mean:.6f} (the mean of the micro-batch means: {of_means:.6f})")
assert len(set(counts)) > 1 and abs(of_means - mean) > 1e-4, "the check needs micro-batches of different sizes"
assert abs(logged - mean) < 3e-5, "the logged train loss is the mean over the step's completion tokens"
EOF
pass "the logged losses equal completion-only means from a NumPy forward"

# The gradient of a step is that of the mean over all its scored tokens, however the rows are cut
# into micro-batches: a train split of two pairs scoring different numbers of tokens, and a seed
# whose step 0 draws the same rows as 3 micro-batches of 1 and as 1 micro-batch of 3 (searched for
# here), give the same gradient norm and loss both ways. (A mean of the micro-batch means would
# weigh the two pairs' tokens differently: 1/3 of 1/n each instead of 1/(n1 + n1 + n2).)
cp pairs.h5 two.h5
SEED=$("$PY" - <<'EOF'
import h5py, numpy as np
with h5py.File("two.h5", "a") as f:
    g = f["train"]
    off, p = g["doc_offsets"][:], g["doc_prompt_tokens"][:]
    scored = np.diff(off) - p
    a, b = 0, int(np.flatnonzero(scored != scored[0])[0])
    parts = {"tokens": np.concatenate([g["tokens"][off[d]:off[d + 1]] for d in (a, b)]),
             "doc_offsets": np.array([0, off[a + 1] - off[a], off[a + 1] - off[a] + off[b + 1] - off[b]], np.uint64),
             "doc_prompt_tokens": p[[a, b]], "doc_package": g["doc_package"][[a, b]], "doc_bytes": g["doc_bytes"][[a, b]]}
    for name, data in parts.items():
        del g[name]
        g[name] = data
M = 2**64 - 1
def hash64(x):
    x = (x + 0x9e3779b97f4a7c15) & M
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M
    return x ^ (x >> 31)
for seed in range(1, 1000):
    draw = lambda k, b: hash64(hash64(hash64(hash64(seed) ^ 0) ^ k) ^ b) % 2
    accum, batch = [draw(k, 0) for k in range(3)], [draw(0, b) for b in range(3)]
    if sorted(accum) == sorted(batch) and len(set(accum)) == 2:
        print(seed)
        break
EOF
)
[ -n "$SEED" ] || fail "no seed draws the same rows both ways"
G="--mode full --base base.h5 --tokens two.h5 --val-split none --steps 1 --lr 0 --seed $SEED --threads 1"
"$LAB_BIN/lab-train" $G --batch 1 --accum 3 --out g1.h5 --log g1_log.h5 >/dev/null
"$LAB_BIN/lab-train" $G --batch 3 --out g3.h5 --log g3_log.h5 >/dev/null
"$PY" - <<'EOF' || fail "the gradient of a step with micro-batches of different sizes"
import h5py
(n1, l1), (n3, l3) = ((h5py.File(p)["train_log/grad_norm"][0], h5py.File(p)["train_log/train_loss"][0]) for p in ("g1_log.h5", "g3_log.h5"))
print(f"3 micro-batches of 1 row: gradient norm {n1:.7f}, loss {l1:.7f}; 1 of 3 rows: {n3:.7f}, {l3:.7f}")
assert abs(n1 - n3) < 1e-5 * n3 and abs(l1 - l3) < 1e-5, "the same rows give the same gradient and loss"
EOF
pass "micro-batches of different sizes: the gradient and loss of the step's token mean"

# --resume continues exactly: pairs drawn from (seed, step, micro, b) alone. With a constant
# learning rate the schedule does not depend on --steps, so 20 steps then --resume to 40 must end
# as 40 steps straight.
R="$LORA --lr 3e-3 --lr-min 3e-3 --val-every 20"
"$LAB_BIN/lab-train" $R --steps 40 --out straight.h5 >/dev/null
"$LAB_BIN/lab-train" $R --steps 20 --out resumed.h5 >/dev/null
"$LAB_BIN/lab-train" $R --steps 40 --resume --out resumed.h5 >resumed.txt
grep -q "resuming resumed.h5 from step 20" resumed.txt || fail "expected a resume from step 20: $(head -3 resumed.txt)"
"$PY" - <<'EOF' || fail "a resumed pairs run differs from an uninterrupted one"
import h5py
a, b = h5py.File("straight.h5"), h5py.File("resumed.h5")
for group in ("lora", "optim", "train_log"):
    for name in a[group]:
        assert a[group][name][()].tobytes() == b[group][name][()].tobytes(), f"{group}/{name} differs"
EOF
pass "a pairs run stopped at step 20 and resumed ends as one never stopped"

# ---------------------------------------------------------------------------------------------
# the same completion after random prompts: learnt when only it is scored, not when prompts are
# (full fine-tuning: LoRA on this small base stalls near 1.5 nats even on the completion alone,
# while full fine-tuning, which also moves the tied embeddings, learns it)
"$TOK" encode-pairs --pairs const.jsonl --tokenizer tokenizer.h5 --out const.h5 --max-tokens 33 --val-fraction 0.2 >/dev/null
cp const.h5 whole.h5
"$PY" -c '
import h5py
with h5py.File("whole.h5", "a") as f:
    for s in ("train", "val"):
        f[s + "/doc_prompt_tokens"][...] = 0'
C="--mode full --base base.h5 --batch 8 --val-batches 4 --threads 1 --steps 150 --lr 3e-3 --warmup 5"
"$LAB_BIN/lab-train" $C --tokens const.h5 --out c1.h5 --log c1_log.h5 >/dev/null
"$LAB_BIN/lab-train" $C --tokens whole.h5 --out c2.h5 --log c2_log.h5 >/dev/null
"$PY" - <<'EOF' || fail "completion-only training on constant completions"
import h5py
only, whole = (float(h5py.File(p)["train_log/val_loss"][-1]) for p in ("c1_log.h5", "c2_log.h5"))
print(f"constant completions after random prompts: val loss {only:.4f} on the completions, {whole:.4f} with the prompts scored")
assert only < 0.1 and whole > 0.5, "only the completion is scored: a constant one is learnt to near 0"
EOF
pass "a constant completion after random prompts is learnt to a loss near 0"

# ---------------------------------------------------------------------------------------------
# errors: one line naming the file, non-zero exit, no output
printf '{"task_id": "a", "prompt": "def a():\\n", "canonical_solution": "    return 1\\n"}\n{"task_id": "b", "prompt": "def b():\\n"}\n' >no_solution.jsonl
: >empty.jsonl
printf '{"task_id": "e", "prompt": "", "canonical_solution": ""}\n' >blank.jsonl
EP="$TOK encode-pairs --tokenizer tokenizer.h5 --out bad.h5"
expect_error "a pair without canonical_solution" no_solution.jsonl:2 'expected a "canonical_solution" string field' -- $EP --pairs no_solution.jsonl
expect_error "an empty pairs file" empty.jsonl "expected at least one task" -- $EP --pairs empty.jsonl
expect_error "a pair with nothing in it" blank.jsonl "expected a prompt or a canonical_solution, found both empty" -- $EP --pairs blank.jsonl
expect_error "no pair short enough" pairs.jsonl "expected at least one pair of at most --max-tokens 5 tokens" -- $EP --pairs pairs.jsonl --max-tokens 5
expect_error "a missing pairs file" missing.jsonl "cannot open" -- $EP --pairs missing.jsonl
expect_error "a val fraction over 1" --val-fraction "--val-fraction" -- $EP --pairs pairs.jsonl --val-fraction 1.5
[ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "a failed encode-pairs left bad.h5 behind"
expect_error "a prompt longer than the row" pairs.h5 "expected every pair to have a completion token or its eot within 12 positions" -- \
  "$LAB_BIN/lab-train" $LORA --seq 12 --steps 1 --lr 0 --out never.h5
[ ! -e never.h5 ] || fail "a refused training run wrote never.h5"
echo "train_pairs: all passed"
