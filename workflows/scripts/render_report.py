#!/usr/bin/env python3
"""Render a Markdown report template with numbers read from HDF5 files and figures with provenance.

  render_report.py --template papers/lora_vs_full/template.md --out papers/lora_vs_full/report.md \\
      --h5 NAME=PATH ... --figure NAME=STEM ... --provenance FIGURES.json ...

Every number in the report comes from the HDF5 files named with --h5; a placeholder that names a
file, dataset or attribute that is not there stops the run (exit 1, one line naming the template
line, the placeholder, what was expected and what was found) and nothing is written. The same
inputs give the same bytes. The report is written as OUT.tmp and renamed.

Placeholders, anywhere in the template:

  {{ EXPR }}  {{ EXPR : SPEC }}     a value; SPEC is a Python format spec (.2f  ,d  .1%  .3g  s)
  {{ table HEADER = EXPR [: SPEC] | HEADER = EXPR [: SPEC] | ... }}
                                    a Markdown table, one column per EXPR (arrays of equal length)
  {{ figure NAME | CAPTION }}       the PNG of --figure NAME, a link to its PDF, and its provenance
  {{ sources }}                     every --h5 file: path, sha256, schema, git commit, command

EXPR (numbers, and arrays element-wise, as numpy does):
  NAME@ATTR            root attribute ATTR of the file --h5 NAME
  NAME[PATH]@ATTR      attribute of the group or dataset PATH
  NAME[PATH]           dataset PATH (an array; strings come back as text)
  1.5  + - * /  ( )  == != < <= > >=   (comparisons give 1 or 0)
  sum mean min max first last (of an array, NaN skipped)  count (elements)  abs exp log
  size(NAME[PATH])     elements of a dataset, or of every dataset under a group (read from shapes)
  delta(X)             X[i] - X[i-1], with X[-1] = 0 (tokens of each step from tokens_seen)
  where(X, MASK)       the elements of X where MASK is non-zero
  same(X, Y, ...)      X, after checking that every array equals it (e.g. package columns)
  join(X)              the elements of X as text, joined by ", "
  compare(A, B)        "lower than", "the same as" or "higher than" (A against B)
  reported(X)          X, or the text "not reported" when X is NaN (a value that is undefined by
                       design, such as pass@k with fewer than k samples; NaN elsewhere stops the run)

--provenance FILE.json maps figure names to how they were made (several files are merged):
  {"pretrain_loss": {"rule": "figure_pretrain_loss",
                     "commands": ["build/lab-export ... --out T.tsv", "gnuplot -c figures/... "],
                     "inputs": [{"path": "T.tsv", "from": "data/run/log.h5"},
                                {"path": "figures/pretrain_loss.gp"}, {"path": "figures/style.gp"}]}}
The renderer hashes every input path, every "from" file and the figure's PNG and PDF itself, and
takes the git commit from each HDF5 file's git_commit attribute.
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys

import h5py
import numpy as np


class RenderError(Exception):
    """One line for the user: what was expected and what was found."""


# ---------------------------------------------------------------------------------------------
# inputs


def sha256_of(path):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise RenderError(f"{path}: expected a readable file, found {e.strerror.lower()}") from None
    return digest.hexdigest()


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class H5Files:
    """The --h5 files by name, opened read-only once."""

    def __init__(self, pairs):
        self.paths, self.files = {}, {}
        for name, path in pairs:
            if name in self.paths:
                raise RenderError(f"--h5 {name}={path}: expected each NAME once, found it already as {self.paths[name]}")
            if not os.path.isfile(path):
                raise RenderError(f"{path}: expected an HDF5 file (--h5 {name}={path}), found no such file")
            try:
                self.files[name] = h5py.File(path, "r")
            except OSError:
                raise RenderError(f"{path}: expected an HDF5 file (--h5 {name}={path}), found something h5py cannot open") from None
            self.paths[name] = path

    def close(self):
        for f in self.files.values():
            f.close()

    def file(self, name):
        if name not in self.files:
            known = ", ".join(sorted(self.files)) or "none"
            raise RenderError(f"expected a file named '{name}' (--h5 {name}=PATH), found only {known}")
        return self.files[name]

    def node(self, name, path):
        f = self.file(name)
        if path not in f:
            raise RenderError(f"expected '{path}' in {name} ({self.paths[name]}), found no such group or dataset")
        return f[path]

    def attr(self, name, path, attr):
        obj = self.node(name, path) if path is not None else self.file(name)
        where = f"{name}[{path}]" if path is not None else name
        if attr not in obj.attrs:
            found = ", ".join(sorted(obj.attrs)) or "none"
            raise RenderError(f"expected attribute '{attr}' on {where} ({self.paths[name]}), found attributes {found}")
        return plain(obj.attrs[attr])

    def dataset(self, name, path):
        node = self.node(name, path)
        if not isinstance(node, h5py.Dataset):
            raise RenderError(f"expected '{path}' in {name} ({self.paths[name]}) to be a dataset, found a group")
        if h5py.check_string_dtype(node.dtype) is not None:
            return np.array(node.asstr()[()], dtype=object).reshape(-1)
        data = node[()]
        # integers as int64 so that differences cannot wrap around (uint64 - int)
        return np.asarray(data, dtype=np.int64 if np.issubdtype(data.dtype, np.integer) else np.float64).reshape(-1)

    def size(self, name, path):
        node = self.node(name, path)
        if isinstance(node, h5py.Dataset):
            return int(node.size)
        sizes = []
        node.visititems(lambda _, obj: sizes.append(int(obj.size)) if isinstance(obj, h5py.Dataset) else None)
        return sum(sizes)


def plain(value):
    """An attribute as a Python int, float or str (or a numpy array for array attributes)."""
    if isinstance(value, (bytes, str)):
        return text(value)
    if isinstance(value, np.ndarray) and value.shape != ():
        return value
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------
# expressions: a small recursive-descent parser; the AST is nested tuples

TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
  | (?P<ref>[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]+\])?(?:@[A-Za-z0-9_]+)?)
  | (?P<op>==|!=|<=|>=|[-+*/(),<>])
""", re.X)
REF = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<path>[^\]]+)\])?(?:@(?P<attr>[A-Za-z0-9_]+))?$")


def tokenize(src):
    out, pos = [], 0
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m:
            raise RenderError(f"expected a number, NAME[PATH], NAME@ATTR, a function or an operator at '{src[pos:]}'")
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


class Parser:
    def __init__(self, src):
        self.tokens, self.i, self.src = tokenize(src), 0, src

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self, value=None):
        kind, tok = self.peek()
        if kind is None or (value is not None and tok != value):
            raise RenderError(f"expected '{value or 'more'}' in '{self.src}', found {repr(tok) if tok else 'the end'}")
        self.i += 1
        return kind, tok

    def parse(self):
        if not self.tokens:
            raise RenderError("expected an expression, found nothing")
        node = self.comparison()
        if self.i != len(self.tokens):
            raise RenderError(f"expected the end of '{self.src}', found '{self.peek()[1]}'")
        return node

    def comparison(self):
        node = self.additive()
        while self.peek()[1] in ("==", "!=", "<", "<=", ">", ">="):
            node = ("op", self.take()[1], node, self.additive())
        return node

    def additive(self):
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            node = ("op", self.take()[1], node, self.term())
        return node

    def term(self):
        node = self.unary()
        while self.peek()[1] in ("*", "/"):
            node = ("op", self.take()[1], node, self.unary())
        return node

    def unary(self):
        if self.peek()[1] == "-":
            self.take()
            return ("neg", self.unary())
        return self.atom()

    def atom(self):
        kind, tok = self.take()
        if kind == "number":
            return ("num", float(tok) if any(c in tok for c in ".eE") else int(tok))
        if tok == "(":
            node = self.comparison()
            self.take(")")
            return node
        if kind == "ref":
            if self.peek()[1] == "(":
                if tok not in FUNCTIONS:
                    raise RenderError(f"expected one of the functions {', '.join(sorted(FUNCTIONS))}, found '{tok}'")
                self.take("(")
                args = [self.comparison()]
                while self.peek()[1] == ",":
                    self.take()
                    args.append(self.comparison())
                self.take(")")
                return ("call", tok, args)
            m = REF.match(tok)
            if m["path"] is None and m["attr"] is None:
                raise RenderError(f"expected NAME@ATTR, NAME[PATH] or NAME[PATH]@ATTR, found '{tok}'")
            return ("ref", m["name"], m["path"], m["attr"])
        raise RenderError(f"expected a value in '{self.src}', found '{tok}'")


def finite(x, fn):
    values = np.asarray(x, dtype=np.float64).reshape(-1)
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise RenderError(f"{fn}(): expected at least one value that is not NaN, found none")
    return values


def as_int_if_whole(values, x):
    """sum/min/max/first/last of an integer array stay integers (so ',d' formats them)."""
    return values if np.asarray(x).dtype.kind == "f" else values.astype(np.int64)


def fn_same(*arrays):
    first = arrays[0]
    for k, other in enumerate(arrays[1:], 2):
        if len(other) != len(first) or any(a != b for a, b in zip(first, other)):
            raise RenderError(f"same(): expected argument {k} to equal the first, found {list(other)} against {list(first)}")
    return first


def fn_where(values, mask):
    values, mask = np.asarray(values), np.asarray(mask)
    if values.shape != mask.shape:
        raise RenderError(f"where(): expected a mask of {values.size} elements, found {mask.size}")
    return values[mask != 0]


def fn_compare(a, b):
    if not (np.isscalar(a) and np.isscalar(b)) or isinstance(a, str) or isinstance(b, str):
        raise RenderError("compare(): expected two numbers, found an array or text")
    if math.isnan(a) or math.isnan(b):
        raise RenderError("compare(): expected two numbers, found NaN")
    return "lower than" if a < b else "higher than" if a > b else "the same as"


class NotReported:
    """reported()'s result for a NaN: printed as "not reported" whatever the format spec."""


def fn_reported(x):
    if isinstance(x, (float, np.floating)) and math.isnan(x):
        return NotReported()
    return x


def scalar_result(x):
    return x.item() if isinstance(x, np.generic) else x


FUNCTIONS = {
    "sum": lambda x: scalar_result(as_int_if_whole(finite(x, "sum"), x).sum()),
    "mean": lambda x: float(finite(x, "mean").mean()),
    "min": lambda x: scalar_result(as_int_if_whole(finite(x, "min"), x).min()),
    "max": lambda x: scalar_result(as_int_if_whole(finite(x, "max"), x).max()),
    "first": lambda x: scalar_result(as_int_if_whole(finite(x, "first"), x)[0]),
    "last": lambda x: scalar_result(as_int_if_whole(finite(x, "last"), x)[-1]),
    "count": lambda x: int(np.asarray(x).size),
    "abs": lambda x: np.abs(x),
    "exp": lambda x: np.exp(x),
    "log": lambda x: np.log(x),
    "delta": lambda x: np.diff(np.asarray(x), prepend=0),
    "where": fn_where,
    "same": fn_same,
    "join": lambda x: ", ".join(text(v) for v in np.asarray(x).reshape(-1)),
    "compare": fn_compare,
    "reported": fn_reported,
    "size": None,  # takes its NAME[PATH] unevaluated: handled in evaluate()
}
ARITY = {"where": 2, "compare": 2, "same": None}


def evaluate(node, h5):
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "neg":
        value = evaluate(node[1], h5)
        if isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype == object):
            raise RenderError("'-': expected a number, found text")
        return -value
    if kind == "ref":
        _, name, path, attr = node
        return h5.attr(name, path, attr) if attr is not None else h5.dataset(name, path)
    if kind == "call":
        _, fn, args = node
        want = ARITY.get(fn, 1)
        if want is not None and len(args) != want:
            raise RenderError(f"{fn}(): expected {want} argument{'s' if want > 1 else ''}, found {len(args)}")
        if fn == "size":
            if args[0][0] != "ref" or args[0][2] is None or args[0][3] is not None:
                raise RenderError("size(): expected NAME[PATH] (a dataset or a group), found another expression")
            return h5.size(args[0][1], args[0][2])
        return FUNCTIONS[fn](*(evaluate(a, h5) for a in args))
    _, op, left, right = node
    a, b = evaluate(left, h5), evaluate(right, h5)
    for v in (a, b):
        if isinstance(v, str) or (isinstance(v, np.ndarray) and v.dtype == object):
            raise RenderError(f"'{op}': expected numbers, found text")
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape != b.shape:
        raise RenderError(f"'{op}': expected arrays of the same length, found {a.size} and {b.size}")
    with np.errstate(divide="ignore", invalid="ignore"):
        result = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide,
                  "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
                  ">": np.greater, ">=": np.greater_equal}[op](a, b)
    if op in ("==", "!=", "<", "<=", ">", ">="):
        result = np.asarray(result).astype(np.int64)
    return scalar_result(result) if np.ndim(result) == 0 else result


def split_spec(src):
    """'EXPR : SPEC' -> (EXPR, SPEC); the spec follows the last ':' (expressions hold none)."""
    expr, sep, spec = src.rpartition(":")
    return (expr.strip(), spec.strip()) if sep else (src.strip(), "")


def format_value(value, spec):
    if isinstance(value, NotReported):
        return "not reported"
    if isinstance(value, float) and math.isnan(value):
        raise RenderError("expected a number, found NaN")
    try:
        return format(value, spec)
    except (ValueError, TypeError) as e:
        raise RenderError(f"format '{spec}': expected a spec for {type(value).__name__}, found: {e}") from None


def scalar(src, h5):
    expr, spec = split_spec(src)
    value = scalar_result(evaluate(Parser(expr).parse(), h5))
    if isinstance(value, np.ndarray):
        raise RenderError(f"expected one value, found an array of {value.size} (sum, last, ... make one)")
    return format_value(value, spec)


# ---------------------------------------------------------------------------------------------
# block placeholders


def md_cell(s):
    return s.replace("|", "\\|")


def table(src, h5):
    headers, columns, numeric = [], [], []
    for part in src.split("|"):
        header, eq, column = part.partition("=")
        if not eq or not header.strip():
            raise RenderError(f"table: expected 'HEADER = EXPR [: SPEC]' between '|', found '{part.strip()}'")
        expr, spec = split_spec(column)
        values = evaluate(Parser(expr).parse(), h5)
        if not isinstance(values, np.ndarray):
            raise RenderError(f"table column '{header.strip()}': expected an array, found one value")
        headers.append(md_cell(header.strip()))
        columns.append([md_cell(format_value(scalar_result(v), spec)) for v in values])
        numeric.append(values.dtype != object)
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        found = ", ".join(f"{h}: {len(c)}" for h, c in zip(headers, columns))
        raise RenderError(f"table: expected columns of one length, found {found}")
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in zip(*columns)]
    return "\n".join(lines)


def git_commit(path):
    try:
        with h5py.File(path, "r") as f:
            if "git_commit" not in f.attrs:
                raise RenderError(f"{path}: expected a root attribute git_commit, found none")
            return text(f.attrs["git_commit"])
    except OSError:
        raise RenderError(f"{path}: expected an HDF5 file with a git_commit attribute, found something h5py cannot open") from None


def load_provenance(paths):
    figures = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as e:
            raise RenderError(f"{path}: expected a provenance JSON file, found {e.strerror.lower()}") from None
        except json.JSONDecodeError as e:
            raise RenderError(f"{path}: expected JSON, found an error at line {e.lineno}: {e.msg}") from None
        if not isinstance(data, dict):
            raise RenderError(f"{path}: expected an object of figure names, found {type(data).__name__}")
        for name, record in data.items():
            if name in figures:
                raise RenderError(f"{path}: expected figure '{name}' once, found it in {figures[name]['_file']} too")
            check_record(path, name, record)
            figures[name] = dict(record, _file=path)
    return figures


def check_record(path, name, record):
    where = f"{path}: figure '{name}'"
    if not isinstance(record, dict) or set(record) != {"rule", "commands", "inputs"}:
        found = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise RenderError(f"{where}: expected the keys commands, inputs, rule, found {found}")
    if not isinstance(record["rule"], str) or not record["rule"]:
        raise RenderError(f"{where}: expected 'rule' to be a rule name, found {record['rule']!r}")
    if not record["commands"] or not all(isinstance(c, str) and c for c in record["commands"]):
        raise RenderError(f"{where}: expected 'commands' to be a list of command lines, found {record['commands']!r}")
    if not record["inputs"] or not isinstance(record["inputs"], list):
        raise RenderError(f"{where}: expected 'inputs' to be a list of files, found {record['inputs']!r}")
    for item in record["inputs"]:
        if not isinstance(item, dict) or "path" not in item or not set(item) <= {"path", "from"} \
                or not all(isinstance(v, str) and v for v in item.values()):
            raise RenderError(f"{where}: expected inputs like {{\"path\": FILE, \"from\": FILE.h5}}, found {item!r}")


def figure(src, figures, provenance, out_dir):
    name, _, caption = (s.strip() for s in src.partition("|"))
    if name not in figures:
        known = ", ".join(sorted(figures)) or "none"
        raise RenderError(f"expected a figure '{name}' (--figure {name}=STEM), found only {known}")
    if name not in provenance:
        raise RenderError(f"expected the provenance of figure '{name}' in a --provenance file, found none")
    stem, record = figures[name], provenance[name]
    png, pdf = stem + ".png", stem + ".pdf"
    hashes, commits = [], []
    for item in record["inputs"]:
        for key in ("path", "from"):
            if key in item:
                hashes.append((sha256_of(item[key]), item[key]))
                if item[key].endswith(".h5") or key == "from":
                    commits.append((git_commit(item[key]), item[key]))
    hashes += [(sha256_of(png), png), (sha256_of(pdf), pdf)]
    distinct = sorted({c for c, _ in commits})
    if not distinct:
        commit_text = "none recorded (no HDF5 input)"
    elif len(distinct) == 1:
        commit_text = f"`{distinct[0]}`"
    else:
        commit_text = "; ".join(f"`{c}` ({', '.join(p for cc, p in commits if cc == c)})" for c in distinct)
    rel = lambda p: os.path.relpath(os.path.abspath(p), out_dir)
    lines = [
        f"![{caption or name}]({rel(png)})",
        "",
        " ".join(filter(None, [f"**Figure `{name}`.**", caption, f"([PDF]({rel(pdf)}))"])),
        "",
        f"<details><summary>Provenance of <code>{name}</code></summary>",
        "",
        f"Snakemake rule `{record['rule']}`; git commit of the tools that made the data: {commit_text}.",
        "",
        "Commands:",
        "",
        "```sh",
        *record["commands"],
        "```",
        "",
        "Inputs and outputs (from the repository root: `sha256sum -c`):",
        "",
        "```",
        *(f"{h}  {p}" for h, p in hashes),
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines)


def sources(h5):
    lines = ["| name | file | schema | sha256 | git commit | made by |", "| --- | --- | --- | --- | --- | --- |"]
    for name in sorted(h5.paths):
        f = h5.files[name]
        attr = lambda key: text(f.attrs[key]) if key in f.attrs else "(none)"
        lines.append(f"| {name} | `{h5.paths[name]}` | `{attr('schema')}` | `{sha256_of(h5.paths[name])}` | "
                     f"`{attr('git_commit')}` | `{md_cell(attr('command_line'))}` |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)


def render(template_path, template, h5, figures, provenance, out_dir):
    def replace(m):
        src = " ".join(m.group(1).split())
        try:
            word, _, rest = src.partition(" ")
            if word == "table":
                return table(rest, h5)
            if word == "figure":
                return figure(rest, figures, provenance, out_dir)
            if src == "sources":
                return sources(h5)
            return scalar(src, h5)
        except RenderError as e:
            line = template.count("\n", 0, m.start()) + 1
            raise RenderError(f"{template_path}:{line}: {{{{ {src} }}}}: {e}") from None

    return PLACEHOLDER.sub(replace, template)


def pairs(values, flag):
    out = []
    for v in values:
        name, eq, path = v.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not path:
            raise RenderError(f"{flag} {v}: expected NAME=PATH with NAME a letter or _ then letters, digits, _")
        out.append((name, path))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--template", required=True, help="the Markdown template")
    ap.add_argument("--out", required=True, help="the report (written as OUT.tmp, then renamed)")
    ap.add_argument("--h5", action="append", default=[], metavar="NAME=PATH", help="an HDF5 file the template reads as NAME")
    ap.add_argument("--figure", action="append", default=[], metavar="NAME=STEM",
                    help="figure NAME is STEM.png and STEM.pdf")
    ap.add_argument("--provenance", action="append", default=[], metavar="FILE.json",
                    help="how the figures were made (see below)")
    args = ap.parse_args(argv)
    h5 = None
    try:
        try:
            with open(args.template, encoding="utf-8") as f:
                template = f.read()
        except OSError as e:
            raise RenderError(f"{args.template}: expected a template, found {e.strerror.lower()}") from None
        figures = dict(pairs(args.figure, "--figure"))
        provenance = load_provenance(args.provenance)
        h5 = H5Files(pairs(args.h5, "--h5"))
        out_dir = os.path.dirname(os.path.abspath(args.out))
        report = render(args.template, template, h5, figures, provenance, out_dir)
        tmp = args.out + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write(report)
            os.replace(tmp, args.out)
        except OSError as e:
            raise RenderError(f"{args.out}: expected a writable path, found {e.strerror.lower()}") from None
    except RenderError as e:
        print(f"render_report: {e}", file=sys.stderr)
        return 1
    finally:
        if h5 is not None:
            h5.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
