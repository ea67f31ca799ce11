#!/usr/bin/env bash
# data/tasks/lab_tasks.jsonl: every line well formed (fields, ids, difficulty, at least 3 asserts,
# at least 150 tasks), and the harness's self-checks (lab-eval check-tasks, which runs each program
# in the sandbox): every canonical solution passes its own test, a `pass` body fails every test,
# and the canonical solution with a planted bug (its return value changed by type) fails every test.
set -euo pipefail
BIN=${LAB_BIN:?LAB_BIN: the build directory}
SRC=${LAB_SRC:?LAB_SRC: the repository root}
PY=$SRC/.venv/bin/python
[ -x "$PY" ] || PY=python3
TASKS=$SRC/data/tasks/lab_tasks.jsonl
T=$(mktemp -d "${TMPDIR:-/tmp}/tasks_check.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$T"

"$PY" - "$TASKS" <<'EOF_PY' || fail "task file"
import ast, json, sys
path = sys.argv[1]
fields = {"task_id": str, "prompt": str, "entry_point": str, "canonical_solution": str,
          "test": str, "difficulty": int}
ids, order = set(), []
with open(path) as f:
    lines = f.read().splitlines()
for n, line in enumerate(lines, 1):
    where = f"{path}:{n}"
    t = json.loads(line)
    for key, kind in fields.items():
        assert isinstance(t.get(key), kind), f"{where}: expected {key} of type {kind.__name__}, found {t.get(key)!r}"
    assert t["task_id"] == f"lab/{n - 1}" and t["task_id"] not in ids, f"{where}: expected task_id lab/{n - 1}, found {t['task_id']}"
    ids.add(t["task_id"])
    assert t["difficulty"] in (1, 2, 3), f"{where}: expected difficulty 1..3, found {t['difficulty']}"
    defs = [d.name for d in ast.parse(t["prompt"]).body if isinstance(d, ast.FunctionDef)]
    assert t["entry_point"] in defs, f"{where}: expected def {t['entry_point']} in the prompt, found {defs}"
    assert t["prompt"].endswith('"""\n'), f"{where}: expected the prompt to end with the docstring and a newline"
    assert all(l.startswith("    ") for l in t["canonical_solution"].splitlines() if l), f"{where}: expected a body indented 4 spaces"
    test = ast.parse(t["test"])
    asserts = sum(isinstance(x, ast.Assert) for x in ast.walk(test))
    assert asserts >= 3, f"{where}: expected at least 3 asserts, found {asserts}"
    assert any(isinstance(d, ast.FunctionDef) and d.name == "check" for d in test.body), f"{where}: expected def check"
    order.append(t["difficulty"])
assert len(order) >= 150, f"{path}: expected at least 150 tasks, found {len(order)}"
print("tasks", len(order), "by difficulty", {d: order.count(d) for d in (1, 2, 3)})
EOF_PY

"$BIN/lab-eval" check-tasks --tasks "$TASKS" --out check.h5 --workers 2 >check.txt 2>check.log ||
  fail "lab-eval check-tasks: $(tail -1 check.log)"
cat check.txt
grep -q "canonical passed 1[0-9][0-9]/1[0-9][0-9], pass body passed 0, planted bug passed 0" check.txt ||
  fail "self-checks: $(cat check.txt)"
echo "ok"
