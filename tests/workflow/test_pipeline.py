"""End to end: configs/tiny.yaml through the real Snakemake pipeline, in a fresh copy of the
project in a temporary directory (the C tools are built there by the workflow itself).

Checks: every figure is a valid, non-empty PDF and PNG; the report's numbers equal the values in
the HDF5 files; every HDF5 file carries the provenance attributes and reads completely with h5py
(an independent reader); a second `snakemake` has nothing to do; a rebuild from scratch gives
byte-identical HDF5 files and figures (the training logs' wall-clock tokens_per_s column is the one
documented exception: those files are compared dataset by dataset without it); one figure as a
target builds only its ancestors; a bad config fails before any job runs, naming the key.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PROVENANCE = ["schema", "tool", "tool_version", "git_commit", "command_line", "config_sha256",
              "inputs", "host", "cpu", "blas_core", "gpu", "threads", "created_utc"]
# project files a fresh clone has (build outputs, data and caches stay behind)
# the figures drawn from timings (workflows/profile.smk)
PROFILE_FIGURES = ["batch_scaling", "kv_cache", "quant_frontier", "memory_formula", "width_scaling", "serving_latency"]
SKIP = {".git", ".venv", ".snakemake", "data", ".debs", ".notes", "__pycache__", ".pytest_cache"}


def copy_project(dest: Path) -> None:
    for item in REPO.iterdir():
        if item.name in SKIP or item.name.startswith("build"):
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, ignore=shutil.ignore_patterns(
                "*.pdf", "*.png", "__pycache__", "report.md"))
        else:
            shutil.copy2(item, dest / item.name)
    # the downloaded .debs are a cache shared by runs: reuse the repository's when it has one
    (dest / "data").mkdir()
    # the task sets the project writes are inputs in git under data/tasks
    shutil.copytree(REPO / "data" / "tasks", dest / "data" / "tasks")
    debs = REPO / "data" / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    (dest / "data" / "debs").symlink_to(debs)


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    proc = subprocess.run(SNAKEMAKE + ["--cores", "2", *args, "--configfile", "configs/tiny.yaml"],
                          cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def outputs(root: Path) -> dict:
    """Every artifact of the run: HDF5 files, figures, TSVs, and the report."""
    files = sorted((root / "data" / "tiny").rglob("*.h5")) + sorted((root / "figures").glob("*.p[dn][fg]"))
    files += sorted((root / "data" / "tiny" / "tsv").glob("*.tsv")) + sorted((root / "papers").rglob("report.md"))
    files += sorted((root / "data" / "tiny").rglob("*.jsonl"))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    copy_project(root)
    first = snakemake(root)
    return root, first, outputs(root)


def test_every_figure_is_a_valid_pdf_and_png(run):
    root, _, files = run
    figures = sorted(p.stem for p in (root / "figures").glob("*.gp") if p.stem != "style")
    assert len(figures) >= 5, figures
    for name in figures:
        pdf, png = files.get(f"figures/{name}.pdf"), files.get(f"figures/{name}.png")
        assert pdf and pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:] and len(pdf) > 2000, name
        assert png and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000, name
        # the PNG's header says it is a real picture, not a stub
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width >= 400 and height >= 250, (name, width, height)


def test_hdf5_files_carry_provenance_and_read_completely(run):
    root, _, files = run
    h5s = [k for k in files if k.endswith(".h5")]
    assert len(h5s) >= 12, h5s
    for rel in h5s:
        with h5py.File(root / rel, "r") as f:
            for attr in PROVENANCE:
                assert attr in f.attrs, f"{rel}: no provenance attribute {attr}"
            assert str(f.attrs["schema"]).startswith("codelm-lab/"), rel
            assert len(f.attrs["config_sha256"]) == 64, f"{rel}: the pipeline passes the config hash"
            assert f.attrs["created_utc"] == "2023-11-14T22:13:20Z", rel
            for line in str(f.attrs["inputs"]).splitlines():
                path, sha = line.rsplit(" ", 1)
                assert hashlib.sha256((root / path).read_bytes()).hexdigest() == sha, f"{rel}: input {path}"
            datasets = []
            f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
            assert datasets, rel
            for ds in datasets:
                ds[()]  # every byte of every dataset decodes


def test_second_run_is_a_no_op(run):
    root, _, _ = run
    proc = snakemake(root, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_report_numbers_come_from_the_hdf5_files(run):
    root, _, files = run
    reports = sorted(k for k in files if k.endswith("report.md"))
    assert reports == ["papers/code_eval/report.md", "papers/inference_profile/report.md",
                       "papers/lora_vs_full/report.md"], reports
    for rel in reports:
        assert "{{" not in files[rel].decode(), f"{rel}: unfilled placeholder"
    text = files["papers/lora_vs_full/report.md"].decode()
    # the headline perplexities, as the HDF5 files hold them
    for model in ("base", "lora", "full"):
        with h5py.File(root / "data/tiny/ppl" / f"{model}_test.h5") as f:
            ppl = float(f.attrs["perplexity"])
        assert f"{ppl:.3f}" in text, f"{model} test perplexity {ppl:.3f} not in the report"
    # the evaluation study's headline numbers, as its HDF5 files hold them
    code_eval = files["papers/code_eval/report.md"].decode()
    for model in ("base", "pairs"):
        with h5py.File(root / "data/tiny/code_eval/func" / f"{model}_lab.h5") as f:
            p1 = float(f.attrs["pass_at_1"])
        assert f"{p1:.2%}" in code_eval, f"{model} pass@1 {p1:.2%} not in the code_eval report"
        with h5py.File(root / "data/tiny/code_eval/edit" / f"{model}_body.h5") as f:
            es = float(f.attrs["es_chars"])
        assert f"{es:.3f}" in code_eval, f"{model} edit similarity {es:.3f} not in the code_eval report"
    # every figure is embedded in a report, and each has a provenance block naming its inputs' sha256
    both = "".join(files[rel].decode() for rel in reports)
    for png in (root / "figures").glob("*.png"):
        assert f"figures/{png.name}" in both, png.name
    for tsv in (root / "data/tiny/tsv").glob("ppl_*_test.tsv"):
        assert hashlib.sha256(tsv.read_bytes()).hexdigest() in text, f"sha256 of {tsv.name}"


def test_rebuild_from_scratch_is_byte_identical(run):
    root, _, before = run
    shutil.rmtree(root / "data" / "tiny")
    for p in list((root / "figures").glob("*.p[dn][fg]")) + list((root / "papers").rglob("report.md")):
        p.unlink()
    snakemake(root)
    after = outputs(root)
    assert sorted(after) == sorted(before)
    logs = {k for k in before if k.endswith("_log.h5")}
    log_tsvs = {k for k in before if k.endswith("_log.tsv")}
    # the profiling study's files are wall-clock measurements (codelm-lab/profile/1, serve/1), and
    # so are the tables, figures and report made from them; its perplexities are computed, and checked
    timed = {k for k in before if "/profile/" in k or "/tsv/profile_" in k or "inference_profile" in k}
    timed |= {f"figures/{name}.{ext}" for name in PROFILE_FIGURES for ext in ("pdf", "png")}
    differ = [k for k in before if k not in logs | log_tsvs | timed and not k.endswith("report.md")
              and before[k] != after[k]]
    assert not differ, f"not byte-identical after a rebuild: {differ}"
    for rel in log_tsvs:  # the same rows but for the wall-clock column
        rows = [[line.split("\t") for line in d.decode().splitlines()] for d in (before[rel], after[rel])]
        col = rows[0][0].index("tokens_per_s")
        strip = [[r[:col] + r[col + 1:] for r in table] for table in rows]
        assert strip[0] == strip[1], rel
    for rel in logs:  # identical but for the wall-clock column
        a_path, b_bytes = root / rel, before[rel]
        tmp = root / "before.h5"
        tmp.write_bytes(b_bytes)
        with h5py.File(a_path) as a, h5py.File(tmp) as b:
            cols = str(a["train_log"].attrs["columns"]).split(",")
            assert "tokens_per_s" in cols
            for c in cols:
                if c != "tokens_per_s":
                    assert np.array_equal(a["train_log"][c][()], b["train_log"][c][()], equal_nan=True), (rel, c)
        tmp.unlink()


def test_one_figure_builds_only_its_ancestors(run):
    root, _, _ = run
    proc = snakemake(root, "--dry-run", "--forceall", "figures/corpus_filters.pdf")
    jobs = set(re.findall(r"^rule (\w+):", proc.stdout, re.M))
    assert "figure" in jobs and "corpus" in jobs, jobs
    assert not jobs & {"pretrain", "finetune_lora", "finetune_full", "ppl", "tokenizer"}, jobs


@pytest.mark.parametrize("change, key", [
    ({"model": {"dim": "big"}}, "dim"),
    ({"tokenizer": {"vocab": 512}}, "vocab"),
    ({"corpus": {"dirs": {"mine": "/no/such/dir"}, "debian": False}}, "corpus.dirs.mine"),
    ({"eval": {"ctx": 4096}}, "eval.ctx"),
])
def test_bad_config_fails_before_any_job_naming_the_key(run, change, key):
    root, _, _ = run
    cfg = yaml.safe_load((root / "configs/tiny.yaml").read_text())
    for section, values in change.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    bad = root / "configs" / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(SNAKEMAKE + ["--cores", "1", "--dry-run", "--configfile", str(bad)],
                          cwd=root, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert key in out, out[-2000:]
    assert "Job stats" not in out, "no job may be planned with a bad config"


def test_gpu_config_stops_before_any_job_until_the_cuda_backend_exists(run):
    root, _, _ = run
    proc = subprocess.run(SNAKEMAKE + ["--cores", "1", "--dry-run", "--configfile", "configs/h100.yaml"],
                          cwd=root, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "needs the CUDA backend" in out, out[-2000:]
    assert "Job stats" not in out
