"""The gnuplot figures and the report renderer, on a small real run made here with the C tools.

A corpus of five standard-library packages (train: email, unittest; val: json; test: http,
logging), a 512-token BPE, a tiny model pretrained for 60 steps, then fine-tuned on the val split
with LoRA and with every weight, six perplexity files and the TSV exports of all of them. Then:
every figure script makes a PDF and a PNG that are byte-identical from run to run (a second
apart, in another time zone) and draw the series they should; bad inputs give one line naming
the file; the rendered report holds the numbers h5py reads from the files, fails on a missing
attribute naming it, and lists the right sha256 and git commit under each figure.

Run: .venv/bin/python -m pytest tests/workflow/test_figures_report.py (LAB_BIN = the directory
of the lab-* tools, default build/).
"""
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_BIN = Path(os.environ.get("LAB_BIN", REPO / "build"))
RENDER = REPO / "workflows/scripts/render_report.py"
TEMPLATE = REPO / "papers/lora_vs_full/template.md"
EPOCH = 1700000000
STDLIB = Path(os.__file__).parent

MODELS = ("base", "lora", "full")
SPLITS = ("test", "val")
# figure -> its input TSVs, in the order of its command line
FIGURE_INPUTS = {
    "pretrain_loss": ["pretrain_log"],
    "finetune_loss": ["lora_log", "full_log"],
    "ppl_by_package": [f"ppl_{m}_{s}" for s in SPLITS for m in MODELS],
    "corpus_filters": ["corpus_filters"],
    "corpus_packages": ["corpus_packages"],
}
# the TSV -> (HDF5 file, table) it is exported from
TSV_SOURCE = {
    "pretrain_log": ("pretrain_log.h5", "train_log"),
    "lora_log": ("lora_log.h5", "train_log"),
    "full_log": ("full_log.h5", "train_log"),
    "corpus_filters": ("corpus.h5", "filters"),
    "corpus_packages": ("corpus.h5", "packages"),
    **{f"ppl_{m}_{s}": (f"ppl_{m}_{s}.h5", "by_package") for m in MODELS for s in SPLITS},
}
# colours (Okabe-Ito, as cairo writes them: r g b in 0..1, 6 decimals) each figure must use
OKABE_ITO = {"blue": (0x00, 0x72, 0xB2), "orange": (0xE6, 0x9F, 0x00), "green": (0x00, 0x9E, 0x73),
             "vermillion": (0xD5, 0x5E, 0x00)}
FIGURE_COLOURS = {
    "pretrain_loss": ["blue", "vermillion"],
    "finetune_loss": ["orange", "green"],
    "ppl_by_package": ["blue", "orange", "green"],
    "corpus_filters": ["blue", "vermillion"],
    "corpus_packages": ["blue", "orange", "green"],
}
H5_NAMES = {"corpus": "corpus.h5", "tokens": "tokens.h5", "base": "base.h5", "lora": "adapter.h5",
            "full": "full.h5", "pretrain_log": "pretrain_log.h5", "lora_log": "lora_log.h5",
            "full_log": "full_log.h5", **{f"ppl_{m}_{s}": f"ppl_{m}_{s}.h5" for m in MODELS for s in SPLITS}}


def tool(name):
    path = LAB_BIN / f"lab-{name}"
    assert path.is_file(), f"{path}: expected the built tool (set LAB_BIN to the build directory), found none"
    return str(path)


def run(cmd, cwd, env=None, ok=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A real (tiny) run of the study, and the TSVs exported from it."""
    d = tmp_path_factory.mktemp("study")
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH))
    dirs = [a for p in ("email", "unittest", "json", "http", "logging") for a in ("--dir", f"{p}={STDLIB / p}")]
    run([tool("corpus"), "--out", "corpus.h5", *dirs, "--val-packages", "json", "--test-packages", "http,logging",
         "--threads", "1"], d, env)
    run([tool("tokenizer"), "train", "--corpus", "corpus.h5", "--vocab-size", "512", "--out", "tokenizer.h5"], d, env)
    run([tool("tokenizer"), "encode", "--corpus", "corpus.h5", "--tokenizer", "tokenizer.h5", "--out", "tokens.h5"], d, env)
    small = ["--tokens", "tokens.h5", "--batch", "4", "--val-every", "10", "--val-batches", "2", "--threads", "1"]
    model = ["--dim", "32", "--layers", "2", "--heads", "2", "--ctx", "32", "--lr", "3e-3", "--warmup", "5"]
    run([tool("train"), "--mode", "pretrain", *small, *model, "--steps", "60", "--out", "base.h5",
         "--log", "pretrain_log.h5"], d, env)
    run([tool("train"), "--mode", "lora", "--base", "base.h5", *small, "--seq", "32", "--train-split", "val",
         "--lora-targets", "all", "--lora-rank", "4", "--lr", "1e-2", "--steps", "30", "--out", "adapter.h5",
         "--log", "lora_log.h5"], d, env)
    run([tool("train"), "--mode", "full", "--base", "base.h5", *small, "--seq", "32", "--train-split", "val",
         "--lr", "3e-3", "--steps", "30", "--out", "full.h5", "--log", "full_log.h5"], d, env)
    for split in SPLITS:
        for m, extra in (("base", ["--model", "base.h5"]), ("lora", ["--model", "base.h5", "--adapter", "adapter.h5"]),
                         ("full", ["--model", "full.h5"])):
            run([tool("eval"), "ppl", *extra, "--tokens", "tokens.h5", "--split", split, "--ctx", "32",
                 "--threads", "1", "--out", f"ppl_{m}_{split}.h5"], d, env)
    (d / "tsv").mkdir()
    for name, (h5, table) in TSV_SOURCE.items():
        run([tool("export"), h5, table, "--out", f"tsv/{name}.tsv"], d, env)
    return d


def gnuplot(fig, stem, inputs, cwd, tz="UTC0", ok=True):
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH), TZ=tz)
    return run(["gnuplot", "-c", str(REPO / f"figures/{fig}.gp"), stem, *inputs], cwd, env, ok)


def tsvs(fig):
    return [f"tsv/{name}.tsv" for name in FIGURE_INPUTS[fig]]


@pytest.fixture(scope="module")
def figures(work):
    """Every figure drawn twice: in UTC, then at least a second later in India's time zone."""
    started = {}
    for out, tz in (("figs", "UTC0"), ("figs2", "Asia/Kolkata")):
        (work / out).mkdir()
        for fig in FIGURE_INPUTS:
            if fig in started:
                time.sleep(max(0.0, started[fig] + 1.1 - time.monotonic()))
            started[fig] = time.monotonic()
            gnuplot(fig, f"{out}/{fig}", tsvs(fig), work, tz)
    return work


# ---------------------------------------------------------------------------------------------
# figures


def pdf_streams(data):
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            yield zlib.decompress(m.group(1))
        except zlib.error:
            continue


def check_xref(data):
    """Every object offset in the cross-reference table points at that object."""
    start = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data).group(1))
    assert data[start:start + 4] == b"xref", "startxref points at the xref table"
    m = re.match(rb"xref\s+0 (\d+)\s+", data[start:])
    pos = start + m.end()
    for obj in range(int(m.group(1))):
        entry = data[pos + 20 * obj:pos + 20 * (obj + 1)]
        offset, kind = int(entry[:10]), entry[17:18]
        if kind == b"n":
            assert data[offset:].startswith(b"%d 0 obj" % obj), f"object {obj} is not at offset {offset}"


@pytest.mark.parametrize("fig", list(FIGURE_INPUTS))
def test_figure_files_whole_and_identical(figures, fig):
    pdf, png = (figures / f"figs/{fig}.pdf").read_bytes(), (figures / f"figs/{fig}.png").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF") and len(pdf) > 5000
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 900 and height >= 400, f"{fig}.png is {width}x{height}"
    assert sorted(p.name for p in (figures / "figs").glob(f"{fig}.*")) == [f"{fig}.pdf", f"{fig}.png"], "no .tmp left"
    assert (figures / f"figs2/{fig}.pdf").read_bytes() == pdf, "the PDF differs between two runs"
    assert (figures / f"figs2/{fig}.png").read_bytes() == png, "the PNG differs between two runs"
    date = datetime.datetime.fromtimestamp(EPOCH, datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    assert re.findall(rb"/CreationDate \((D:\d{14}Z)\)", pdf) == [f"D:{date}Z".encode()]
    check_xref(pdf)


@pytest.mark.parametrize("fig", list(FIGURE_INPUTS))
def test_figure_draws_its_series(figures, fig):
    """The series' colours are in the PDF's drawing operators, and the axes' words in its text."""
    content = b"".join(pdf_streams((figures / f"figs/{fig}.pdf").read_bytes()))
    for name in FIGURE_COLOURS[fig]:
        rgb = b" ".join(b"%g" % round(c / 255, 6) for c in OKABE_ITO[name])
        assert re.search(rgb + rb" (rg|RG)\b", content), f"{fig}: no {name} ({rgb.decode()}) drawn"


def test_figure_date_follows_source_date_epoch(work):
    (work / "epoch").mkdir()
    env = dict(os.environ, SOURCE_DATE_EPOCH="86400", TZ="UTC0")
    run(["gnuplot", "-c", str(REPO / "figures/corpus_filters.gp"), "epoch/f", "tsv/corpus_filters.tsv"], work, env)
    assert b"/CreationDate (D:19700102000000Z)" in (work / "epoch/f.pdf").read_bytes()


@pytest.mark.parametrize("case", ["missing file", "missing column", "empty table", "other packages", "no directory"])
def test_figure_bad_input(work, case):
    (work / "bad").mkdir(exist_ok=True)
    (work / "bad/header_only.tsv").write_text("step\ttokens_seen\ttrain_loss\tval_loss\n")
    fig, inputs, named, want = {
        "missing file": ("pretrain_loss", ["tsv/nope.tsv"], "tsv/nope.tsv", "found no such file"),
        "missing column": ("pretrain_loss", ["tsv/corpus_filters.tsv"], "tsv/corpus_filters.tsv",
                           "expected a column 'tokens_seen', found columns filter files_removed bytes_removed"),
        "empty table": ("pretrain_loss", ["bad/header_only.tsv"], "bad/header_only.tsv", "found none"),
        "other packages": ("ppl_by_package", tsvs("ppl_by_package")[:2] + ["tsv/ppl_full_val.tsv"] + tsvs("ppl_by_package")[3:],
                           "tsv/ppl_full_val.tsv", "expected the packages of tsv/ppl_base_test.tsv in the same order"),
        "no directory": ("corpus_filters", ["tsv/corpus_filters.tsv"], "nodir/", "expected an existing directory"),
    }[case]
    stem = "nodir/x" if case == "no directory" else "bad/x"
    proc = gnuplot(fig, stem, inputs, work, tz="Europe/Paris", ok=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and want in lines[0], proc.stderr
    assert not list((work / "bad").glob("x.*")), "nothing written"


def test_figure_usage(work):
    proc = gnuplot("finetune_loss", "bad/x", ["tsv/lora_log.tsv"], work, ok=False)
    assert proc.returncode == 2 and "usage: gnuplot -c figures/finetune_loss.gp OUT_STEM LORA_LOG.tsv FULL_LOG.tsv" in proc.stderr


# ---------------------------------------------------------------------------------------------
# the report


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance(work):
    """What the pipeline's rules would pass: per figure, its rule, commands and inputs."""
    records = {}
    for fig, names in FIGURE_INPUTS.items():
        inputs = [{"path": f"tsv/{n}.tsv", "from": TSV_SOURCE[n][0]} for n in names]
        inputs += [{"path": str(REPO / f"figures/{fig}.gp")}, {"path": str(REPO / "figures/style.gp")}]
        commands = [f"build/lab-export {TSV_SOURCE[n][0]} {TSV_SOURCE[n][1]} --out tsv/{n}.tsv" for n in names]
        commands.append(f"gnuplot -c figures/{fig}.gp figs/{fig} " + " ".join(tsvs(fig)))
        records[fig] = {"rule": f"figure_{fig}", "commands": commands, "inputs": inputs}
    (work / "provenance.json").write_text(json.dumps(records, indent=1))
    return "provenance.json"


def render(work, template, out, ok=True, h5=None, figures=True, prov=True):
    cmd = [sys.executable, str(RENDER), "--template", str(template), "--out", out]
    for name, path in (H5_NAMES if h5 is None else h5).items():
        cmd += ["--h5", f"{name}={path}"]
    if figures:
        for fig in FIGURE_INPUTS:
            cmd += ["--figure", f"{fig}=figs/{fig}"]
    if prov:
        cmd += ["--provenance", provenance(work)]
    return run(cmd, work, ok=ok)


@pytest.fixture(scope="module")
def report(figures):
    (figures / "papers").mkdir()
    render(figures, TEMPLATE, "papers/report.md")
    return (figures / "papers/report.md").read_text()


def row(report, first_cell):
    """The cells of the Markdown table row that starts with first_cell."""
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no table row '{first_cell}' in the report")


def test_report_results_table(figures, report):
    for m, label in (("base", "base (pretrained only)"), ("lora", "LoRA"), ("full", "full fine-tuning")):
        cells = row(report, label)
        want = []
        for split in SPLITS:
            a = h5py.File(figures / f"ppl_{m}_{split}.h5").attrs
            want += [f"{a['perplexity']:.3f}", f"{a['bits_per_byte']:.4f}"]
        assert cells[1:] == want, (label, cells, want)
    lora, full = h5py.File(figures / "adapter.h5"), h5py.File(figures / "full.h5")
    lora_params = sum(lora[f"lora/{k}"].size for k in lora["lora"])
    full_params = sum(full[f"params/{k}"].size for k in full["params"])
    assert lora_params == lora["optim/m"].size, "the adapter's tensors are what the optimizer trained"
    assert row(report, "LoRA")[0] == f"{lora_params:,d}" and row(report, "full fine-tuning")[0] == f"{full_params:,d}"
    assert row(report, "trainable parameters") == [f"{lora_params:,d}", f"{full_params:,d}"]


def test_report_training_numbers(figures, report):
    cells = {}
    for name in ("lora", "full"):
        log = h5py.File(figures / f"{name}_log.h5")["train_log"]
        tokens, speed = log["tokens_seen"][:], log["tokens_per_s"][:]
        seconds = float((np.diff(tokens, prepend=0) / speed).sum())
        val = log["val_loss"][:]
        cells[name] = [f"{log['step'].size:,d}", f"{int(tokens[-1]):,d}", f"{val[~np.isnan(val)][-1]:.3f}",
                       f"{seconds:.1f}", f"{tokens[-1] / seconds:,.0f}"]
    for i, label in enumerate(["steps", "tokens seen", "last validation loss (nats/token)",
                               "compute time of the steps (s)", "mean throughput (tokens/s)"]):
        assert row(report, label) == [cells["lora"][i], cells["full"][i]], label
    corpus = h5py.File(figures / "corpus.h5")
    split, kept = corpus["packages/split"][:], corpus["packages/bytes_kept"][:]
    for code, name in enumerate(("train", "val", "test")):
        assert row(report, name)[:3] == [f"{(split == code).sum():d}",
                                         f"{int(corpus['packages/files_kept'][:][split == code].sum()):,d}",
                                         f"{kept[split == code].sum() / 1e6:.2f}"], name
    names = corpus["packages/name"].asstr()[:]
    assert f"Val packages: {', '.join(names[split == 1])}." in report


def test_report_per_package_tables(figures, report):
    for split in SPLITS:
        files = {m: h5py.File(figures / f"ppl_{m}_{split}.h5")["by_package"] for m in MODELS}
        for i, package in enumerate(files["base"]["package"].asstr()[:]):
            ppl = {m: files[m]["perplexity"][i] for m in MODELS}
            bpb = {m: files[m]["bits_per_byte"][i] for m in MODELS}
            assert row(report, package) == [f"{files['base']['tokens_scored'][i]:,d}",
                                            *(f"{ppl[m]:.3f}" for m in MODELS), f"{ppl['lora'] / ppl['full'] - 1:+.2%}",
                                            *(f"{bpb[m]:.4f}" for m in MODELS)], package


def test_report_figures_and_provenance(figures, report):
    for fig, names in FIGURE_INPUTS.items():
        assert re.search(rf"!\[[^\]]+\]\(\.\./figs/{fig}\.png\)", report), f"{fig}: image link relative to the report"
        block = report.split(f"<summary>Provenance of <code>{fig}</code></summary>")[1].split("</details>")[0]
        assert f"Snakemake rule `figure_{fig}`" in block
        commits = {h5py.File(figures / TSV_SOURCE[n][0]).attrs["git_commit"] for n in names}
        assert len(commits) == 1 and f"`{commits.pop()}`" in block
        listed = dict(reversed(line.split("  ", 1)) for line in block.splitlines() if re.match(r"[0-9a-f]{64}  ", line))
        want = [f"tsv/{n}.tsv" for n in names] + [TSV_SOURCE[n][0] for n in names] + [f"figs/{fig}.png", f"figs/{fig}.pdf"]
        for path in want:
            assert listed.get(path) == sha(figures / path), f"{fig}: sha256 of {path}"
        assert f"gnuplot -c figures/{fig}.gp figs/{fig} " + " ".join(tsvs(fig)) in block
    for name, path in H5_NAMES.items():
        assert f"| {name} | `{path}` | `{h5py.File(figures / path).attrs['schema']}` | `{sha(figures / path)}` |" in report


def test_report_deterministic(figures, report):
    render(figures, TEMPLATE, "papers/again.md")
    assert (figures / "papers/again.md").read_text() == report
    assert not list((figures / "papers").glob("*.tmp"))


def test_report_syntax(figures):
    """Each form of placeholder against values read here with h5py."""
    (figures / "syntax.md").write_text(
        "a {{ ppl_base_test@perplexity }} b {{ ppl_base_test@perplexity :.2f }} c {{ base@dim * 2 - 1 }}\n"
        "d {{ size(lora[lora]) }} e {{ count(lora_log[train_log/step]) }} f {{ lora[optim]@mode }}\n"
        "g {{ first(pretrain_log[train_log/val_loss]) :.6f }} h {{ sum(corpus[packages/split] == 2) }}\n"
        "i {{ compare(1, 2) }}/{{ compare(2, 2) }}/{{ compare(3, 2) }} j {{ -(1 + 2) * 3 / 4 }}\n"
        "{{ table p = ppl_base_val[by_package/package] | n = ppl_base_val[by_package/tokens_scored] :,d }}\n")
    render(figures, figures / "syntax.md", "syntax.out.md", figures=False, prov=False)
    text = (figures / "syntax.out.md").read_text().splitlines()
    ppl = float(h5py.File(figures / "ppl_base_test.h5").attrs["perplexity"])
    val = h5py.File(figures / "pretrain_log.h5")["train_log/val_loss"][:]
    assert text[0] == f"a {ppl!r} b {ppl:.2f} c {2 * h5py.File(figures / 'base.h5').attrs['dim'] - 1}"
    assert text[1] == f"d {h5py.File(figures / 'adapter.h5')['optim/m'].size} e 30 f lora"
    assert text[2] == f"g {val[~np.isnan(val)][0]:.6f} h 2"
    assert text[3] == f"i lower than/the same as/higher than j {-(1 + 2) * 3 / 4!r}"
    t = h5py.File(figures / "ppl_base_val.h5")["by_package"]
    assert text[4:] == ["| p | n |", "| --- | ---: |", f"| {t['package'].asstr()[0]} | {t['tokens_scored'][0]:,d} |"]


@pytest.mark.parametrize("case", ["attribute", "dataset", "name", "file", "syntax", "figure", "lengths"])
def test_report_fails_loudly(figures, case):
    template, want, h5 = {
        "attribute": ("x\n\ny {{ ppl_lora_test@perplexty :.2f }}\n",
                      ["syntax.md:3: {{ ppl_lora_test@perplexty :.2f }}: expected attribute 'perplexty' on ppl_lora_test",
                       "found attributes adapter, bits_per_byte"], None),
        "dataset": ("{{ sum(lora_log[train_log/loss]) }}",
                    ["expected 'train_log/loss' in lora_log (lora_log.h5), found no such group or dataset"], None),
        "name": ("{{ ppl_lora_tset@perplexity }}", ["expected a file named 'ppl_lora_tset'"], None),
        "file": ("{{ base@dim }}", ["gone.h5: expected an HDF5 file (--h5 base=gone.h5), found no such file"],
                 {"base": "gone.h5"}),
        "syntax": ("{{ base@dim + }}", ["{{ base@dim + }}: expected 'more'"], None),
        "figure": ("{{ figure nope | x }}", ["expected a figure 'nope' (--figure nope=STEM)"], None),
        "lengths": ("{{ table a = ppl_base_val[by_package/package] | b = ppl_base_test[by_package/package] }}",
                    ["table: expected columns of one length, found a: 1, b: 2"], None),
    }[case]
    (figures / "syntax.md").write_text(template)
    (figures / "fail.md").unlink(missing_ok=True)
    proc = render(figures, "syntax.md", "fail.md", ok=False, h5=h5)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in want), proc.stderr
    assert not (figures / "fail.md").exists() and not (figures / "fail.md.tmp").exists()


def test_report_nan_is_an_error(figures):
    (figures / "syntax.md").write_text("{{ first(pretrain_log[train_log/val_loss] * 0 / 0) }}\n")
    proc = render(figures, "syntax.md", "fail.md", ok=False, figures=False, prov=False)
    assert proc.returncode == 1 and "first(): expected at least one value that is not NaN, found none" in proc.stderr
