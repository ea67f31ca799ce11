"""workflows/scripts/mine_tasks.py on a real corpus.h5 that lab-corpus builds from hand-written
packages: a held-out one whose functions each meet one rule of the doctest mode, and a train one
with methods for the pairs mode.

Checks: which functions each mode keeps, and the reason counted for each one dropped; the exact
prompt of a doctest task; prompt + solution give back the function's text (body, pairs, next-line);
every doctest task's test, run as a real `python3 -I -S -B` program the way the harness assembles
it, passes with the canonical body and fails (AssertionError, the last line) with `pass` and with a
planted bug; the same inputs give the same bytes and another seed another sample; a bad input is
one line on stderr, exit status 1, and no output; the module imports and mines from bytes too.
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_BIN = Path(os.environ.get("LAB_BIN", REPO / "build"))
SCRIPT = REPO / "workflows" / "scripts" / "mine_tasks.py"

HEADER = '''"""Small text and number helpers: the held-out package of the mining tests."""
import re
import collections as co
from itertools import islice
from fractions import Fraction
import functools
import numpy as np
from .sibling import helper
from shlex import join
from os.path import join

_SEP = "-"
print = functools.partial(print, flush=True)
'''

# name -> (source text, reason the doctest mode drops it, or None when it keeps it)
HELD = {
    "shout": ('''def shout(text):
    """Upper-case every word of *text* and join the words with single spaces.

    >>> shout("hello   big world")
    'HELLO BIG WORLD'

    Empty text stays empty:

    >>> shout("")
    ''
    """
    return " ".join(w.upper() for w in re.split(r"\\s+", text) if w)
''', None),
    "first_n": ('''def first_n(items: list,
            n: int = 2) -> list:
    """Return the first *n* items of *items* as a list.

    >>> first_n([5, 6, 7])
    [5, 6]
    >>> first_n(range(10), n=4)
    [0, 1, 2, 3]
    """
    return list(islice(items, n))
''', None),
    "count_words": ('''def count_words(text):
    """Count each word of *text*, most common first.

    >>> count_words("a b a c a b")
    [('a', 3), ('b', 2), ('c', 1)]
    """
    return co.Counter(text.split()).most_common()
''', None),
    "half": ('''def half(x):
    """Half of *x*, exactly.

    >>> from fractions import Fraction as F
    >>> half(F(1, 3))
    Fraction(1, 6)
    >>> half(3)
    Fraction(3, 2)
    """
    return Fraction(x) / 2
''', None),
    "factorial": ('''def factorial(n):
    """The product 1 * 2 * ... * *n*; 1 for 0.

    >>> factorial(5)
    120
    >>> factorial(20)
    24329...0000
    >>> for k in range(4):
    ...     k, factorial(k)
    ...
    (0, 1)
    (1, 1)
    (2, 2)
    (3, 6)
    """
    # recursion: the function's own name is not a free name
    return 1 if n <= 1 else n * factorial(n - 1)
''', None),
    "join_parts": ('''def join_parts(parts):
    """Join *parts* with the package separator.

    >>> join_parts(["a", "b"])
    'a-b'
    """
    return _SEP.join(parts)
''', "uses_module_name"),
    "slashed": ('''def slashed(parts):
    """Join *parts* with slashes.

    >>> slashed(["a", "b"])
    'a/b'
    """
    return join(*parts)
''', "uses_module_name"),
    "say": ('''def say(x):
    """Print *x*.

    >>> say("hi")
    hi
    """
    print(x)
''', "uses_module_name"),
    "mean": ('''def mean(xs):
    """The arithmetic mean of *xs*.

    >>> mean([1, 2, 3])
    2.0
    """
    return float(np.mean(xs))
''', "uses_package_name"),
    "wrap": ('''def wrap(x):
    """Wrap *x* with the sibling module's helper.

    >>> wrap(1)
    1
    """
    return helper(x)
''', "uses_package_name"),
    "lookup": ('''def lookup(key):
    """Look *key* up in the registry.

    >>> lookup("a")
    1
    """
    return REGISTRY[key]
''', "uses_unknown_name"),
    "make_marker": ('''def make_marker():
    """A fresh object to mark missing values.

    >>> make_marker()
    <object object at 0x7f3a2c1b0e50>
    """
    return object()
''', "nondeterministic"),
    "describe": ('''def describe(x):
    """Return the type name of *x*."""
    return type(x).__name__
''', "no_examples"),
    "slow_sum": ('''def slow_sum(xs):
    """Sum *xs* one by one.

    >>> slow_sum(range(10**12))  # doctest: +SKIP
    499999999999500000000000
    """
    return sum(xs)
''', "no_examples"),
    "ident": ('''def ident(x):
    """Return *x* unchanged.

    >>> from heldpkg.textfuns import ident as f
    >>> f(3)
    3
    """
    return x
''', "example_imports_package"),
    "tab_split": ('''def tab_split(s):
    """Split *s* at tabs.

    >>> tab_split("a\\\\tb")
    ['a', 'b']
    """
    return s.split("\\t")
''', "docstring_escapes"),
    "double": ('''def double(x):
    """
    >>> double(2)
    4
    """
    return 2 * x
''', "no_prose"),
    "squeeze": ('''def squeeze(x):
    """Squeeze *x*.

    >>>squeeze(1)
    1
    """
    return x
''', "bad_doctest"),
    "long_doc": ('def long_doc(x):\n    """Return *x*.\n\n'
                 + "    A line of prose that is there to make this docstring long enough.\n" * 40
                 + '\n    >>> long_doc(1)\n    1\n    """\n    return x\n', "too_long"),
    "_clean": ('''def _clean(s):
    return s.strip()
''', "no_docstring"),
    "fetch": ('''async def fetch(url):
    """Fetch *url*."""
    return url
''', "async"),
    "fib": ('''@functools.lru_cache(maxsize=None)
def fib(n):
    """Fibonacci number *n*.

    >>> fib(10)
    55
    """
    return n if n < 2 else fib(n - 1) + fib(n - 2)
''', "decorated"),
    "one_liner": ('''def one_liner(x): """Return *x*."""; return x
''', "docstring_layout"),
}
# methods are not mined from the held-out package
HELD_CLASS = '''class Box:
    """A box."""

    def get(self):
        """Return the content.

        >>> Box().get()
        """
        return None
'''
# a later file (in path order) with a copy of first_n: a duplicate
COPY = '''"""Copies."""
from itertools import islice


def last(items):
    """The last item of *items*, or None when there is none."""
    return items[-1] if items else None


''' + HELD["first_n"][0]
# a planted bug in each kept function: (text in the body, its replacement)
BUGS = {"shout": ("w.upper()", "w.lower()"),
        "first_n": ("islice(items, n)", "islice(items, n + 1)"),
        "count_words": (".most_common()", ".most_common(2)"), "half": ("/ 2", "/ 3"),
        "factorial": ("n <= 1", "n <= 2")}

TRAIN_FUNC = '''def area_of_circle(r):
    """Area of a circle of radius *r*."""
    return math.pi * r * r
'''
TRAIN_METHODS = {
    "Shape.area": '''    def area(self):
        """The area; subclasses say how."""
        raise NotImplementedError
''',
    "Shape.Style.color": '''        def color(self):
            """The default colour."""
            return "black"
''',
}
TRAIN = f'''"""Shapes: the train package of the mining tests."""
import math


{TRAIN_FUNC}

class Shape:
    """A shape."""

{TRAIN_METHODS["Shape.area"]}
    @property
    def name(self):
        """The class name."""
        return type(self).__name__

    async def load(self):
        """Load the shape."""
        return self

    class Style:
        """Drawing style."""

{TRAIN_METHODS["Shape.Style.color"]}
    def ragged(self):
        """A docstring whose second line
starts at column zero."""
        return 1

    def stub(self):
        """Nothing here."""
'''
PAIRS_DROPPED = {"decorated": 1, "async": 1, "indented": 1, "empty_body": 1}


def held_text() -> str:
    return HEADER + "\n\n" + "\n\n".join(text for text, _ in HELD.values()) + "\n\n" + HELD_CLASS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mine")
    held, train = d / "src" / "heldpkg", d / "src" / "trainpkg"
    held.mkdir(parents=True)
    train.mkdir()
    (held / "textfuns.py").write_text(held_text())
    (held / "zz_copy.py").write_text(COPY)
    (held / "broken.py").write_text('"""Python 2 code."""\nprint "this file does not parse"\n')
    (train / "shapes.py").write_text(TRAIN)
    tool = LAB_BIN / "lab-corpus"
    assert tool.is_file(), f"{tool}: expected the built tool (set LAB_BIN to the build directory)"
    proc = subprocess.run([str(tool), "--out", str(d / "corpus.h5"), "--dir", f"heldpkg={held}",
                           "--dir", f"trainpkg={train}", "--heldout", "heldpkg",
                           "--val-fraction", "0", "--test-fraction", "0", "--threads", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return d / "corpus.h5"


def mine(corpus: Path, out: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--corpus", str(corpus), "--out", str(out),
                           *args], capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def tasks_of(out: Path) -> list:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n")[:-1]]


def dropped(proc: subprocess.CompletedProcess) -> dict:
    words = [line.split() for line in proc.stdout.splitlines() if line.startswith("  dropped")]
    return {w[1]: int(w[2]) for w in words}


def run_program(tmp: Path, task: dict, completion: str) -> subprocess.CompletedProcess:
    """The harness's program: prompt + completion + test + check(entry_point)."""
    path = tmp / f"{task['entry_point']}.py"
    path.write_text(task["prompt"] + completion + "\n" + task["test"] + "\ncheck(" +
                    task["entry_point"] + ")\n", encoding="utf-8")
    return subprocess.run(["/usr/bin/python3", "-I", "-S", "-B", str(path)], capture_output=True,
                          text=True, cwd=tmp, timeout=60)


def test_doctest_keeps_self_contained_functions_and_names_each_drop(corpus, tmp_path):
    proc = mine(corpus, tmp_path / "t.jsonl", "--mode", "doctest")
    tasks = tasks_of(tmp_path / "t.jsonl")
    assert [t["entry_point"] for t in tasks] == [n for n, (_, why) in HELD.items() if why is None]
    want = {}
    for _, why in HELD.values():
        if why:
            want[why] = want.get(why, 0) + 1
    want["no_examples"] += 1  # zz_copy.last
    want["duplicate"] = 1  # zz_copy.first_n
    assert dropped(proc) == want
    assert "3 files (1 unparsable)" in proc.stdout
    assert f"{len(HELD) + 2} functions seen, 5 kept" in proc.stdout
    for t in tasks:
        assert list(t) == ["task_id", "prompt", "entry_point", "canonical_solution", "test",
                           "package", "source"]
        assert t["task_id"] == f"mined/heldpkg/{t['entry_point']}" and t["package"] == "heldpkg"
        assert t["source"].startswith("heldpkg/textfuns.py:")
        text = HELD[t["entry_point"]][0]
        assert text.endswith(t["canonical_solution"]) and t["canonical_solution"].startswith("    ")
        assert ">>>" not in t["prompt"] and t["prompt"].endswith('    """\n')
    by_name = {t["entry_point"]: t for t in tasks}
    assert by_name["shout"]["prompt"] == '''import re

def shout(text):
    """Upper-case every word of *text* and join the words with single spaces.

    Empty text stays empty:

    """
'''
    assert by_name["first_n"]["prompt"].startswith(
        "from itertools import islice\n\n"
        "def first_n(items: list,\n            n: int = 2) -> list:\n")
    assert by_name["count_words"]["prompt"].startswith("import collections as co\n\ndef ")
    assert by_name["half"]["prompt"].startswith("from fractions import Fraction\n\ndef ")
    assert by_name["factorial"]["prompt"].startswith("def factorial(n):\n")
    assert by_name["factorial"]["canonical_solution"].startswith("    # recursion")


def test_doctest_tests_pass_with_the_body_and_fail_without_it(corpus, tmp_path):
    mine(corpus, tmp_path / "t.jsonl", "--mode", "doctest")
    for t in tasks_of(tmp_path / "t.jsonl"):
        good = run_program(tmp_path, t, t["canonical_solution"])
        assert good.returncode == 0, (t["task_id"], good.stderr)
        old, new = BUGS[t["entry_point"]]
        assert old in t["canonical_solution"]
        for body in ("    pass\n", t["canonical_solution"].replace(old, new)):
            bad = run_program(tmp_path, t, body)
            assert bad.returncode == 1, (t["task_id"], body, bad.stderr)
            last = bad.stderr.strip().splitlines()[-1]
            assert last.startswith("AssertionError: ") and "examples failed" in last, bad.stderr
            assert "Failed example:" in bad.stderr


def test_body_reassembles_each_function(corpus, tmp_path):
    proc = mine(corpus, tmp_path / "b.jsonl", "--mode", "body")
    tasks = tasks_of(tmp_path / "b.jsonl")
    structural = {"no_docstring", "async", "decorated", "docstring_layout", "too_long"}
    want = [n for n, (_, why) in HELD.items() if why not in structural] + ["last"]
    assert sorted(t["entry_point"] for t in tasks) == sorted(want)
    assert dropped(proc) == {r: 1 for r in structural | {"duplicate"}}
    for t in tasks:
        name = t["entry_point"]
        text = COPY.split("\n\n\n")[1] + "\n" if name == "last" else HELD[name][0]
        assert t["prompt"] + t["canonical_solution"] == text
        assert t["prompt"].rstrip().endswith('"""') and t["test"] == ""


def test_next_line_cuts_at_a_body_line(corpus, tmp_path):
    mine(corpus, tmp_path / "n.jsonl", "--mode", "next-line", "--seed", "3")
    tasks = tasks_of(tmp_path / "n.jsonl")
    assert len(tasks) == len(HELD) - 5 + 1  # the five structural drops out, zz_copy.last in
    for t in tasks:
        if t["entry_point"] == "last":
            continue
        text, body = HELD[t["entry_point"]][0], HELD[t["entry_point"]][0].split('    """\n')[-1]
        line = t["canonical_solution"]
        assert text.startswith(t["prompt"] + line + "\n") and line.strip() and "\n" not in line
        assert line + "\n" in body and t["prompt"].count('"""') >= 2


def test_pairs_take_methods_dedented(corpus, tmp_path):
    proc = mine(corpus, tmp_path / "p.jsonl", "--mode", "pairs")
    tasks = tasks_of(tmp_path / "p.jsonl")
    assert [t["task_id"] for t in tasks] == ["mined/trainpkg/area_of_circle",
                                              "mined/trainpkg/Shape.area",
                                              "mined/trainpkg/Shape.Style.color"]
    assert dropped(proc) == PAIRS_DROPPED
    texts = [TRAIN_FUNC] + [textwrap.dedent(m) for m in TRAIN_METHODS.values()]
    for t, text in zip(tasks, texts):
        assert t["prompt"] + t["canonical_solution"] == text and t["prompt"].startswith("def ")
    assert [t["entry_point"] for t in tasks] == ["area_of_circle", "area", "color"]
    both = mine(corpus, tmp_path / "pv.jsonl", "--mode", "pairs", "--split", "train,heldout")
    assert "trainpkg" in both.stdout and "heldpkg" in both.stdout


def test_same_bytes_twice_and_the_seed_picks_the_sample(corpus, tmp_path):
    for mode in ("doctest", "body", "next-line", "pairs"):
        mine(corpus, tmp_path / "a.jsonl", "--mode", mode, "--max", "4", "--seed", "7")
        mine(corpus, tmp_path / "b.jsonl", "--mode", mode, "--max", "4", "--seed", "7")
        assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    picks = set()
    for seed in range(4):
        mine(corpus, tmp_path / "s.jsonl", "--mode", "body", "--max", "3", "--seed", str(seed))
        tasks = tasks_of(tmp_path / "s.jsonl")
        assert len(tasks) == 3
        sources = [t["source"] for t in tasks]
        assert sources == sorted(sources, key=lambda s: (s.split(":")[0], int(s.split(":")[1])))
        picks.add(tuple(sources))
    assert len(picks) > 1


@pytest.mark.parametrize("case", ["missing", "not_hdf5", "schema", "no_content", "split"])
def test_bad_input_is_one_line_and_no_output(corpus, tmp_path, case):
    path, args = tmp_path / "in.h5", []
    if case == "not_hdf5":
        path.write_text("not a corpus\n")
    elif case == "schema":
        with h5py.File(path, "w") as f:
            f.attrs["schema"] = "codelm-lab/tokens/1"
    elif case == "no_content":
        with h5py.File(path, "w") as f:
            f.attrs["schema"] = "codelm-lab/corpus/1"
    elif case == "split":
        path, args = corpus, ["--split", "train,dev"]
    out = tmp_path / "out" / "t.jsonl"
    out.parent.mkdir()
    proc = mine(path, out, "--mode", "doctest", *args, ok=False)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mine_tasks: "), proc.stderr
    assert "expected" in lines[0] and "found" in lines[0]
    expect = {"missing": "no such file", "not_hdf5": "expected an HDF5 file",
              "schema": "found 'codelm-lab/tokens/1'", "no_content": "expected dataset /content",
              "split": "--split"}[case]
    assert expect in lines[0]
    assert list(out.parent.iterdir()) == []


def test_importable_and_line_endings_do_not_matter():
    spec = importlib.util.spec_from_file_location("mine_tasks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = held_text()
    lf, _, _ = module.mine([("p", "a.py", text.encode())], "doctest")
    crlf, _, _ = module.mine([("p", "a.py", text.replace("\n", "\r\n").encode())], "doctest")
    assert lf == crlf and len(lf) == 5
    with pytest.raises(SystemExit) as help_exit:
        module.main(["--help"])
    assert help_exit.value.code == 0
