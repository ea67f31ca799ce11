#!/usr/bin/env bash
# lab-eval ppl: the windowing (each package's documents concatenated, non-overlapping windows of
# ctx, second half scored, or all with --score all) recomputed here in Python from the tokens file:
# the same tokens and bytes scored per package; cross-entropy, perplexity and bits per byte follow
# from nll as FORMATS.md says; totals are the sums of the packages; --score all scores every token
# but each package's first. Bad inputs give one line naming the file.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
train_tiny base.h5 --steps 100 >/dev/null
E="$LAB_BIN/lab-eval"
$E ppl --model base.h5 --tokens tokens.h5 --split test --ctx 24 --out half.h5 --threads 1 >half.txt 2>/dev/null
$E ppl --model base.h5 --tokens tokens.h5 --split test --ctx 24 --score all --out all.h5 --threads 1 >all.txt 2>/dev/null
grep -qE '^total +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$' half.txt || fail "expected a total line in: $(cat half.txt)"

"$PY" - <<'EOF' || fail "perplexity file"
import math, h5py, numpy as np
tok = h5py.File("tokens.h5")
split = tok["test"]
tokens, off, pkg = split["tokens"][:], split["doc_offsets"][:], split["doc_package"][:]
token_bytes, names = tok["token_bytes"][:], [p.decode() for p in tok["packages"][:]]

def expected(ctx, first):
    rows = {}
    for p in sorted(set(pkg)):
        stream = np.concatenate([tokens[off[d]:off[d + 1]] for d in np.flatnonzero(pkg == p)])
        scored = []
        for start in range(0, len(stream) - 1, ctx):
            length = min(ctx, len(stream) - 1 - start)
            scored.extend(stream[start + 1 + first:start + 1 + length])
        scored = np.array(scored, np.int64)
        rows[names[p]] = (len(scored), int(token_bytes[scored].sum()), len(stream))
    return rows

for path, first in (("half.h5", 12), ("all.h5", 0)):
    f = h5py.File(path)
    assert f.attrs["schema"] == "codelm-lab/ppl/1" and f.attrs["ctx"] == 24
    assert f.attrs["scored"] == ("second-half" if first else "all")
    t = f["by_package"]
    got_names = [p.decode() for p in t["package"][:]]
    want = expected(24, first)
    assert got_names == list(want), (got_names, list(want))
    for i, name in enumerate(got_names):
        n_tok, n_bytes, stream_len = want[name]
        assert t["tokens_scored"][i] == n_tok, (path, name, t["tokens_scored"][i], n_tok)
        assert t["bytes_scored"][i] == n_bytes, (path, name, t["bytes_scored"][i], n_bytes)
        if not first:
            assert n_tok == stream_len - 1, "--score all: every token but the package's first"
        nll = t["nll_nats"][i]
        assert math.isclose(t["cross_entropy"][i], nll / n_tok, rel_tol=1e-12)
        assert math.isclose(t["perplexity"][i], math.exp(nll / n_tok), rel_tol=1e-12)
        assert math.isclose(t["bits_per_byte"][i], nll / math.log(2) / n_bytes, rel_tol=1e-12)
    for col in ("tokens_scored", "bytes_scored", "nll_nats"):
        assert math.isclose(f.attrs[col], t[col][:].sum(), rel_tol=1e-12), col
    nll, n, b = f.attrs["nll_nats"], f.attrs["tokens_scored"], f.attrs["bytes_scored"]
    assert math.isclose(f.attrs["cross_entropy"], nll / n, rel_tol=1e-12)
    assert math.isclose(f.attrs["perplexity"], math.exp(nll / n), rel_tol=1e-12)
    assert math.isclose(f.attrs["bits_per_byte"], nll / math.log(2) / b, rel_tol=1e-12)
    print(f"{path}: {n} tokens, {b} bytes scored; {nll / n:.4f} nats/token, {f.attrs['bits_per_byte']:.4f} bits/byte")
EOF
pass "windowing, counts and formulas match an independent computation"

# windows batched together or one at a time: the same losses (to float rounding)
$E ppl --model base.h5 --tokens tokens.h5 --split test --ctx 24 --score all --batch 1 --out one.h5 --threads 1 >/dev/null 2>&1
"$PY" - <<'EOF' || fail "batching changes the scores"
import h5py, numpy as np
a, b = h5py.File("all.h5")["by_package"], h5py.File("one.h5")["by_package"]
assert (a["tokens_scored"][:] == b["tokens_scored"][:]).all()
assert np.allclose(a["nll_nats"][:], b["nll_nats"][:], rtol=1e-5, atol=0), (a["nll_nats"][:], b["nll_nats"][:])
EOF
pass "--batch 8 and --batch 1 give the same nll"

train_tiny other.h5 --steps 5 --dim 16 >/dev/null
"$LAB_BIN/lab-train" --mode lora --base other.h5 --tokens tokens.h5 --batch 2 --seq 16 --steps 3 --threads 1 --out other_adapter.h5 >/dev/null
cp base.h5 base_half.h5
truncate -s $(($(stat -c %s base.h5) / 2)) base_half.h5
P="ppl --tokens tokens.h5 --out x.h5 --threads 1"
expect_error "a tokens file as the model" tokens.h5 "expected schema 'codelm-lab/checkpoint/1', found 'codelm-lab/tokens/1'" -- $E $P --model tokens.h5
expect_error "a truncated model" base_half.h5 "truncated or corrupt" -- $E $P --model base_half.h5
expect_error "a missing model" nope.h5 "cannot open" -- $E $P --model nope.h5
expect_error "an adapter for another base" other_adapter.h5 "expected an adapter for base.h5 (dim 32), found one made for a base with dim 16" -- \
  $E $P --model base.h5 --adapter other_adapter.h5
expect_error "a context longer than the model's" base.h5 "--ctx 64: expected at most base.h5's max_seq_len 32" -- $E $P --model base.h5 --ctx 64
expect_error "an absent split" tokens.h5 "expected split 'heldout'" -- $E $P --model base.h5 --split heldout --ctx 32
[ ! -e x.h5 ] && [ ! -e x.h5.tmp ] || fail "an output was left behind by a failed run"
echo "eval_ppl: all passed"
