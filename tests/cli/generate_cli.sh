#!/usr/bin/env bash
# lab-generate on a tiny trained model: the generations file (schema, table, stop reasons), stdout
# equal to the stored completion, greedy reproducible, seeded samples independent of --batch and
# different across seeds, HumanEval-style JSONL prompts (escapes, other fields), and clear errors.
source "$LAB_SRC/tests/cli/lib/train_fixtures.sh"
make_tokens tokens.h5
train_tiny base.h5 --steps 40 >/dev/null
GEN="$LAB_BIN/lab-generate --model base.h5 --tokenizer tokenizer.h5"

"$LAB_BIN/lab-generate" --help | grep -q 'codelm-lab/generations/1' || fail "--help does not describe the output"

printf 'def add(a, b):\n    """Return the sum."""\n' >p.py
$GEN --prompt-file p.py --max-new-tokens 8 --out g1.h5 >out1.txt 2>log1.txt || fail "greedy run: $(cat log1.txt)"
$GEN --prompt-file p.py --max-new-tokens 8 --out g2.h5 >out2.txt 2>/dev/null || fail "second greedy run"
cmp -s out1.txt out2.txt || fail "greedy output differs between runs"
"$PY" - <<'EOF' || fail "greedy generations file"
import h5py
f = h5py.File("g1.h5")
assert f.attrs["schema"] == "codelm-lab/generations/1"
g = f["generations"]
assert g["task"][:].tolist() == [0] and g["sample"][:].tolist() == [0]
text = g["completion"][0]
text = text if isinstance(text, bytes) else text.encode()
assert open("out1.txt", "rb").read() == text, "stdout is the stored completion"
assert 1 <= g["n_tokens"][0] <= 8
reason = g["stop_reason"][0].decode()
assert reason in ("eot", "stop", "dedent", "max_tokens", "context"), reason
assert f.attrs["temperature"] == 0 and f.attrs["max_new_tokens"] == 8
assert f["prompts"][0].decode() == open("p.py").read()
EOF
pass "greedy: stdout = stored completion, reproducible"

# HumanEval-format JSONL: escapes, a \u escape, fields before and after the prompt
cat >tasks.jsonl <<'EOF'
{"task_id": "T/0", "prompt": "def f(x):\n    \"\"\"Double x.\"\"\"\n", "entry_point": "f", "test": "assert f(1) == 2", "n": [1, {"a": "}"}]}

{"prompt": "import os\n\ndef g(caf\u00e9):\n    return ", "task_id": "T/1"}
EOF
S="--prompts-jsonl tasks.jsonl --max-new-tokens 6 --temperature 0.9 --top-k 40 --top-p 0.95 --n-samples 3"
$GEN $S --seed 1 --batch 2 --out s1.h5 >so1.txt 2>/dev/null || fail "sampling run"
$GEN $S --seed 1 --batch 5 --out s2.h5 >/dev/null 2>&1 || fail "sampling run, batch 5"
$GEN $S --seed 2 --batch 2 --out s3.h5 >/dev/null 2>&1 || fail "sampling run, seed 2"
[ ! -s so1.txt ] || fail "several prompts print nothing on stdout, found: $(head -2 so1.txt)"
"$PY" - <<'EOF' || fail "sampled generations"
import h5py
def rows(p):
    g = h5py.File(p)["generations"]
    return list(zip(*(g[c][:].tolist() for c in ("task", "sample", "task_id", "completion", "n_tokens", "stop_reason"))))
a, b, c = rows("s1.h5"), rows("s2.h5"), rows("s3.h5")
assert len(a) == 6 and [r[:3] for r in a] == [(t, k, f"T/{t}".encode()) for t in (0, 1) for k in range(3)], a
assert a == b, "the same seed gives the same samples whatever --batch"
assert [r[3] for r in a] != [r[3] for r in c], "another seed gives other samples"
f = h5py.File("s1.h5")
assert f["prompts"][1].decode() == "import os\n\ndef g(café):\n    return "
assert f.attrs["n_samples"] == 3 and f.attrs["top_k"] == 40
assert f.attrs["stops"].split("\x1f") == ["\ndef", "\nclass", "\nif", "\nprint", "\n#"]
EOF
pass "seeded sampling: batch-invariant, seed-dependent; JSONL prompts"

# a stop string that is the whole greedy completion's first byte cuts it to nothing
first=$(head -c 1 out1.txt)
if [ -n "$first" ] && [ "$first" != "-" ]; then
  $GEN --prompt-file p.py --max-new-tokens 8 --stop "$first" --out g3.h5 >out3.txt 2>/dev/null || fail "--stop run"
  [ ! -s out3.txt ] || fail "--stop '$first': expected an empty completion, found '$(cat out3.txt)'"
  [ "$("$PY" -c 'import h5py; print(h5py.File("g3.h5")["generations/stop_reason"][0].decode())')" = stop ] ||
    fail "--stop: expected stop_reason stop"
  pass "a stop string is cut off with what follows"
fi

# a prompt longer than the context keeps its last tokens and says so (ctx 32, 8 new tokens: 24 kept)
for i in $(seq 1 40); do printf 'x%d = %d\n' "$i" "$i"; done >long.py
$GEN --prompt-file long.py --max-new-tokens 8 --out long.h5 >/dev/null 2>long.log || fail "long prompt: $(cat long.log)"
grep -q "kept their last 24 tokens" long.log || fail "long prompt: expected a note on stderr, found: $(cat long.log)"
"$PY" - <<'EOF' || fail "long prompt: the generations file"
import h5py
f = h5py.File("long.h5")
assert f.attrs["prompt_room_tokens"] == 24
assert f["prompt_tokens_dropped"][0] > 0
assert f["generations/n_tokens"][0] <= 8
EOF
pass "a long prompt keeps its end"
printf '{"task_id": "E", "prompt": ""}\n' >empty.jsonl
expect_error "empty prompt" "empty.jsonl" "expected at least one token" -- $GEN --prompts-jsonl empty.jsonl --out x.h5
expect_error "bad --stop escape" "--stop" "expected the escapes" -- $GEN --prompt-file p.py --stop 'a\qb' --out x.h5

expect_error "no model" "--model" "expected --model" -- "$LAB_BIN/lab-generate" --tokenizer tokenizer.h5 --prompt-file p.py --out x.h5
expect_error "two prompt sources" "--prompts-jsonl" "exactly one of" -- $GEN --prompt-file p.py --prompts-jsonl tasks.jsonl --out x.h5
printf '{"task_id": "A", "prompt": "x\\q"}\n' >bad.jsonl
expect_error "bad escape" "bad.jsonl:1" "expected an escape" -- $GEN --prompts-jsonl bad.jsonl --out x.h5
printf '{"task_id": "A"}\n' >noprompt.jsonl
expect_error "no prompt field" "noprompt.jsonl:1" "\"prompt\"" -- $GEN --prompts-jsonl noprompt.jsonl --out x.h5
expect_error "missing prompt file" "nope.py" "cannot open" -- $GEN --prompt-file nope.py --out x.h5
expect_error "bad top-p" "--top-p" "--top-p" -- $GEN --prompt-file p.py --top-p 2 --out x.h5
[ ! -e x.h5 ] && [ ! -e x.h5.tmp ] || fail "an error left x.h5 behind"
pass "lab-generate"
