#!/usr/bin/env python3
"""Mine code-completion tasks from the functions of a corpus.h5, as HumanEval-format JSONL.

  mine_tasks.py --corpus data/run/corpus.h5 --mode doctest --out data/run/tasks/doctest.jsonl
                [--split heldout] [--seed 0] [--max N] [--max-bytes 2000]

Each line of the output is one JSON object with the keys, in this order: task_id
("mined/<package>/<name>", "-2", "-3"... appended to repeats), prompt, entry_point (the function's
name), canonical_solution, test, package, source ("<package>/<path>:<line of the def>").

The files of the chosen splits (--split, a comma list of train, val, test, heldout) are read in
(package, path) order and parsed with `ast`; a file that does not decode or parse is skipped and
counted. A candidate is a plain `def` (not async, no decorators) at the top level of a module
whose body starts with a docstring that begins on a line of its own and ends a line (nothing but
a comment after it). Candidates whose source text, stripped, repeats an earlier one are dropped.
Prompt and solution are cut from the source text as written (newlines normalised to "\\n"):

  doctest    (default split heldout) the docstring holds doctest examples, at least one of them
             not skipped and with expected output, none with a non-deterministic output (an
             address "at 0x..."). Every free name of the function (body, defaults, annotations)
             and of its examples is a builtin not rebound in the module, the function itself, a
             name the examples bind, or a name bound once, by a top-level import of a standard
             library module; an example's own import must be of the standard library too.
             prompt: those imports, one name a line ("import x", "import x as y",
             "from x import y"), in source order, then a blank line; then the def line(s) and the
             docstring without the examples' lines (doctest's rule: from a ">>>" line to a blank
             or the next ">>>" line; a blank line doubled by a removal is dropped; the prose left
             must not be empty). solution: the rest of the body. test: `check(candidate)` runs
             the removed lines with doctest (ELLIPSIS) in the program's globals, the candidate
             under the function's name; when an example fails it writes doctest's report to
             stderr and the AssertionError is the last line (how lab-sandbox tells a wrong answer
             from a crash). The harness runs
             prompt + completion + "\\n" + test + "\\ncheck(" + entry_point + ")\\n".
  body       (heldout) prompt: the def line(s) and the docstring as written; solution: the rest
             of the body (at least one non-blank line); test "".
  next-line  (heldout) the functions of `body`; for each, one non-blank body line j is drawn;
             prompt: the function's text up to line j; solution: line j, indentation kept, no
             newline; test "".
  pairs      (train) as `body`, with the methods of top-level (and nested) classes too (the whole
             function text dedented first; a method whose def line stays indented is dropped);
             entry_point the method name, task_id names Class.method.

Drop reasons, as the summary names them: unparsable files aside, async, decorated, no_docstring,
docstring_layout, empty_body, indented (pairs), duplicate; for doctest bad_doctest (doctest or
Python cannot parse the examples), no_examples, nondeterministic, docstring_escapes (an escape
in the docstring makes its value's lines differ from the source's where examples are), no_prose,
example_imports_package, uses_package_name / uses_module_name / uses_unknown_name (a free name
bound by a non-stdlib or relative import / by the module itself / nowhere); too_long and
not_sampled in every mode.

Every mode drops a task whose prompt + solution is over --max-bytes UTF-8 bytes, then keeps
--max of them (0: all; default 200 for body and next-line) drawn with random.Random(--seed) from
the list in source order, and writes them in source order. The file is written as OUT.tmp and
renamed; the same corpus and flags give the same bytes. A summary goes to stdout: files, functions
seen, kept, and the count dropped for each reason. A bad input stops the run with one line,
`mine_tasks: FILE: expected ..., found ...`, exit status 1, and no output.
"""
import argparse
import ast
import builtins
import doctest
import json
import os
import random
import re
import symtable
import sys
import textwrap
import warnings
from collections import Counter

import h5py
import numpy as np

SCHEMA = "codelm-lab/corpus/1"
COLUMNS = ("content", "files/offset", "files/length", "files/package", "files/path", "files/split",
           "packages/name")
SPLITS = ("train", "val", "test", "heldout")
MODES = {"doctest": ("heldout", 0), "body": ("heldout", 200), "next-line": ("heldout", 200),
         "pairs": ("train", 0)}
BUILTINS = frozenset(dir(builtins))
STDLIB = frozenset(sys.stdlib_module_names)
NONDETERMINISTIC = re.compile(r" at 0x[0-9a-fA-F]+")
PARSER = doctest.DocTestParser()
ORIGINS = ("stdlib", "package", "module")  # how a module binds a name, weakest claim first
TEST = """def check(candidate):
    import doctest
    examples = %(examples)s
    globs = dict(globals())
    globs[%(name)s] = candidate
    test = doctest.DocTestParser().get_doctest(examples, globs, %(name)s, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    runner.run(test, out=report.append)
    if runner.failures:
        import sys
        sys.stderr.write(''.join(report)[-2000:])
    assert runner.failures == 0, f'{runner.failures} of {runner.tries} examples failed'
"""


class MineError(Exception):
    """One line for the user: the file, what was expected and what was found."""


class Drop(Exception):
    """A function that does not make a task; the argument is the reason, a short key."""


# ---------------------------------------------------------------------------------------------
# corpus


def read_corpus(path: str, splits: list) -> list:
    """(package, path, bytes) of every file of the given splits, in (package, path) order."""
    if not os.path.isfile(path):
        raise MineError(f"{path}: expected a corpus file, found no such file")
    try:
        with h5py.File(path, "r") as f:
            schema = decoded(f.attrs.get("schema"))
            if schema != SCHEMA:
                raise MineError(f"{path}: expected schema {SCHEMA}, found {schema!r}")
            for name in COLUMNS:
                if not isinstance(f.get(name), h5py.Dataset):
                    raise MineError(f"{path}: expected dataset /{name}, found none")
            content = f["content"]  # read file by file, through one handle and its chunk cache
            col = {name: f[name][()] for name in COLUMNS[1:]}
            names = [decoded(n) for n in col["packages/name"]]
            rows = []
            for i in np.flatnonzero(np.isin(col["files/split"], [SPLITS.index(s) for s in splits])):
                package, start = int(col["files/package"][i]), int(col["files/offset"][i])
                end = start + int(col["files/length"][i])
                if not 0 <= package < len(names) or end > content.shape[0]:
                    raise MineError(f"{path}: expected file row {i} inside /packages and /content, "
                                    f"found package {package}, bytes {start}..{end}")
                rows.append((names[package], decoded(col["files/path"][i]), start, end))
            return [(package, p, content[start:end].tobytes())
                    for package, p, start, end in sorted(rows)]
    except OSError as e:
        raise MineError(f"{path}: expected an HDF5 file, found {str(e).splitlines()[0]}") from None


def decoded(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ---------------------------------------------------------------------------------------------
# functions


def parse(text: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in old code are not our concern
        return ast.parse(text)


def candidates(body: list, methods: bool, prefix: str = ""):
    """(qualified name, node) of each def in a module's body, and in its classes' with methods,
    in source order."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
        elif methods and isinstance(node, ast.ClassDef):
            yield from candidates(node.body, methods, prefix + node.name + ".")


def split_function(lines: list, node: ast.FunctionDef) -> tuple:
    """(head, body) line lists: the def line(s) with the docstring, and the rest of the body."""
    if isinstance(node, ast.AsyncFunctionDef):
        raise Drop("async")
    if node.decorator_list:
        raise Drop("decorated")
    doc = node.body[0]
    if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)):
        raise Drop("no_docstring")
    before = lines[doc.lineno - 1].encode()[:doc.col_offset]
    after = lines[doc.end_lineno - 1].encode()[doc.end_col_offset:].strip()
    if before.strip() or (after and not after.startswith(b"#")):
        raise Drop("docstring_layout")
    head = lines[node.lineno - 1:doc.end_lineno]
    body = lines[doc.end_lineno:node.end_lineno]
    if not any(line.strip() for line in body):
        raise Drop("empty_body")
    return head, body


def join(lines: list) -> str:
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------
# doctest tasks: self-containment and the examples


def module_names(tree: ast.Module) -> tuple:
    """(imports, origins): the import line of each name a top-level import binds, and the origin
    of every name the module binds: "stdlib" (bound once, by a top-level import of a standard
    library module), "package" (by imports, one of them of another module) or "module" (by
    anything else, or more than once)."""
    imports, origins, count = {}, {}, Counter()

    def bind(name: str, origin: str) -> None:
        count[name] += 1
        if ORIGINS.index(origin) >= ORIGINS.index(origins.get(name, "stdlib")):
            origins[name] = origin

    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                name = a.asname or a.name.split(".")[0]
                bind(name, "stdlib" if a.name.split(".")[0] in STDLIB else "package")
                imports[name] = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
        elif isinstance(stmt, ast.ImportFrom):
            stdlib = stmt.level == 0 and stmt.module.split(".")[0] in STDLIB
            for a in stmt.names:
                name = a.asname or a.name
                bind(name, "stdlib" if stdlib and name != "*" else "package")
                imports[name] = f"from {stmt.module} import {a.name}" + (
                    f" as {a.asname}" if a.asname else "")
        else:
            for node in walk_scope(stmt):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    bind(node.name, "module")
                elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                    bind(node.id, "module")
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    for a in node.names:
                        bind(a.asname or a.name.split(".")[0], "module")
                elif isinstance(node, ast.ExceptHandler) and node.name:
                    bind(node.name, "module")
    for name, n in count.items():
        if n > 1 and origins[name] == "stdlib":
            origins[name] = "module"
    return imports, origins


def walk_scope(stmt: ast.AST):
    """The nodes of a module-level statement, not entering the scopes it opens (def, class,
    lambda): the names bound there are the module's."""
    stack = [stmt]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def free_names(source: str) -> set:
    """The names the code reads from the module scope and does not bind there (symtable's
    analysis: defaults and annotations at the top, the globals of every nested scope)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        top = symtable.symtable(source, "<mined>", "exec")
    free = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    tables = top.get_children()
    while tables:
        table = tables.pop()
        free.update(s.get_name() for s in table.get_symbols() if s.is_global())
        tables.extend(table.get_children())
    return free - bound


def doctest_parts(name: str, head: list, doc: ast.Expr, module: tuple, source: str) -> tuple:
    """(prompt, examples text) of a function with doctest examples; Drop with the reason if not."""
    value = doc.value.value
    try:
        examples = [p for p in PARSER.parse(value, name) if isinstance(p, doctest.Example)]
    except ValueError:
        raise Drop("bad_doctest") from None
    if not any(e.want and not e.options.get(doctest.SKIP) for e in examples):
        raise Drop("no_examples")
    if any(NONDETERMINISTIC.search(e.want) for e in examples):
        raise Drop("nondeterministic")
    # Doctest's rule: an example runs from a ">>>" line to a blank line or the next ">>>" line.
    # Those lines of the docstring's value are its source lines when no escape changes a line:
    # each removed line must be a middle line, the same in both.
    values = value.split("\n")
    if len(values) != doc.end_lineno - doc.lineno + 1:
        raise Drop("docstring_escapes")
    first = len(head) - len(values)
    removed, i = set(), 0
    while i < len(values):
        if values[i].lstrip(" ").startswith(">>>"):
            removed.add(i)
            i += 1
            while i < len(values) and values[i].strip(" ") and \
                    not values[i].lstrip(" ").startswith(">>>"):
                removed.add(i)
                i += 1
        else:
            i += 1
    if any(not 0 < i < len(values) - 1 or head[first + i] != values[i] for i in removed):
        raise Drop("docstring_escapes")
    if not "".join(v for i, v in enumerate(values) if i not in removed).strip():
        raise Drop("no_prose")
    kept, gap = head[:first], False
    for i, line in enumerate(head[first:]):
        if i in removed:
            gap = True
        elif not (gap and not line.strip() and not kept[-1].strip()):
            kept.append(line)
            gap = False

    example_source = "".join(e.source for e in examples)
    try:
        example_free = free_names(example_source)
    except (SyntaxError, ValueError):
        raise Drop("bad_doctest") from None
    for node in ast.walk(ast.parse(example_source)):
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                   ["." * node.level + (node.module or "")] if isinstance(node, ast.ImportFrom)
                   else [])
        if any(m.split(".")[0] not in STDLIB for m in modules):
            raise Drop("example_imports_package")
    imports, origins = module
    needed = (free_names(source) | example_free) - {name}
    needed = {n for n in needed if n in origins or n not in BUILTINS}
    missing = {origins.get(n, "unknown") for n in needed} - {"stdlib"}
    for origin in ("package", "module", "unknown"):
        if origin in missing:
            raise Drop(f"uses_{origin}_name")
    lines = [line for n, line in imports.items() if n in needed]
    prompt = join(lines) + ("\n" if lines else "") + join(kept)
    return prompt, join([values[i] for i in sorted(removed)])


# ---------------------------------------------------------------------------------------------
# mining


def mine(files: list, mode: str, seed: int = 0, max_tasks: int = 0,
         max_bytes: int = 2000) -> tuple:
    """(tasks, counts of files and functions, counts dropped by reason) of a mode (see the
    module doc) over (package, path, bytes) files in (package, path) order."""
    stats, dropped, seen, pool = Counter(), Counter(), set(), []
    for package, path, data in files:
        stats["files"] += 1
        try:
            text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
            tree = parse(text)
        except (UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
            stats["files_unparsable"] += 1
            continue
        lines = text.split("\n")
        module = module_names(tree) if mode == "doctest" else None
        for qualname, node in candidates(tree.body, methods=mode == "pairs"):
            stats["functions"] += 1
            try:
                head, body = split_function(lines, node)
                if mode == "pairs":
                    text_lines = textwrap.dedent(join(head + body)).split("\n")
                    if text_lines[0][:1].isspace():
                        raise Drop("indented")
                    head, body = text_lines[:len(head)], text_lines[len(head):-1]
                source = join(head + body)
                if source.strip() in seen:
                    raise Drop("duplicate")
                seen.add(source.strip())
                prompt, solution, test = join(head), join(body), ""
                if mode == "doctest":
                    prompt, examples = doctest_parts(node.name, head, node.body[0], module, source)
                    test = TEST % {"examples": repr(examples), "name": repr(node.name)}
                if len((prompt + solution).encode()) > max_bytes:
                    raise Drop("too_long")
            except Drop as drop:
                dropped[drop.args[0]] += 1
                continue
            pool.append((package, f"{package}/{path}:{node.lineno}", qualname, prompt, solution,
                         test, head, body))
    rng = random.Random(seed)
    if max_tasks and len(pool) > max_tasks:
        dropped["not_sampled"] = len(pool) - max_tasks
        pool = [pool[i] for i in sorted(rng.sample(range(len(pool)), max_tasks))]
    tasks, ids = [], Counter()
    for package, source, qualname, prompt, solution, test, head, body in pool:
        if mode == "next-line":
            j = rng.choice([k for k, line in enumerate(body) if line.strip()])
            prompt, solution = join(head + body[:j]), body[j]
        base = f"mined/{package}/{qualname}"
        ids[base] += 1
        tasks.append({"task_id": base + (f"-{ids[base]}" if ids[base] > 1 else ""),
                      "prompt": prompt, "entry_point": qualname.split(".")[-1],
                      "canonical_solution": solution, "test": test, "package": package,
                      "source": source})
    stats["kept"] = len(tasks)
    return tasks, stats, dropped


def write_jsonl(path: str, tasks: list) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for task in tasks:
                f.write(json.dumps(task, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise MineError(f"{path}: expected a writable file, found {e.strerror}") from None


def main(argv: list = None) -> int:
    ap = argparse.ArgumentParser(prog="mine_tasks.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="corpus.h5 (schema codelm-lab/corpus/1)")
    ap.add_argument("--mode", required=True, choices=sorted(MODES))
    ap.add_argument("--out", required=True, help="tasks .jsonl (written as OUT.tmp, renamed)")
    ap.add_argument("--split", help="comma list of train,val,test,heldout (default: by mode)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    ap.add_argument("--max", type=int, help="keep at most N tasks, 0 all (default: by mode)")
    ap.add_argument("--max-bytes", type=int, default=2000, help="largest prompt + solution (2000)")
    args = ap.parse_args(argv)
    try:
        splits = (args.split or MODES[args.mode][0]).split(",")
        if not splits or any(s not in SPLITS for s in splits):
            raise MineError(f"--split: expected a comma list of {','.join(SPLITS)}, "
                            f"found {args.split!r}")
        max_tasks = MODES[args.mode][1] if args.max is None else args.max
        if max_tasks < 0 or args.max_bytes <= 0:
            raise MineError(f"--max/--max-bytes: expected >= 0 and > 0, "
                            f"found {max_tasks} and {args.max_bytes}")
        files = read_corpus(args.corpus, splits)
        tasks, stats, dropped = mine(files, args.mode, args.seed, max_tasks, args.max_bytes)
        write_jsonl(args.out, tasks)
    except MineError as e:
        print(f"mine_tasks: {e}", file=sys.stderr)
        return 1
    print(f"mine_tasks: {args.mode} from {','.join(splits)} of {args.corpus}: "
          f"{stats['files']} files ({stats['files_unparsable']} unparsable), "
          f"{stats['functions']} functions seen, {stats['kept']} kept -> {args.out}")
    for reason, n in sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  dropped {reason:24s} {n}")
    for package, n in sorted(Counter(t["package"] for t in tasks).items()):
        print(f"  kept    {package:24s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
