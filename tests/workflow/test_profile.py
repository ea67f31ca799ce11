"""The inference-profiling study (workflows/profile.smk) through the real Snakemake pipeline: the
tiny config's report papers/inference_profile/report.md and everything it needs, built in a fresh
copy of the project (test_pipeline's copy_project).

Checks: every profile HDF5 file has the tables and columns of its schema (codelm-lab/profile/1,
codelm-lab/serve/1) and the sweep the config asked for; each configuration has one pp and one tg
row and `reps` trials per test, and its summary columns follow from its trials and the formulas;
the f32 perplexity through the quantization path equals the ordinary perplexity of the same split
to 1e-9 relative, and every format's file scored the same tokens; the six figures are valid PDFs
and PNGs; the report has no unfilled placeholder and its headline numbers are the HDF5 values; a
figure script given a table without a column it needs stops with one line naming the file.
"""
import math
import os
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from test_pipeline import copy_project, snakemake

REPO = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
CONFIG, MODEL, THREADS = TINY["profile"], TINY["model"], TINY["threads"]
FORMATS = ["f32", "bf16", "f16", "q8_0", "q4_0"]
BENCHES = ["batch", "kv", "formats", "width"]
FIGURES = ["batch_scaling", "kv_cache", "quant_frontier", "memory_formula", "width_scaling", "serving_latency"]
REPORT = "papers/inference_profile/report.md"

# the contract (.notes/profile_schema.md): table -> columns
TRIALS = ["config", "test", "rep", "seconds", "tokens", "tokens_per_s"]
CONFIGS = ["config", "test", "kind", "format", "kv_mode", "kv_dtype", "batch", "prompt", "gen", "threads", "dim",
           "layers", "heads", "vocab", "n_params", "bits_per_weight", "weight_bytes", "kv_bytes_formula",
           "kv_allocated_bytes", "rss_peak_bytes", "mem_measured_bytes", "mem_formula_bytes",
           "median_tokens_per_s", "mean_tokens_per_s", "std_tokens_per_s", "min_tokens_per_s", "max_tokens_per_s",
           "median_ms", "ms_per_step", "bound_tokens_per_s", "fraction_of_bound"]
BENCH_ATTRS = ["bandwidth_gbs", "bandwidth_gbs_min", "bandwidth_gbs_max", "sgemm_gflops", "load_start", "load_end",
               "qkernel", "model", "reps", "warmup", "cpu", "blas_core", "threads"]
METRICS = [f"{m}_{s}_s" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "p50", "p90", "p95", "p99")]
RUNS = (["run", "scheduler", "kv_mode", "rate", "batch", "n_requests", "duration_s", "request_throughput",
         "output_throughput"] + METRICS
        + ["kv_capacity_bytes", "kv_peak_allocated_bytes", "kv_peak_used_bytes", "kv_mean_waste"])
REQUESTS = ["run", "request", "arrival_s", "prompt_len", "output_len", "ttft_s", "tpot_s", "e2el_s"]
ITL = ["run", "gap_s"]
STEPS = ["run", "start_s", "end_s", "n_entries", "n_running", "kv_allocated_bytes", "kv_used_bytes"]


def table(f, name):
    """A table as {column: array}, strings decoded."""
    group = f[name]
    out = {}
    for col in group:
        ds = group[col]
        out[col] = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) is not None else ds[()]
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile")
    copy_project(root)
    snakemake(root, REPORT)
    return root


def bench(run, name):
    return h5py.File(run / "data/tiny/profile" / f"{name}.h5", "r")


@pytest.mark.parametrize("name", BENCHES)
def test_bench_files_follow_the_schema(run, name):
    with bench(run, name) as f:
        assert f.attrs["schema"] == "codelm-lab/profile/1"
        assert sorted(k for k in f if isinstance(f[k], h5py.Group)) == ["configs", "trials"]
        assert sorted(f["trials"]) == sorted(TRIALS)
        assert sorted(f["configs"]) == sorted(CONFIGS)
        for attr in BENCH_ATTRS:
            assert attr in f.attrs, f"{name}: no root attribute {attr}"
        assert f.attrs["reps"] == CONFIG["reps"] and f.attrs["warmup"] == CONFIG["warmup"]
        assert f.attrs["bandwidth_gbs_min"] <= f.attrs["bandwidth_gbs"] <= f.attrs["bandwidth_gbs_max"]
        assert f.attrs["qkernel"] in ("portable", "avx2", "avx512")
        assert len(f.attrs["config_sha256"]) == 64, "the pipeline passes the config hash"


@pytest.mark.parametrize("name", BENCHES)
def test_bench_sweeps_are_the_configured_ones(run, name):
    with bench(run, name) as f:
        c = table(f, "configs")
    tg = c["kind"] == "tg"
    sweep = CONFIG[name]
    if name == "batch":
        assert list(c["batch"][tg]) == sweep["batch"]
    elif name == "kv":
        assert sorted(set(zip(c["kv_mode"][tg], c["prompt"][tg]))) == sorted(
            (k, p) for k in ("none", "contiguous", "paged") for p in sweep["prompt"])
    elif name == "formats":
        assert sorted(c["format"][tg]) == sorted(FORMATS)
    else:
        assert list(c["dim"][tg]) == sweep["dim"]
        assert set(c["layers"]) == {MODEL["layers"]}
        assert list(c["heads"][tg]) == [d // 64 for d in sweep["dim"]]
    if name != "kv":
        assert set(c["prompt"]) == {sweep["prompt"]}
    assert set(c["gen"]) == {sweep["gen"]}
    assert set(c["threads"]) == {THREADS}


@pytest.mark.parametrize("name", BENCHES)
def test_each_configuration_has_reps_trials_and_consistent_summaries(run, name):
    with bench(run, name) as f:
        c, t = table(f, "configs"), table(f, "trials")
    configs = sorted(set(c["config"]))
    assert len(c["config"]) == 2 * len(configs)
    for i, (cfg, test, kind) in enumerate(zip(c["config"], c["test"], c["kind"])):
        assert test == f"{kind}{c['prompt'][i] if kind == 'pp' else c['gen'][i]}", (name, i, test)
        mine = (t["config"] == cfg) & (t["test"] == test)
        assert mine.sum() == CONFIG["reps"], (name, cfg, test, mine.sum())
        assert sorted(t["rep"][mine]) == list(range(CONFIG["reps"]))
        tokens = c["batch"][i] * (c["prompt"][i] if kind == "pp" else c["gen"][i])
        assert set(t["tokens"][mine]) == {tokens}, (name, cfg, test)
        np.testing.assert_allclose(t["tokens_per_s"][mine], tokens / t["seconds"][mine], rtol=1e-9)
        np.testing.assert_allclose(c["median_tokens_per_s"][i], np.median(t["tokens_per_s"][mine]), rtol=1e-9)
        assert c["min_tokens_per_s"][i] <= c["median_tokens_per_s"][i] <= c["max_tokens_per_s"][i]
        np.testing.assert_allclose(c["fraction_of_bound"][i], c["median_tokens_per_s"][i] / c["bound_tokens_per_s"][i],
                                   rtol=1e-9)
        if kind == "pp":
            assert c["ms_per_step"][i] == c["median_ms"][i], "the template tells pp rows by ms_per_step == median_ms"
        else:
            assert c["median_ms"][i] > c["ms_per_step"][i]
        head_dim = c["dim"][i] // c["heads"][i]
        kv_bytes = 2 * c["layers"][i] * c["heads"][i] * head_dim * (c["prompt"][i] + c["gen"][i]) * c["batch"][i] * 4
        assert c["kv_bytes_formula"][i] == kv_bytes, (name, cfg)
        assert c["mem_formula_bytes"][i] == c["weight_bytes"][i] + c["kv_bytes_formula"][i]
        assert c["mem_measured_bytes"][i] > 0


def test_serve_file_follows_the_schema_and_the_config(run):
    serve = CONFIG["serve"]
    with h5py.File(run / "data/tiny/profile/serve.h5", "r") as f:
        assert f.attrs["schema"] == "codelm-lab/serve/1"
        for name, cols in (("runs", RUNS), ("requests", REQUESTS), ("itl", ITL), ("steps", STEPS)):
            assert sorted(f[name]) == sorted(cols), name
        runs, req = table(f, "runs"), table(f, "requests")
    assert sorted(zip(runs["scheduler"], runs["kv_mode"], runs["rate"])) == sorted(
        (s, k, float(r)) for s in ("static", "continuous") for k in ("contiguous", "paged") for r in serve["rates"])
    assert set(runs["n_requests"]) == {serve["requests"]} and set(runs["batch"]) == {serve["batch"]}
    assert len(req["run"]) == len(runs["run"]) * serve["requests"]
    assert serve["prompt_min"] <= req["prompt_len"].min() and req["prompt_len"].max() <= serve["prompt_max"]
    assert serve["output_min"] <= req["output_len"].min() and req["output_len"].max() <= serve["output_max"]
    assert np.all((runs["kv_mean_waste"] >= 0) & (runs["kv_mean_waste"] <= 1))
    assert np.all(runs["ttft_p50_s"] <= runs["ttft_p99_s"])


def test_f32_through_the_quantization_path_is_the_ordinary_perplexity(run):
    ppl = {}
    for fmt in FORMATS:
        with h5py.File(run / "data/tiny/ppl" / f"base_test_{fmt}.h5", "r") as f:
            assert f.attrs["weight_format"] == fmt
            ppl[fmt] = (float(f.attrs["perplexity"]), int(f.attrs["tokens_scored"]))
    with h5py.File(run / "data/tiny/ppl/base_test.h5", "r") as f:
        ordinary = (float(f.attrs["perplexity"]), int(f.attrs["tokens_scored"]))
    assert math.isclose(ppl["f32"][0], ordinary[0], rel_tol=1e-9), (ppl["f32"], ordinary)
    assert {tokens for _, tokens in ppl.values()} == {ordinary[1]}
    # quantizing changes the model: 4-bit weights do not score exactly as f32
    assert ppl["q4_0"][0] != ppl["f32"][0]


@pytest.mark.parametrize("name", FIGURES)
def test_figures_are_valid_pdfs_and_pngs(run, name):
    pdf = (run / "figures" / f"{name}.pdf").read_bytes()
    png = (run / "figures" / f"{name}.png").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:] and len(pdf) > 2000, name
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000, name
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 400 and height >= 250, (name, width, height)


def row(text, first_cell):
    """The cells of the Markdown table row that starts with first_cell."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


def test_report_numbers_are_the_hdf5_values(run):
    text = (run / REPORT).read_text()
    assert "{{" not in text and "}}" not in text, "unfilled placeholder"
    for name in FIGURES:
        assert f"figures/{name}.png" in text, name
    ppl = {}
    for fmt in FORMATS:
        with h5py.File(run / "data/tiny/ppl" / f"base_test_{fmt}.h5", "r") as f:
            ppl[fmt] = float(f.attrs["perplexity"])
    for fmt in FORMATS:
        assert f"{ppl[fmt]:.4f}" in text, fmt
    for fmt in FORMATS[1:]:
        assert f"| {fmt} | {ppl[fmt]:.4f} | {100 * (ppl[fmt] / ppl['f32'] - 1):+.2g}% |" in text, fmt
    assert "the same as the\nordinary evaluation" in text or "the same as the ordinary evaluation" in text
    # the physical-limits table: one row per format with its decode median and fraction of the bound
    with bench(run, "formats") as f:
        c = table(f, "configs")
    for i in np.flatnonzero(c["kind"] == "tg"):
        cells = row(text, c["format"][i])
        assert f"{c['median_tokens_per_s'][i]:,.0f}" in cells, (c["format"][i], cells)
        assert f"{c['fraction_of_bound'][i]:.0%}" in cells, (c["format"][i], cells)
    # where batching stops helping, computed here from the HDF5 file: every doubling up to `stop`
    # gained 10% or more, and `last` is the last doubling that did
    with bench(run, "batch") as f:
        b = table(f, "configs")
    tg = b["kind"] == "tg"
    batches, tps = b["batch"][tg], b["median_tokens_per_s"][tg]
    gains = tps[1:] / tps[:-1] - 1
    slow = [batches[i] for i in range(1, len(tps)) if gains[i - 1] < 0.1]
    stop = slow[0] // 2 if slow else batches[-1]
    last = max([batches[0]] + [batches[i] for i in range(1, len(tps)) if gains[i - 1] >= 0.1])
    assert re.search(rf"up to batch\s+{stop}\*\*;\s+the last doubling that did was the one to batch\s+{last}\s", text), \
        (stop, last)
    for batch, gain in zip(batches[1:], gains):
        assert f"| {batch} | {gain:+.0%} |" in text, (batch, gain)
    # the serving table: each run's TTFT p50 in ms
    with h5py.File(run / "data/tiny/profile/serve.h5", "r") as f:
        runs = table(f, "runs")
    for ttft in runs["ttft_p50_s"]:
        assert f"{1000 * ttft:,.1f}" in text
    # the machine: the measured bandwidth of the batch sweep
    with bench(run, "batch") as f:
        assert f"{f.attrs['bandwidth_gbs']:.1f}" in text


@pytest.mark.parametrize("fig, inputs", [
    ("batch_scaling", ["profile_batch"]),
    ("kv_cache", ["profile_kv"]),
    ("quant_frontier", ["profile_formats"] + [f"ppl_base_test_{f}" for f in FORMATS]),
    ("memory_formula", [f"profile_{b}" for b in BENCHES]),
    ("width_scaling", ["profile_width"]),
    ("serving_latency", ["profile_serve"]),
])
def test_figure_without_a_needed_column_names_the_file(run, tmp_path, fig, inputs):
    tsvs = [run / "data/tiny/tsv" / f"{name}.tsv" for name in inputs]
    # the first table loses the last column the script checks for
    lines = tsvs[0].read_text().splitlines()
    header = lines[0].split("\t")
    checked = re.search(r'^COLS = "([^"]+)"', (REPO / "figures" / f"{fig}.gp").read_text(), re.M).group(1).split()
    drop = header.index(checked[-1])
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join("\t".join(c for j, c in enumerate(line.split("\t")) if j != drop) for line in lines) + "\n")
    proc = subprocess.run(["gnuplot", "-c", str(REPO / "figures" / f"{fig}.gp"), str(tmp_path / "out"), str(bad),
                           *map(str, tsvs[1:])], capture_output=True, text=True, env=dict(os.environ, TZ="UTC0"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"{bad}: expected a column '{header[drop]}'" in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("out*")), "no figure is written from a bad table"
