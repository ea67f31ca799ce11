#!/usr/bin/env bash
# Training throughput of a default-like CPU model (V 4096, C 256, 4 layers, 4 heads, ctx 256,
# batch 8; override with the variables below), not a test: prints numbers.
#   - lab-train: whole optimizer steps (forward, backward, clipping, AdamW) on real Python tokens,
#     tokens/s per step (the first step of each run is left out as warm-up), per run the median;
#   - lab-bench: the same model's forward+backward with the matmul time measured inside the
#     backend, as a share of the step and as a fraction of the machine's sgemm rate measured in
#     the same run on the model's (B*T) x F x C product.
# Each is repeated REPS times: median and spread (min..max). Load average before and after, the
# OpenBLAS core and the thread count are printed, since a busy machine moves every number.
#   bash tests/bench/train_bench.sh                  # tools from build/
#   LAB_BIN=build-x REPS=5 STEPS=8 THREADS=2 bash tests/bench/train_bench.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${LAB_BIN:-$ROOT/build}
VOCAB=${VOCAB:-4096} DIM=${DIM:-256} LAYERS=${LAYERS:-4} HEADS=${HEADS:-4} CTX=${CTX:-256}
BATCH=${BATCH:-8} STEPS=${STEPS:-6} REPS=${REPS:-3} THREADS=${THREADS:-$(nproc)}
for tool in lab-corpus lab-tokenizer lab-train lab-bench; do
  [ -x "$BIN/$tool" ] || { echo "train_bench: $BIN/$tool not found (build first, or set LAB_BIN)" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/train_bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=1700000000

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# median and spread of numbers on stdin: "median M, spread LO..HI (±P% of the median)"
summary() {
  sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "median %.4g, spread %.4g..%.4g (±%.1f%% of the median), n=%d\n", m, v[1], v[NR], 50 * (v[NR] - v[1]) / m, NR }'
}

# tokens: standard-library packages, a BPE of VOCAB tokens trained on them
STD=/usr/lib/python3.11
[ -f "$STD/json/__init__.py" ] || STD=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
dirs=""
for p in asyncio email unittest xml multiprocessing importlib lib2to3 concurrent json; do dirs="$dirs --dir $p=$STD/$p"; done
"$BIN/lab-corpus" --out "$W/corpus.h5" $dirs --val-packages json --test-packages concurrent >"$W/corpus.log" 2>&1 ||
  { tail -3 "$W/corpus.log"; exit 1; }
"$BIN/lab-tokenizer" train --corpus "$W/corpus.h5" --vocab-size "$VOCAB" --out "$W/tok.h5" >"$W/tok.log" 2>&1 ||
  { tail -3 "$W/tok.log"; exit 1; }
"$BIN/lab-tokenizer" encode --corpus "$W/corpus.h5" --tokenizer "$W/tok.h5" --out "$W/tokens.h5" >>"$W/tok.log" 2>&1 ||
  { tail -3 "$W/tok.log"; exit 1; }

load_before=$(cut -d' ' -f1 /proc/loadavg)
MODEL="--dim $DIM --layers $LAYERS --heads $HEADS --ctx $CTX --batch $BATCH --threads $THREADS"
: >"$W/train_tok_s" >"$W/train_gflops"
for r in $(seq "$REPS"); do
  "$BIN/lab-train" --mode pretrain --tokens "$W/tokens.h5" --out "$W/ckpt.h5" $MODEL --steps "$STEPS" \
    --val-split none --log-every 1 --seed "$r" >"$W/train.$r.txt"
  # per-step lines: "step N/S | loss | lr | norm | X tok/s | Y GFLOP/s"; step 1 is the warm-up
  awk -F'|' '/^step/ && !/^step +1\// { print $5 + 0 }' "$W/train.$r.txt" | median >>"$W/train_tok_s"
  awk -F'|' '/^step/ && !/^step +1\// { print $6 + 0 }' "$W/train.$r.txt" | median >>"$W/train_gflops"
done
: >"$W/mm_share" >"$W/mm_rate" >"$W/sgemm" >"$W/ratio" >"$W/fb_tok_s"
for r in $(seq "$REPS"); do
  "$BIN/lab-bench" --vocab "$VOCAB" $MODEL --steps "$STEPS" >"$W/bench.$r.txt"
  sed -n 's/^forward+backward: \([0-9.]*\) tokens\/s.*/\1/p' "$W/bench.$r.txt" >>"$W/fb_tok_s"
  # "  matmuls (linear layers + head): 0.639 s = 80%, 81.9 GFLOP/s"
  sed -n 's/^ *matmuls .*: [0-9.]* s = \([0-9.]*\)%, [0-9.]* GFLOP\/s/\1/p' "$W/bench.$r.txt" >>"$W/mm_share"
  sed -n 's/^ *matmuls .*: [0-9.]* s = [0-9.]*%, \([0-9.]*\) GFLOP\/s/\1/p' "$W/bench.$r.txt" >>"$W/mm_rate"
  sed -n 's/^machine sgemm [0-9x]*: \([0-9.]*\) GFLOP\/s.*/\1/p' "$W/bench.$r.txt" >>"$W/sgemm"
  sed -n 's/^ratio model matmuls \/ machine sgemm: \([0-9.]*\)/\1/p' "$W/bench.$r.txt" >>"$W/ratio"
done
load_after=$(cut -d' ' -f1 /proc/loadavg)
for f in train_tok_s train_gflops fb_tok_s mm_share mm_rate sgemm ratio; do
  [ "$(wc -l <"$W/$f")" -eq "$REPS" ] || { echo "train_bench: could not read $f from the tools' output:" >&2; cat "$W/bench.1.txt" "$W/train.1.txt" >&2; exit 1; }
done

head -1 "$W/train.1.txt"
sed -n '1,2p' "$W/bench.1.txt"
echo "load average (1 min): $load_before before, $load_after after; $REPS repetitions of $STEPS steps"
echo "lab-train tokens/s (per run, median of steps 2..$STEPS):   $(summary <"$W/train_tok_s")"
echo "lab-train GFLOP/s achieved (6N + attention):         $(summary <"$W/train_gflops")"
echo "lab-bench forward+backward tokens/s:                 $(summary <"$W/fb_tok_s")"
echo "matmul share of the forward+backward time (%):       $(summary <"$W/mm_share")"
echo "model matmul GFLOP/s:                                $(summary <"$W/mm_rate")"
echo "machine sgemm GFLOP/s ($((BATCH * CTX)) x F x $DIM):             $(summary <"$W/sgemm")"
echo "model matmul rate / machine sgemm rate:              $(summary <"$W/ratio")"
