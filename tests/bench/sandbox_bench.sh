#!/usr/bin/env bash
# Sandbox throughput and per-run overhead, not a test: prints numbers.
#   - candidates/s: lab-sandbox on N trivial passing programs with WORKERS workers (whole command,
#     HDF5 output included);
#   - per run: lab-sandbox with 1 worker, command time / N, next to a bare
#     `$PYTHON -I -S -B -c pass` (the same interpreter) started N times from a shell loop in the same run; the difference
#     is what the sandbox adds (temp dir, namespaces, uid switch, rlimits, sweep, clean-up).
# Each is repeated REPS times: median and spread (min..max). Load average before and after.
#   bash tests/bench/sandbox_bench.sh                  # tools from build/
#   LAB_BIN=build-x N=40 REPS=5 WORKERS=2 bash tests/bench/sandbox_bench.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${LAB_BIN:-$ROOT/build}
N=${N:-40} REPS=${REPS:-5} WORKERS=${WORKERS:-2} PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$BIN/lab-sandbox" ] || { echo "sandbox_bench: $BIN/lab-sandbox not found (build first, or set LAB_BIN)" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/sandbox_bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=1700000000

# median and spread of numbers on stdin: "median M, spread LO..HI (±P% of the median), n=K"
summary() {
  sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "median %.4g, spread %.4g..%.4g (±%.1f%% of the median), n=%d\n", m, v[1], v[NR], 50 * (v[NR] - v[1]) / m, NR }'
}
now() { date +%s.%N; }

files=()
for i in $(seq 1 "$N"); do
  printf 'def add(a, b):\n    return a + b\nassert add(%d, 1) == %d\n' "$i" "$((i + 1))" >"$W/c$i.py"
  files+=("$W/c$i.py")
done

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, $PYTHON $("$PYTHON" --version), uid $(id -u)"
: >"$W/rate" ; : >"$W/sandbox1" ; : >"$W/bare"
for r in $(seq 1 "$REPS"); do
  t0=$(now)
  "$BIN/lab-sandbox" --out "$W/r.h5" --workers "$WORKERS" --python "$PYTHON" "${files[@]}" >"$W/r.tsv" 2>"$W/r.log"
  t1=$(now)
  [ "$(grep -c $'\tpassed\t' "$W/r.tsv")" -eq "$N" ] || { echo "sandbox_bench: not all passed: $(tail -1 "$W/r.log")" >&2; exit 1; }
  echo "$N $t0 $t1" | awk '{ print $1 / ($3 - $2) }' >>"$W/rate"

  t0=$(now)
  "$BIN/lab-sandbox" --out "$W/r1.h5" --workers 1 --python "$PYTHON" "${files[@]}" >/dev/null 2>&1
  t1=$(now)
  echo "$N $t0 $t1" | awk '{ print 1000 * ($3 - $2) / $1 }' >>"$W/sandbox1"

  t0=$(now)
  for i in $(seq 1 "$N"); do "$PYTHON" -I -S -B -c pass; done
  t1=$(now)
  echo "$N $t0 $t1" | awk '{ print 1000 * ($3 - $2) / $1 }' >>"$W/bare"
done
netw=$(cut -f5 "$W/r.tsv" | tail -n +2 | sort -u | tr '\n' ' ')
echo "network isolation: $netw"
echo "candidates/s, $WORKERS workers, $N trivial passing programs: $(summary <"$W/rate")"
echo "ms per run, sandboxed, 1 worker:            $(summary <"$W/sandbox1")"
echo "ms per run, bare python -I -S -B -c pass:     $(summary <"$W/bare")"
paste "$W/sandbox1" "$W/bare" | awk '{ print $1 - $2 }' >"$W/over"
echo "overhead ms per run (same repetition):      $(summary <"$W/over")"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
