#!/usr/bin/env bash
# data/tasks/lab_tasks.jsonl: every line well formed; every canonical solution passes its own
# test in lab-sandbox; a `pass` body fails every test (tests are not satisfied by None); and a
# solution whose return value is perturbed by type fails at least 95% of the tests.
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
# The perturbation wraps the finished function, so any return type the tasks use maps to a
# value that differs from it; bool is tested before int because bool is an int.
broken = '''
def _broken(r):
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, str):
        return r + "x"
    if isinstance(r, list):
        return r + [None]
    if isinstance(r, tuple):
        return r + (None,)
    if isinstance(r, dict):
        return {**r, "_broken": None}
    if r is None:
        return 0
    return object()
_orig = ENTRY
def ENTRY(*a, **k):
    return _broken(_orig(*a, **k))
'''
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
    tail = "\n" + t["test"] + "\ncheck(" + t["entry_point"] + ")\n"
    name = t["entry_point"]
    for kind, program in (("good", t["prompt"] + t["canonical_solution"] + tail),
                          ("stub", t["prompt"] + "    pass\n" + tail),
                          ("bug", t["prompt"] + t["canonical_solution"] + broken.replace("ENTRY", name) + tail)):
        with open(f"{kind}_{n - 1:03d}.py", "w") as out:
            out.write(program)
    order.append(t["difficulty"])
assert len(order) >= 150, f"{path}: expected at least 150 tasks, found {len(order)}"
print("tasks", len(order), "by difficulty", {d: order.count(d) for d in (1, 2, 3)})
EOF_PY

for kind in good stub bug; do
  "$BIN/lab-sandbox" --out "$kind.h5" --workers 2 --wall 10 "$kind"_*.py >"$kind.tsv" 2>"$kind.log" ||
    fail "lab-sandbox on $kind programs: $(tail -2 "$kind.log")"
done

"$PY" - <<'EOF_PY' || fail "sandbox results"
import h5py
def statuses(kind):
    with h5py.File(f"{kind}.h5") as f:
        t = f["results"]
        return [(a.decode(), b.decode(), c.decode()) for a, b, c in zip(t["file"][:], t["status"][:], t["reason"][:])]
good, stub, bug = statuses("good"), statuses("stub"), statuses("bug")
n = len(good)
assert len(stub) == n and len(bug) == n, (n, len(stub), len(bug))
not_passed = [(f, s, r) for f, s, r in good if s != "passed"]
stub_passed = [f for f, s, _ in stub if s == "passed"]
bug_passed = [f for f, s, _ in bug if s == "passed"]
print(f"canonical passed {n - len(not_passed)}/{n}; pass-stub passed {len(stub_passed)}/{n}; "
      f"perturbed passed {len(bug_passed)}/{n} (caught {100 * (n - len(bug_passed)) / n:.1f}%)")
assert not not_passed, f"expected every canonical solution to pass, found {not_passed}"
assert not stub_passed, f"expected every `pass` body to fail, found passing {stub_passed}"
assert len(bug_passed) <= 0.05 * n, f"expected at least 95% of perturbed solutions to fail, found passing {bug_passed}"
EOF_PY
echo "ok"
