# The evaluation study: does generated code run and pass tests, and how far is it from what a
# person wrote? The base model and a LoRA adapter trained on docstring -> body pairs mined from the
# train packages ("pairs") are scored on
#   - functional correctness, pass@k in the sandbox, on two task sets in HumanEval's JSONL format:
#     the project's own (data/tasks/lab_tasks.jsonl) and one mined from the held-out packages'
#     doctests (kept only when the canonical body passes and a `pass` body fails);
#   - edit similarity to the original code, for whole-body and next-line completion of held-out
#     functions;
#   - perplexity on the test and held-out packages (the ppl rule, models base and pairs).
CE = config["code_eval"]
CED = f"{D}/code_eval"
TASK_SETS = {"lab": "data/tasks/lab_tasks.jsonl", "mined": f"{CED}/tasks/mined.jsonl"}
EDIT_SETS = ["body", "next_line"]
CE_MODELS = ["base", "pairs"]
MINE_MODES = {"doctest": "mined_candidates", "body": "body", "next-line": "next_line", "pairs": "pairs"}


rule mine_tasks:
    input:
        script="workflows/scripts/mine_tasks.py",
        corpus=rules.corpus.output.corpus,
    output:
        f"{CED}/tasks/{{name}}.jsonl",
    log:
        f"{D}/logs/mine_{{name}}.log",
    wildcard_constraints:
        name="|".join(MINE_MODES.values()),
    params:
        python=sys.executable,
        mode=lambda wc: {v: k for k, v in MINE_MODES.items()}[wc.name],
        max=lambda wc: f"--max {CE['pairs_max'] if wc.name == 'pairs' else CE['edit_tasks']}"
        if wc.name != "mined_candidates" else "",
        max_bytes=CE["max_task_bytes"],
        seed=config["seed"],
    threads: 1
    resources:
        runtime=10,
    shell:
        "{params.python} {input.script} --corpus {input.corpus} --mode {params.mode} {params.max}"
        " --max-bytes {params.max_bytes} --seed {params.seed} --out {output} > {log} 2>&1"


# The mined candidates become a task set only through the harness's self-checks.
rule check_mined_tasks:
    input:
        tool=TOOL["eval"],
        sandbox=TOOL["sandbox"],
        tasks=f"{CED}/tasks/mined_candidates.jsonl",
    output:
        tasks=TASK_SETS["mined"],
        check=f"{CED}/tasks/mined_check.h5",
    log:
        f"{D}/logs/check_mined_tasks.log",
    threads: JOB_THREADS
    params:
        workers=CE["workers"],
        wall=CE["wall_s"],
        sha=config_sha("corpus", "code_eval", "seed"),
    resources:
        runtime=20,
    shell:
        "{input.tool} check-tasks --tasks {input.tasks} --keep {output.tasks} --out {output.check}"
        " --workers {params.workers} --wall {params.wall} --config-sha256 {params.sha} > {log} 2>&1"


# The project's task set must pass every self-check before anything is scored on it.
rule check_lab_tasks:
    input:
        tool=TOOL["eval"],
        tasks=TASK_SETS["lab"],
    output:
        f"{CED}/tasks/lab_check.h5",
    log:
        f"{D}/logs/check_lab_tasks.log",
    threads: JOB_THREADS
    params:
        workers=CE["workers"],
        wall=CE["wall_s"],
        sha=config_sha("code_eval"),
    resources:
        runtime=20,
    shell:
        "{input.tool} check-tasks --tasks {input.tasks} --out {output}"
        " --workers {params.workers} --wall {params.wall} --config-sha256 {params.sha} > {log} 2>&1"


rule encode_pairs:
    input:
        tool=TOOL["tokenizer"],
        tokenizer=rules.tokenizer.output[0],
        pairs=f"{CED}/tasks/pairs.jsonl",
    output:
        f"{CED}/pairs.h5",
    log:
        f"{D}/logs/encode_pairs.log",
    threads: 1
    params:
        val=CE["pairs_val_fraction"],
        max_tokens=config["model"]["ctx"] + 1,
        sha=config_sha("corpus", "tokenizer", "code_eval", "seed"),
    resources:
        runtime=10,
    shell:
        "{input.tool} encode-pairs --tokenizer {input.tokenizer} --pairs {input.pairs} --out {output}"
        " --val-fraction {params.val} --max-tokens {params.max_tokens} --config-sha256 {params.sha} > {log} 2>&1"


rule finetune_pairs:
    input:
        tool=TOOL["train"],
        pairs=rules.encode_pairs.output[0],
        base=rules.pretrain.output.model,
    output:
        adapter=f"{CED}/pairs_adapter.h5",
        log=f"{CED}/pairs_log.h5",
    log:
        f"{D}/logs/finetune_pairs.log",
    benchmark:
        f"{D}/benchmarks/finetune_pairs.tsv"
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        optim=optim_flags(CE["finetune"], lr=CE["finetune"]["lora_lr"]),
        lora=(f"--lora-targets {CE['finetune']['lora_targets']} --lora-rank {CE['finetune']['lora_rank']}"
              f" --lora-alpha {CE['finetune']['lora_alpha']} --lora-dropout {CE['finetune']['lora_dropout']}"),
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "code_eval", "seed"),
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{input.tool} --mode lora --base {input.base} --tokens {input.pairs} --train-split train"
        " --val-split val {params.lora} {params.optim} --out {output.adapter} --log {output.log}"
        " --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"


def generate_inputs(wc):
    args = eval_model_args(wc)
    args["tool"] = TOOL["generate"]
    args["tokenizer"] = rules.tokenizer.output[0]
    if wc.set in TASK_SETS:
        args["tasks"] = TASK_SETS[wc.set]
        if wc.set == "lab":
            args["gate"] = rules.check_lab_tasks.output[0]
    else:
        args["tasks"] = f"{CED}/tasks/{wc.set}.jsonl"
    return args


def generate_flags(wc):
    """Sampling for pass@k; greedy for edit distance (one completion, the model's best guess)."""
    if wc.set in TASK_SETS:
        return (f"--n-samples {CE['n_samples']} --temperature {CE['temperature']} --top-p {CE['top_p']}"
                f" --max-new-tokens {CE['max_new_tokens']}")
    if wc.set == "next_line":
        return "--temperature 0 --stop '\\n' --max-new-tokens 64"
    return f"--temperature 0 --max-new-tokens {CE['max_new_tokens']}"


rule generate:
    input:
        unpack(generate_inputs),
    output:
        f"{CED}/gen/{{model}}_{{set}}.h5",
    log:
        f"{D}/logs/generate_{{model}}_{{set}}.log",
    benchmark:
        f"{D}/benchmarks/generate_{{model}}_{{set}}.tsv"
    wildcard_constraints:
        model="|".join(CE_MODELS),
        set="|".join(list(TASK_SETS) + EDIT_SETS),
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        adapter=lambda wc, input: f"--adapter {input.adapter}" if wc.model == "pairs" else "",
        flags=generate_flags,
        batch=CE["batch"],
        seed=config["seed"],
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "code_eval", "seed"),
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{input.tool} --model {input.model} {params.adapter} --tokenizer {input.tokenizer}"
        " --prompts-jsonl {input.tasks} {params.flags} --batch {params.batch} --seed {params.seed}"
        " --out {output} --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"


rule func:
    input:
        tool=TOOL["eval"],
        tasks=lambda wc: TASK_SETS[wc.set],
        gen=f"{CED}/gen/{{model}}_{{set}}.h5",
    output:
        f"{CED}/func/{{model}}_{{set}}.h5",
    log:
        f"{D}/logs/func_{{model}}_{{set}}.log",
    benchmark:
        f"{D}/benchmarks/func_{{model}}_{{set}}.tsv"
    wildcard_constraints:
        model="|".join(CE_MODELS),
        set="|".join(TASK_SETS),
    threads: JOB_THREADS
    params:
        workers=CE["workers"],
        wall=CE["wall_s"],
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "code_eval", "seed"),
    resources:
        runtime=30,
    shell:
        "{input.tool} func --tasks {input.tasks} --generations {input.gen} --out {output}"
        " --workers {params.workers} --wall {params.wall} --config-sha256 {params.sha} > {log} 2>&1"


rule edit:
    input:
        tool=TOOL["eval"],
        tasks=f"{CED}/tasks/{{set}}.jsonl",
        gen=f"{CED}/gen/{{model}}_{{set}}.h5",
        tokenizer=rules.tokenizer.output[0],
    output:
        f"{CED}/edit/{{model}}_{{set}}.h5",
    log:
        f"{D}/logs/edit_{{model}}_{{set}}.log",
    wildcard_constraints:
        model="|".join(CE_MODELS),
        set="|".join(EDIT_SETS),
    threads: 1
    params:
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "code_eval", "seed"),
    resources:
        runtime=10,
    shell:
        "{input.tool} edit --tasks {input.tasks} --generations {input.gen} --tokenizer {input.tokenizer}"
        " --out {output} --config-sha256 {params.sha} > {log} 2>&1"
