#!/usr/bin/env bash
# lab-profile bench and serve on a tiny trained model: the tables of codelm-lab/profile/1 and
# codelm-lab/serve/1 (rows per configuration and repetition, the memory and bandwidth formulas
# recomputed independently, the metrics' internal consistency), a random-init width sweep, and
# clear errors that leave no output behind.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
train_tiny base.h5 --steps 5 >/dev/null

"$LAB_BIN/lab-profile" --help >help.txt && grep -q "codelm-lab/profile/1" help.txt || fail "--help does not describe bench"

"$LAB_BIN/lab-profile" bench --model base.h5 --out bench.h5 --formats f32,q4_0 --kv contiguous,none --batch 1,2 \
  --prompt 8 --gen 4 --reps 2 --warmup 1 --threads 1 >bench.txt 2>bench.log || fail "bench: $(tail -2 bench.log)"
"$PY" - <<'EOF_PY' || fail "bench tables"
import h5py, numpy as np
f = h5py.File("bench.h5")
assert f.attrs["schema"] == "codelm-lab/profile/1"
c, t = f["configs"], f["trials"]
n_cfg = 2 * 2 * 2  # formats x kv x batch
assert len(c["config"]) == 2 * n_cfg, "a pp and a tg row per configuration"
assert len(t["config"]) == 2 * n_cfg * 2, "every repetition kept"
test = [x.decode() for x in c["test"][:]]
assert sorted(set(test)) == ["pp8", "tg4"], test
L, C, H = int(c["layers"][0]), int(c["dim"][0]), int(c["heads"][0])
with h5py.File("base.h5") as b:
    nkv, V, F = int(b.attrs["n_kv_heads"]), int(b.attrs["vocab_size"]), int(b.attrs["ffn_dim"])
hd = C // H
for i in range(len(test)):
    B, P, G = int(c["batch"][i]), int(c["prompt"][i]), int(c["gen"][i])
    assert c["kv_bytes_formula"][i] == 2 * L * nkv * hd * (P + G) * B * 4, i
    mats = L * (C * (2 * C + 2 * nkv * hd) + 3 * C * F) + V * C
    norms = 4 * C * (2 * L + 1)
    bpw = {"f32": 32, "q4_0": 4.5}[c["format"][i].decode()]
    assert c["weight_bytes"][i] == int(mats * bpw / 8 + norms), (i, c["weight_bytes"][i])
    assert c["mem_formula_bytes"][i] == c["weight_bytes"][i] + c["kv_bytes_formula"][i]
    assert c["rss_peak_bytes"][i] > 0 and c["mem_measured_bytes"][i] > 0
    rows = (t["config"][:] == c["config"][i]) & (t["test"][:] == c["test"][i])
    tps = t["tokens_per_s"][:][rows]
    assert len(tps) == 2 and np.isclose(c["median_tokens_per_s"][i], np.median(tps))
    assert np.all(t["tokens"][:][rows] == B * (P if test[i].startswith("pp") else G))
    assert c["min_tokens_per_s"][i] <= c["median_tokens_per_s"][i] <= c["max_tokens_per_s"][i]
    assert np.isclose(c["fraction_of_bound"][i], c["median_tokens_per_s"][i] / c["bound_tokens_per_s"][i])
q4 = c["weight_bytes"][:][c["format"][:] == b"q4_0"][0]
f32 = c["weight_bytes"][:][c["format"][:] == b"f32"][0]
assert q4 < f32 / 4, (q4, f32)
for a in ("bandwidth_gbs", "sgemm_gflops", "load_start", "load_end"):
    assert f.attrs[a] > 0 or a.startswith("load"), a
assert f.attrs["qkernel"] in ("portable", "avx2", "avx512")
EOF_PY
pass "bench: tables, formulas, every repetition kept"

"$LAB_BIN/lab-profile" bench --model base.h5 --out width.h5 --dim 32,64 --layers 1 --batch 1 --prompt 8 --gen 4 \
  --reps 1 --warmup 0 --threads 1 >/dev/null 2>width.log || fail "width sweep: $(tail -2 width.log)"
[ "$("$PY" -c 'import h5py; c = h5py.File("width.h5")["configs"]; print(sorted(set(c["dim"][:].tolist())), set(c["layers"][:].tolist()))')" = "[32, 64] {1}" ] ||
  fail "width sweep: expected dims 32 and 64 at 1 layer"
pass "bench: random-init width sweep"

"$LAB_BIN/lab-profile" serve --model base.h5 --out serve.h5 --rate inf,50 --requests 6 --batch 2 --prompt-min 4 \
  --prompt-max 8 --output-min 2 --output-max 5 --block-size 4 --threads 1 >serve.txt 2>serve.log || fail "serve: $(tail -2 serve.log)"
"$PY" - <<'EOF_PY' || fail "serve tables"
import h5py, numpy as np
f = h5py.File("serve.h5")
assert f.attrs["schema"] == "codelm-lab/serve/1"
r, q, itl = f["runs"], f["requests"], f["itl"]
assert len(r["run"]) == 2 * 2 * 2, "schedulers x kv modes x rates"
assert sorted({x.decode() for x in r["scheduler"][:]}) == ["continuous", "static"]
for run in r["run"][:]:
    rows = q["run"][:] == run
    assert rows.sum() == 6
    out = q["output_len"][:][rows]
    assert np.all((2 <= out) & (out <= 5)) and np.all(q["ttft_s"][:][rows] <= q["e2el_s"][:][rows])
    assert (itl["run"][:] == run).sum() == (out - 1).sum(), "one ITL gap per token after the first"
    i = list(r["run"][:]).index(run)
    assert np.isclose(r["ttft_p50_s"][i], np.percentile(q["ttft_s"][:][rows], 50))
    assert 0 <= r["kv_mean_waste"][i] < 1
paged = r["kv_mean_waste"][:][r["kv_mode"][:] == b"paged"]
contig = r["kv_mean_waste"][:][r["kv_mode"][:] == b"contiguous"]
assert paged.max() < contig.min(), (paged, contig)
EOF_PY
pass "serve: runs, requests, ITL gaps, percentiles, paged wastes less"

expect_error "bad format" "--formats" "expected f32, bf16, f16, q8_0 or q4_0" -- \
  "$LAB_BIN/lab-profile" bench --model base.h5 --out x.h5 --formats q3
expect_error "too long for the context" "base.h5" "context" -- \
  "$LAB_BIN/lab-profile" bench --model base.h5 --out x.h5 --prompt 30 --gen 10
expect_error "serve: bad scheduler" "--scheduler" "expected static or continuous" -- \
  "$LAB_BIN/lab-profile" serve --model base.h5 --out x.h5 --scheduler fifo
expect_error "missing model" "nope.h5" "nope.h5" -- "$LAB_BIN/lab-profile" bench --model nope.h5 --out x.h5
[ ! -e x.h5 ] && [ ! -e x.h5.tmp ] || fail "an error left x.h5 behind"
pass "lab-profile"
