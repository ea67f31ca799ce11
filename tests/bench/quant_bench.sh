#!/usr/bin/env bash
# Batch-1 matvec speed of each weight format (f32, bf16, f16, q8_0, q4_0) as a fraction of the
# machine's read bandwidth measured in the same run, for every kernel this CPU runs (lab-qbench;
# see its --help for what is timed), then the speed-up of the best kernel over the portable one and
# the big-set fractions against issue 5's targets (>= 0.7 for f32 and bf16, >= 0.5 for q8_0 and
# q4_0). Not a test: prints numbers. Medians of REPS repetitions with min..max, the load average
# before and after, the OpenBLAS core and the kernel are printed, since a busy machine moves every
# number (on 2 cores, one other busy process halves a 2-thread product).
#   bash tests/bench/quant_bench.sh                 # lab-qbench from build/
#   LAB_BIN=build-x REPS=9 THREADS=2 MIN_TIME=0.2 bash tests/bench/quant_bench.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${LAB_BIN:-$ROOT/build}
REPS=${REPS:-7} THREADS=${THREADS:-$(nproc)} MIN_TIME=${MIN_TIME:-0.1}
[ -x "$BIN/lab-qbench" ] || { echo "quant_bench: $BIN/lab-qbench not found (build first, or set LAB_BIN)" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/quant_bench.XXXXXX")
trap 'rm -rf "$W"' EXIT

echo "load average (1, 5, 15 min) before: $(cut -d' ' -f1-3 /proc/loadavg)"
ran=""
for k in avx512 avx2 portable; do
  if "$BIN/lab-qbench" --kernel "$k" --reps "$REPS" --threads "$THREADS" --min-time "$MIN_TIME" >"$W/$k.txt" 2>"$W/$k.err"; then
    echo "== kernel $k"
    cat "$W/$k.txt"
    ran="$ran $k"
  elif grep -q "cannot run" "$W/$k.err"; then
    echo "== kernel $k: this CPU cannot run it"
  else
    cat "$W/$k.err" >&2
    exit 1
  fi
done
echo "load average (1, 5, 15 min) after: $(cut -d' ' -f1-3 /proc/loadavg)"

# table rows: format set MiB mats ms/pass ms_min ms_max GB/s of_bw pass/s
best=$(echo $ran | cut -d' ' -f1)
echo "== speed-up of $best over portable (GB/s of the median pass)"
awk 'FNR == NR && /^(f32|bf16|f16|q8_0|q4_0) +(model|big) / { b[$1 " " $2] = $8; next }
     /^(f32|bf16|f16|q8_0|q4_0) +(model|big) / { printf "%-6s %-5s %6.2fx\n", $1, $2, b[$1 " " $2] / $8 }' "$W/$best.txt" "$W/portable.txt"
echo "== big set against the targets ($best)"
awk '/^(f32|bf16|f16|q8_0|q4_0) / && $2 == "big" {
       target = ($1 == "f32" || $1 == "bf16") ? 0.7 : ($1 == "q8_0" || $1 == "q4_0") ? 0.5 : 0
       printf "%-6s %.3f of the bandwidth%s\n", $1, $9, target ? sprintf(", target %.1f: %s", target, $9 >= target ? "met" : "NOT met") : " (no target)" }' "$W/$best.txt"
