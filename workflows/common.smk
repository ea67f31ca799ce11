# Shared by every stage: the run's paths, checks that fail before any job runs, the C tools and the
# per-step config hashes recorded in every HDF5 file.
import glob
import hashlib
import json
import os
import shlex
import subprocess
import sys

from snakemake.exceptions import WorkflowError

RUN = config["run"]
D = f"data/{RUN}"


def _config_error(key, expected, found):
    raise WorkflowError(f"config key '{key}': expected {expected}, found {found}")


if config["scale"] == "gpu":
    raise WorkflowError(
        f"config '{RUN}': scale: gpu needs the CUDA backend, which is not built yet "
        "(csrc/ has only the CPU backend); run a cpu-scale config such as configs/default.yaml"
    )
if config["corpus"]["debian"] and not os.path.isfile(config["corpus"]["pinned"]):
    _config_error("corpus.pinned", "a TSV of pinned packages", f"no file '{config['corpus']['pinned']}'")
for _name, _path in config["corpus"]["dirs"].items():
    if not os.path.isdir(_path):
        _config_error(f"corpus.dirs.{_name}", "a directory of .py files", f"no directory '{_path}'")
if config["corpus"]["debian"] and config["corpus"]["dirs"] and not config["corpus"]["packages"]:
    _config_error("corpus.packages", "the Debian packages to use beside corpus.dirs", "none")
if not config["corpus"]["debian"] and not config["corpus"]["dirs"]:
    _config_error("corpus.dirs", "at least one directory when corpus.debian is false", "none")
if config["eval"]["ctx"] > config["model"]["ctx"]:
    _config_error("eval.ctx", f"at most model.ctx ({config['model']['ctx']})", config["eval"]["ctx"])
if config["model"]["dim"] % config["model"]["heads"]:
    _config_error("model.heads", f"a divisor of model.dim ({config['model']['dim']})", config["model"]["heads"])


def config_sha(*keys):
    """sha256 of the canonical JSON of the config sections a step reads (recorded as config_sha256)."""
    part = {k: config[k] for k in keys}
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()


# The same date in every file a rebuild makes: the commit time of the checkout (or 0 outside git).
if "SOURCE_DATE_EPOCH" not in os.environ:
    try:
        _epoch = subprocess.run(["git", "log", "-1", "--format=%ct"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        _epoch = ""
    os.environ["SOURCE_DATE_EPOCH"] = _epoch or "0"


envvars:
    "SOURCE_DATE_EPOCH",

# ---------------------------------------------------------------------------------------------
# the C tools: built by CMake into build/ (a rule, so a fresh clone needs only set-up)

# Each compute job runs config["threads"] OpenMP threads. OpenMP threads spin while they wait, so
# more threads than cores makes every job crawl (measured: 4 two-thread jobs on 2 cores ran at a
# quarter to a half of a core each). Each compute job therefore reserves enough of --cores that no
# more of them run at once than the machine's cores hold: with --cores 8 on 2 cores, one at a time.
MACHINE_CPUS = len(os.sched_getaffinity(0))
JOB_THREADS = max(config["threads"], -(-workflow.cores // max(1, MACHINE_CPUS // config["threads"])))

TOOL_NAMES = ["corpus", "tokenizer", "train", "merge", "eval", "export", "inspect", "generate", "sandbox",
              "profile"]
TOOL = {name: f"build/lab-{name}" for name in TOOL_NAMES}


# ---------------------------------------------------------------------------------------------
# the command lines the rules run, built from the config (functions live here, rules in the stages)


def corpus_flags():
    c = config["corpus"]
    flags = []
    if c["debian"]:
        flags += ["--pinned", c["pinned"], "--cache", c["cache"]]
        if c["packages"]:
            flags += ["--packages", ",".join(c["packages"])]
        if c["max_packages"]:
            flags += ["--max-packages", str(c["max_packages"])]
        if c["max_bytes"] != "0":
            flags += ["--max-bytes", c["max_bytes"]]
        if c["accept_version_change"]:
            flags += ["--accept-version-change"]
    for name, path in sorted(c["dirs"].items()):
        flags += ["--dir", f"{name}={path}"]
    for key, flag in [("val_packages", "--val-packages"), ("test_packages", "--test-packages")]:
        if c[key]:
            flags += [flag, ",".join(c[key])]
    flags += ["--heldout", ",".join(c["heldout"])]
    flags += ["--max-line-length", str(c["max_line_length"]),
              "--max-mean-line-length", str(c["max_mean_line_length"]),
              "--min-alnum-fraction", str(c["min_alnum_fraction"]),
              "--near-threshold", str(c["near_threshold"]),
              "--seed", str(config["seed"])]
    return " ".join(shlex.quote(f) for f in flags)


def model_flags():
    m = config["model"]
    flags = f"--dim {m['dim']} --layers {m['layers']} --heads {m['heads']} --ctx {m['ctx']}"
    if m["kv_heads"]:
        flags += f" --kv-heads {m['kv_heads']}"
    if m["ffn"]:
        flags += f" --ffn {m['ffn']}"
    return flags


def optim_flags(section, lr=None):
    """Optimizer flags from a config section: its name ("pretrain") or the mapping itself."""
    t = config[section] if isinstance(section, str) else section
    return (f"--steps {t['steps']} --batch {t['batch']} --accum {t['accum']}"
            f" --lr {lr if lr is not None else t['lr']} --lr-min {t['lr_min']} --warmup {t['warmup']}"
            f" --weight-decay {t['weight_decay']} --grad-clip {t['grad_clip']}"
            f" --val-every {t['val_every']} --val-batches {t['val_batches']} --log-every {t['log_every']}"
            f" --seed {config['seed']}")


def eval_model_args(wc):
    if wc.model == "pairs":
        return {"model": rules.pretrain.output.model, "adapter": rules.finetune_pairs.output.adapter}
    if wc.model == "lora":
        return {"model": rules.pretrain.output.model, "adapter": rules.finetune_lora.output.adapter}
    if wc.model == "full":
        return {"model": rules.finetune_full.output.model}
    return {"model": rules.pretrain.output.model}


def export_command(name):
    h5, table = TABLES[name]
    return f"{TOOL['export']} {h5} {table} --out {D}/tsv/{name}.tsv"


def figure_command(name):
    tsvs = " ".join(f"{D}/tsv/{t}.tsv" for t in FIGURE_INPUTS[name])
    return f"gnuplot -c figures/{name}.gp figures/{name} {tsvs}"


def figure_provenance():
    """What made each figure, as the report prints it: the rule, the exact commands, the inputs."""
    prov = {}
    for name, tsvs in FIGURE_INPUTS.items():
        prov[name] = {
            "rule": "figure",
            "commands": [export_command(t) for t in tsvs] + [figure_command(name)],
            "inputs": [{"path": f"{D}/tsv/{t}.tsv", "from": TABLES[t][0]} for t in tsvs]
            + [{"path": f"figures/{name}.gp"}, {"path": "figures/style.gp"}],
        }
    return json.dumps(prov, indent=1, sort_keys=True) + "\n"
