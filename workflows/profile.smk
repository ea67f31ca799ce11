# The inference-profiling study: how fast the base model decodes and prefills, and at what memory
# and quality cost, measured by lab-profile (schemas codelm-lab/profile/1 and serve/1):
#   bench sweeps  batch    decode/prefill throughput and latency vs batch size
#                 kv       no KV cache vs a contiguous vs a paged one, vs context length
#                 formats  the five weight formats at batch 1 (also the physical-limits benchmark:
#                          decode against the bandwidth bound, prefill against the sgemm rate)
#                 width    random models of other widths at the base's depth
#   serve         static vs continuous batching, contiguous vs paged KV, under two arrival rates
#   ppl_format    the base's test perplexity with every weight matrix in each format
# Timings are wall-clock: unlike the rest of the pipeline these files differ from run to run.
PR = config["profile"]
PRD = f"{D}/profile"
FORMATS = ["f32", "bf16", "f16", "q8_0", "q4_0"]
KV_MODES = ["none", "contiguous", "paged"]
BENCHES = ["batch", "kv", "formats", "width"]


# the figures read each sweep in order (and the batch sweep's gain per doubling)
for _key, _values, _doubling in [("profile.batch.batch", PR["batch"]["batch"], True),
                                 ("profile.kv.prompt", PR["kv"]["prompt"], False),
                                 ("profile.width.dim", PR["width"]["dim"], False),
                                 ("profile.serve.rates", PR["serve"]["rates"], False)]:
    for _a, _b in zip(_values, _values[1:]):
        if _b <= _a or (_doubling and _b != 2 * _a):
            _config_error(_key, "values each twice the one before" if _doubling else "ascending values", _values)
for _key, _tokens in [("profile.batch", PR["batch"]["prompt"] + PR["batch"]["gen"]),
                      ("profile.kv", max(PR["kv"]["prompt"]) + PR["kv"]["gen"]),
                      ("profile.formats", PR["formats"]["prompt"] + PR["formats"]["gen"]),
                      ("profile.width", PR["width"]["prompt"] + PR["width"]["gen"]),
                      ("profile.serve", PR["serve"]["prompt_max"] + PR["serve"]["output_max"])]:
    if _tokens > config["model"]["ctx"]:
        _config_error(_key, f"prompt + gen at most model.ctx ({config['model']['ctx']})", _tokens)
for _lo, _hi in [("prompt_min", "prompt_max"), ("output_min", "output_max")]:
    if PR["serve"][_lo] > PR["serve"][_hi]:
        _config_error(f"profile.serve.{_hi}", f"at least {_lo} ({PR['serve'][_lo]})", PR["serve"][_hi])

# each sweep: what it varies, and the fixed rest spelled out
BENCH_FLAGS = {
    "batch": (f"--formats f32 --kv contiguous --batch {','.join(map(str, PR['batch']['batch']))}"
              f" --prompt {PR['batch']['prompt']} --gen {PR['batch']['gen']}"),
    "kv": (f"--formats f32 --kv {','.join(KV_MODES)} --batch 1"
           f" --prompt {','.join(map(str, PR['kv']['prompt']))} --gen {PR['kv']['gen']}"),
    "formats": (f"--formats {','.join(FORMATS)} --kv contiguous --batch 1"
                f" --prompt {PR['formats']['prompt']} --gen {PR['formats']['gen']}"),
    "width": (f"--formats f32 --kv contiguous --batch 1 --prompt {PR['width']['prompt']} --gen {PR['width']['gen']}"
              f" --dim {','.join(map(str, PR['width']['dim']))} --layers {config['model']['layers']}"),
}


# The benchmarks time the machine itself, so each takes every core Snakemake was given: no other
# job of the pipeline runs beside it.
rule profile_bench:
    input:
        tool=TOOL["profile"],
        model=rules.pretrain.output.model,
    output:
        f"{PRD}/{{bench}}.h5",
    log:
        f"{D}/logs/profile_{{bench}}.log",
    benchmark:
        f"{D}/benchmarks/profile_{{bench}}.tsv"
    wildcard_constraints:
        bench="|".join(BENCHES),
    threads: workflow.cores
    params:
        sweep=lambda wc: BENCH_FLAGS[wc.bench],
        threads=config["threads"],
        reps=PR["reps"],
        warmup=PR["warmup"],
        seed=config["seed"],
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "profile", "threads", "seed"),
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "{input.tool} bench --model {input.model} --out {output} {params.sweep} --threads {params.threads}"
        " --reps {params.reps} --warmup {params.warmup} --seed {params.seed}"
        " --config-sha256 {params.sha} > {log} 2>&1"


rule profile_serve:
    input:
        tool=TOOL["profile"],
        model=rules.pretrain.output.model,
    output:
        f"{PRD}/serve.h5",
    log:
        f"{D}/logs/profile_serve.log",
    benchmark:
        f"{D}/benchmarks/profile_serve.tsv"
    threads: workflow.cores
    params:
        rates=",".join(map(str, PR["serve"]["rates"])),
        requests=PR["serve"]["requests"],
        batch=PR["serve"]["batch"],
        lengths=(f"--prompt-min {PR['serve']['prompt_min']} --prompt-max {PR['serve']['prompt_max']}"
                 f" --output-min {PR['serve']['output_min']} --output-max {PR['serve']['output_max']}"),
        threads=config["threads"],
        seed=config["seed"],
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "profile", "threads", "seed"),
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "{input.tool} serve --model {input.model} --out {output} --format f32 --kv contiguous,paged"
        " --scheduler static,continuous --rate {params.rates} --requests {params.requests}"
        " --batch {params.batch} {params.lengths} --threads {params.threads} --seed {params.seed}"
        " --config-sha256 {params.sha} > {log} 2>&1"


# The quality side of the formats: the ppl rule's flags, with the weights quantized and
# dequantized as the kernels see them. f32 is the identity, so its file must equal ppl's base_test.
rule ppl_format:
    input:
        tool=TOOL["eval"],
        model=rules.pretrain.output.model,
        tokens=rules.tokens.output[0],
    output:
        f"{D}/ppl/base_test_{{format}}.h5",
    log:
        f"{D}/logs/ppl_base_test_{{format}}.log",
    benchmark:
        f"{D}/benchmarks/ppl_base_test_{{format}}.tsv"
    wildcard_constraints:
        format="|".join(FORMATS),
    threads: JOB_THREADS
    params:
        format="{format}",
        threads=config["threads"],
        ctx=config["eval"]["ctx"],
        batch=config["eval"]["batch"],
        score=config["eval"]["score"],
        max_tokens=config["eval"]["max_tokens"],
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "eval", "seed"),
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "{input.tool} ppl --model {input.model} --format {params.format} --tokens {input.tokens}"
        " --split test --ctx {params.ctx} --batch {params.batch} --score {params.score}"
        " --max-tokens {params.max_tokens}"
        " --out {output} --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"
