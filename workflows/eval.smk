# Evaluation: perplexity and bits per byte of base, LoRA and fully fine-tuned models, per package,
# on the test packages (never trained on) and the val packages (the fine-tuning domain); and of the
# base and its docstring -> body adapter ("pairs", code_eval.smk) on the test and held-out packages.

MODELS = ["base", "lora", "full"]
SPLITS = ["test", "val"]
PPL_MODELS = MODELS + ["pairs"]
PPL_SPLITS = SPLITS + ["heldout"]


rule ppl:
    input:
        unpack(eval_model_args),
        tool=TOOL["eval"],
        tokens=rules.tokens.output[0],
    output:
        f"{D}/ppl/{{model}}_{{split}}.h5",
    log:
        f"{D}/logs/ppl_{{model}}_{{split}}.log",
    benchmark:
        f"{D}/benchmarks/ppl_{{model}}_{{split}}.tsv"
    wildcard_constraints:
        model="|".join(PPL_MODELS),
        split="|".join(PPL_SPLITS),
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        split="{split}",
        adapter=lambda wc, input: f"--adapter {input.adapter}" if wc.model in ("lora", "pairs") else "",
        ctx=config["eval"]["ctx"],
        batch=config["eval"]["batch"],
        score=config["eval"]["score"],
        max_tokens=config["eval"]["max_tokens"],
        # the pairs adapter's settings live under code_eval
        sha=lambda wc: config_sha("corpus", "tokenizer", "model", "pretrain",
                                  "code_eval" if wc.model == "pairs" else "finetune", "eval", "seed"),
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "{input.tool} ppl --model {input.model} {params.adapter} --tokens {input.tokens}"
        " --split {params.split} --ctx {params.ctx} --batch {params.batch} --score {params.score}"
        " --max-tokens {params.max_tokens}"
        " --out {output} --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"
