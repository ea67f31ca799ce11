#!/usr/bin/env bash
# lab-sandbox: one row per file in input order whatever the worker count, the schema and columns
# read back with h5py, the TSV summary, and bad input giving one line, exit 1 and no output file.
set -euo pipefail
BIN=${LAB_BIN:?LAB_BIN: the build directory}
SRC=${LAB_SRC:?LAB_SRC: the repository root}
PY=$SRC/.venv/bin/python
[ -x "$PY" ] || PY=python3
T=$(mktemp -d "${TMPDIR:-/tmp}/sandbox_cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$T"
export SOURCE_DATE_EPOCH=1700000000

printf 'import time\ntime.sleep(0.3)\nprint("slow")\n' >pass_slow.py
printf 'assert sorted([3, 1]) == [3, 1]\n' >fail.py
printf 'import json\njson.loads("{")\n' >error.py
printf 'while True:\n    pass\n' >loop.py
printf 'import sys\nsys.stdout.write("y" * 100000)\n' >loud.py
printf 'print(1)\n' >pass.py
files="pass_slow.py fail.py error.py loop.py loud.py pass.py"

"$BIN/lab-sandbox" --out w1.h5 --workers 1 --wall 1 --output-cap 4K $files >w1.tsv 2>w1.log || fail "workers 1: $(tail -2 w1.log)"
"$BIN/lab-sandbox" --out w2.h5 --workers 2 --wall 1 --output-cap 4K $files >w2.tsv 2>w2.log || fail "workers 2: $(tail -2 w2.log)"
[ "$(cut -f1-3,5,6 w1.tsv)" = "$(cut -f1-3,5,6 w2.tsv)" ] || fail "workers 1 and 2 disagree: $(diff w1.tsv w2.tsv)"
[ "$(cut -f2 w2.tsv | tr '\n' ' ')" = "status passed failed error timeout passed passed " ] ||
  fail "expected statuses in input order, found: $(cut -f2 w2.tsv | tr '\n' ' ')"
grep -q '1 failed, 1 timeout, 1 error' w2.log || fail "expected the counts on stderr, found $(tail -1 w2.log)"

"$PY" - <<'EOF' || fail "results file"
import h5py
f = h5py.File("w2.h5")
assert f.attrs["schema"] == "codelm-lab/sandbox/1", f.attrs["schema"]
t = f["results"]
cols = t.attrs["columns"]
cols = (cols.decode() if isinstance(cols, bytes) else cols).split(",")
want = ["index", "file", "status", "reason", "exit_code", "signal", "wall_s", "cpu_s", "network",
        "stdout_bytes", "stderr_bytes"]
assert cols == want, cols
s = lambda name: [v.decode() for v in t[name][:]]
assert list(t["index"][:]) == list(range(6))
assert s("file") == ["pass_slow.py", "fail.py", "error.py", "loop.py", "loud.py", "pass.py"], s("file")
assert s("status") == ["passed", "failed", "error", "timeout", "passed", "passed"], s("status")
reason = s("reason")
assert "AssertionError" in reason[1] and "JSONDecodeError" in reason[2] and reason[3] == "wall timeout 1.0 s", reason
assert t["signal"][3] == 9 and t["exit_code"][3] == -1 and t["exit_code"][1] == 1
assert t["wall_s"][3] >= 1.0 and t["wall_s"][0] >= 0.3 and t["wall_s"].attrs["units"] == "s"
assert t["stdout_bytes"][4] == 100000 and t["stdout_bytes"][5] == 2, list(t["stdout_bytes"][:])
assert set(s("network")) <= {"netns", "none"}
assert f.attrs["wall_limit_s"] == 1.0 and f.attrs["output_cap_bytes"] == 4096 and f.attrs["workers"] == 2
EOF

# bad input: one line on stderr, exit 1, no results file
expect_error() {
  local want=$1; shift
  if "$@" >/dev/null 2>err.txt; then fail "expected failure: $*"; fi
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "expected one error line for '$*', found: $(cat err.txt)"
  grep -q -- "$want" err.txt || fail "expected '$want' in: $(cat err.txt)"
  [ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "a results file was left by: $*"
}
expect_error "expected --out" "$BIN/lab-sandbox" pass.py
expect_error "missing.py" "$BIN/lab-sandbox" --out bad.h5 missing.py
expect_error "unknown flag '--bogus'" "$BIN/lab-sandbox" --out bad.h5 --bogus 1 pass.py
expect_error "--workers" "$BIN/lab-sandbox" --out bad.h5 --workers 0 pass.py
"$BIN/lab-sandbox" --help | grep -q "codelm-lab/sandbox/1" || fail "--help names the schema"
echo "ok: lab-sandbox"
