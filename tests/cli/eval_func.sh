#!/usr/bin/env bash
# lab-eval func, check-tasks and edit. A generations file of known completions (canonical, wrong,
# an endless loop, a crash) gives exactly the per-task counts, statuses and pass@k that an
# independent computation (math.comb) gives; the real chain lab-generate -> lab-eval func and
# edit runs on a tiny model; check-tasks keeps and rejects the right tasks and gates a bad set;
# edit distances match hand-computed values; bad inputs give one clear line and no output.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"

"$LAB_BIN/lab-eval" --help >help.txt && grep -q "codelm-lab/func/1" help.txt || fail "--help does not describe func"

cat >tasks.jsonl <<'EOF_T'
{"task_id": "t/add", "prompt": "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", "entry_point": "add", "canonical_solution": "    return a + b\n", "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n", "difficulty": 1}
{"task_id": "t/rev", "prompt": "def rev(s):\n    \"\"\"Return s reversed.\"\"\"\n", "entry_point": "rev", "canonical_solution": "    return s[::-1]\n", "test": "def check(candidate):\n    assert candidate('ab') == 'ba'\n    assert candidate('') == ''\n", "difficulty": 2}
{"task_id": "t/caf\u00e9", "prompt": "def neg(x):\n    \"\"\"Return -x.\"\"\"\n", "entry_point": "neg", "canonical_solution": "    return -x\n", "test": "def check(candidate):\n    assert candidate(2) == -2\n", "difficulty": 3}
EOF_T

# generations with known outcomes, written the way lab-generate writes them (an independent writer)
"$PY" - <<'EOF_PY' || fail "writing the fixture generations"
import json, h5py, numpy as np
tasks = [json.loads(l) for l in open("tasks.jsonl")]
rows = [  # (task, completion): add 3/4 pass, rev 1/4 pass, neg 0/4 pass
    (0, "    return a + b\n"), (0, "    return b + a\n"), (0, "    return a - b\n"), (0, "    return (a + b)\n"),
    (1, "    return s\n"), (1, "    while True:\n        pass\n"), (1, "    return s[::-1]\n"), (1, "    return 1 / 0\n"),
    (2, "    return x\n"), (2, "    return x +\n"), (2, "    return None\n"), (2, "    raise SystemExit(3)\n"),
]
def write(path, rows, prompts):
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "codelm-lab/generations/1"
        f.attrs["n_samples"] = 4
        f.attrs["temperature"] = 0.8
        g = f.create_group("generations")
        s = h5py.string_dtype()
        g["task"] = np.array([r[0] for r in rows], np.int64)
        g["sample"] = np.array([i % 4 for i in range(len(rows))], np.int64)
        g["task_id"] = np.array([tasks[r[0]]["task_id"] for r in rows], dtype=s)
        g["completion"] = np.array([r[1] for r in rows], dtype=s)
        g.attrs["columns"] = "task,sample,task_id,completion"
        g.attrs["rows"] = len(rows)
        f["prompts"] = np.array(prompts, dtype=s)
write("known.h5", rows, [t["prompt"] for t in tasks])
write("other_prompt.h5", rows, [t["prompt"] for t in tasks[:2]] + ["def other():\n"])
write("missing_task.h5", rows[:8], [t["prompt"] for t in tasks])
EOF_PY

"$LAB_BIN/lab-eval" func --tasks tasks.jsonl --generations known.h5 --out func.h5 --workers 2 --wall 3 >func.txt 2>func.log ||
  fail "func on known completions: $(tail -2 func.log)"
"$PY" - <<'EOF_PY' || fail "func results"
import h5py, math
f = h5py.File("func.h5")
assert f.attrs["schema"] == "codelm-lab/func/1"
s = f["samples"]
st = [x.decode() for x in s["status"][:]]
want = ["passed", "passed", "failed", "passed",
        "failed", "timeout", "passed", "error",
        "failed", "error", "failed", "error"]
assert st == want, st
reasons = [x.decode() for x in s["reason"][:]]
assert "ZeroDivisionError" in reasons[7] and "SyntaxError" in reasons[9] and "exit 3" in reasons[11], reasons
t = f["tasks"]
assert t["n"][:].tolist() == [4, 4, 4] and t["c"][:].tolist() == [3, 1, 0]
assert t["difficulty"][:].tolist() == [1, 2, 3]
assert [x.decode() for x in t["task_id"][:]] == ["t/add", "t/rev", "t/caf\u00e9"]
def pk(n, c, k):
    return 1 - math.comb(n - c, k) / math.comb(n, k)
for i, c in enumerate([3, 1, 0]):
    assert abs(t["pass_at_1"][i] - pk(4, c, 1)) < 1e-15
assert math.isnan(t["pass_at_10"][0]) and math.isnan(f.attrs["pass_at_10"]), "n = 4 < 10: not reported"
assert abs(f.attrs["pass_at_1"] - (0.75 + 0.25 + 0) / 3) < 1e-15
assert f.attrs["n_passed"] == 4 and f.attrs["n_timeout"] == 1 and f.attrs["n_error"] == 3
assert f.attrs["n_syntax_error"] == 1, "return x + (no operand) is the one syntax error"
assert f.attrs["wall_limit_s"] == 3
EOF_PY
grep -q '^pass@1 0.3333' func.txt || fail "func summary: $(cat func.txt)"
pass "func: statuses, counts and pass@k of known completions"

expect_error "generations for another prompt" other_prompt.h5 "expected the prompt of tasks.jsonl" -- \
  "$LAB_BIN/lab-eval" func --tasks tasks.jsonl --generations other_prompt.h5 --out bad.h5
expect_error "a task without completions" missing_task.h5 "found none for t/caf" -- \
  "$LAB_BIN/lab-eval" func --tasks tasks.jsonl --generations missing_task.h5 --out bad.h5
printf '{"task_id": "x", "prompt": "def f():\\n", "entry_point": "f"}\n' >no_test.jsonl
expect_error "a task without a test" no_test.jsonl 'expected a "test" string field' -- \
  "$LAB_BIN/lab-eval" func --tasks no_test.jsonl --generations known.h5 --out bad.h5
printf '{"task_id": "x", "prompt": 3}\n' >bad_type.jsonl
expect_error "a prompt of the wrong type" bad_type.jsonl 'expected a string for "prompt"' -- \
  "$LAB_BIN/lab-eval" func --tasks bad_type.jsonl --generations known.h5 --out bad.h5
[ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "a failed run left an output behind"

# check-tasks: a good set passes the gate; a set with a wrong canonical solution, one whose test a
# `pass` body satisfies, and one whose test ignores the return value are flagged
"$LAB_BIN/lab-eval" check-tasks --tasks tasks.jsonl --out check.h5 >check.txt 2>check.log ||
  fail "check-tasks on a good set: $(tail -2 check.log)"
grep -q "canonical passed 3/3, pass body passed 0, planted bug passed 0" check.txt || fail "check summary: $(cat check.txt)"
"$PY" - <<'EOF_PY' >bad_tasks.jsonl
import json
good = [json.loads(l) for l in open("tasks.jsonl")]
wrong = dict(good[0], task_id="bad/wrong", canonical_solution="    return a - b\n")
trivial = dict(good[1], task_id="bad/trivial", test="def check(candidate):\n    candidate('x')\n")
print(json.dumps(good[2]))
print(json.dumps(wrong))
print(json.dumps(trivial))
EOF_PY
# (the gate fails after the runs, so progress lines come first: the error is the last line)
code=0
"$LAB_BIN/lab-eval" check-tasks --tasks bad_tasks.jsonl --out gate.h5 >gate.txt 2>gate.log || code=$?
[ "$code" -ne 0 ] || fail "check-tasks gate: expected a non-zero exit on a bad task set"
tail -1 gate.log | grep -qF "bad_tasks.jsonl: task bad/wrong: expected its canonical solution to pass, found failed" ||
  fail "check-tasks gate: last line: $(tail -1 gate.log)"
[ ! -e gate.h5 ] || fail "the failed gate left gate.h5"
"$LAB_BIN/lab-eval" check-tasks --tasks bad_tasks.jsonl --out keep.h5 --keep kept.jsonl >keep.txt 2>keep.log ||
  fail "check-tasks --keep: $(tail -2 keep.log)"
"$PY" - <<'EOF_PY' || fail "check-tasks --keep"
import json, h5py
kept = [json.loads(l) for l in open("kept.jsonl")]
orig = [json.loads(l) for l in open("bad_tasks.jsonl")]
assert [t["task_id"] for t in kept] == ["t/caf\u00e9"], kept
assert kept[0] == orig[0], "a kept task is written back unchanged"
f = h5py.File("keep.h5")
t = f["tasks"]
assert [x.decode() for x in t["canonical"][:]] == ["passed", "failed", "passed"]
assert [x.decode() for x in t["pass_body"][:]] == ["failed", "failed", "passed"]
assert [x.decode() for x in t["planted_bug"][:]] == ["failed", "failed", "passed"]
assert t["kept"][:].tolist() == [1, 0, 0] and f.attrs["n_kept"] == 1
EOF_PY
pass "check-tasks: gate, --keep, per-check statuses"

# edit: hand-computed distances
make_tokens tokens.h5
cat >edit_tasks.jsonl <<'EOF_T'
{"task_id": "e/0", "prompt": "x = ", "canonical_solution": "kitten"}
{"task_id": "e/1", "prompt": "y = ", "canonical_solution": "    return a  \n"}
{"task_id": "e/2", "prompt": "z = ", "canonical_solution": "caf\u00e9"}
EOF_T
"$PY" - <<'EOF_PY' || fail "writing edit fixture"
import json, h5py, numpy as np
tasks = [json.loads(l) for l in open("edit_tasks.jsonl")]
rows = [(0, "sitting"), (1, "    return a"), (2, "cafe"), (2, "caf\u00e9")]
with h5py.File("edit_gen.h5", "w") as f:
    f.attrs["schema"] = "codelm-lab/generations/1"
    f.attrs["n_samples"] = 1
    f.attrs["temperature"] = 0.0
    g = f.create_group("generations")
    s = h5py.string_dtype()
    g["task"] = np.array([r[0] for r in rows], np.int64)
    g["sample"] = np.array([0, 0, 0, 1], np.int64)
    g["task_id"] = np.array([tasks[r[0]]["task_id"] for r in rows], dtype=s)
    g["completion"] = np.array([r[1] for r in rows], dtype=s)
    g.attrs["columns"] = "task,sample,task_id,completion"
    g.attrs["rows"] = len(rows)
    f["prompts"] = np.array([t["prompt"] for t in tasks], dtype=s)
EOF_PY
"$LAB_BIN/lab-eval" edit --tasks edit_tasks.jsonl --generations edit_gen.h5 --tokenizer tokenizer.h5 --out edit.h5 >edit.txt 2>edit.log ||
  fail "edit: $(tail -2 edit.log)"
"$PY" - <<'EOF_PY' || fail "edit results"
import h5py
f = h5py.File("edit.h5")
s = f["samples"]
assert s["lev_chars"][:].tolist() == [3, 3, 1, 0], s["lev_chars"][:]
assert s["len_ref_chars"][:].tolist() == [6, 15, 4, 4]
assert abs(s["es_chars"][0] - (1 - 3 / 7)) < 1e-12 and s["es_chars"][3] == 1.0
assert s["exact_match"][:].tolist() == [0, 0, 0, 1]
assert s["exact_match_normalized"][:].tolist() == [0, 1, 0, 1]
assert s["es_tokens"][3] == 1.0 and s["lev_tokens"][3] == 0 and s["lev_tokens"][0] > 0
assert abs(f.attrs["exact_match"] - 0.25) < 1e-12
EOF_PY
pass "edit: distances, similarities and exact matches"

# the real chain on a tiny model: every completion gets a result, nothing passes by accident
train_tiny base.h5 --steps 20 >/dev/null
"$LAB_BIN/lab-generate" --model base.h5 --tokenizer tokenizer.h5 --prompts-jsonl tasks.jsonl --n-samples 2 \
  --temperature 0.8 --max-new-tokens 12 --seed 3 --out gen.h5 2>gen.log || fail "lab-generate: $(tail -2 gen.log)"
"$LAB_BIN/lab-eval" func --tasks tasks.jsonl --generations gen.h5 --out real.h5 >real.txt 2>real.log ||
  fail "func on generated completions: $(tail -2 real.log)"
[ "$("$PY" -c 'import h5py; print(h5py.File("real.h5")["tasks"]["n"][:].tolist())')" = "[2, 2, 2]" ] ||
  fail "func on generated completions: per-task counts"
"$LAB_BIN/lab-eval" edit --tasks tasks.jsonl --generations gen.h5 --tokenizer tokenizer.h5 --out real_edit.h5 >/dev/null 2>&1 ||
  fail "edit on generated completions"
pass "lab-generate -> lab-eval func / edit"
echo "all eval_func checks passed"
