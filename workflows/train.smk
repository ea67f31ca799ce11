# Training: pretrain a base model on the train packages, then fine-tune it on the val packages with
# LoRA (base frozen) and with all weights (the study's two arms). The fine-tuning curves are
# monitored on the test packages; nothing is chosen from them (no early stopping, fixed steps).


rule pretrain:
    input:
        tool=TOOL["train"],
        tokens=rules.tokens.output[0],
    output:
        model=f"{D}/base.h5",
        log=f"{D}/pretrain_log.h5",
    log:
        f"{D}/logs/pretrain.log",
    benchmark:
        f"{D}/benchmarks/pretrain.tsv"
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        model=model_flags(),
        optim=optim_flags("pretrain"),
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "seed"),
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{input.tool} --mode pretrain --tokens {input.tokens} --train-split train --val-split val"
        " {params.model} {params.optim} --out {output.model} --log {output.log}"
        " --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"


rule finetune_lora:
    input:
        tool=TOOL["train"],
        tokens=rules.tokens.output[0],
        base=rules.pretrain.output.model,
    output:
        adapter=f"{D}/lora_adapter.h5",
        log=f"{D}/lora_log.h5",
    log:
        f"{D}/logs/finetune_lora.log",
    benchmark:
        f"{D}/benchmarks/finetune_lora.tsv"
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        optim=lambda wc: optim_flags("finetune", lr=config["finetune"]["lora_lr"]),
        lora=(f"--lora-targets {config['finetune']['lora_targets']} --lora-rank {config['finetune']['lora_rank']}"
              f" --lora-alpha {config['finetune']['lora_alpha']} --lora-dropout {config['finetune']['lora_dropout']}"),
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "finetune", "seed"),
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{input.tool} --mode lora --base {input.base} --tokens {input.tokens} --train-split val"
        " --val-split test {params.lora} {params.optim} --out {output.adapter} --log {output.log}"
        " --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"


rule finetune_full:
    input:
        tool=TOOL["train"],
        tokens=rules.tokens.output[0],
        base=rules.pretrain.output.model,
    output:
        model=f"{D}/full_model.h5",
        log=f"{D}/full_log.h5",
    log:
        f"{D}/logs/finetune_full.log",
    benchmark:
        f"{D}/benchmarks/finetune_full.tsv"
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        optim=optim_flags("finetune"),
        sha=config_sha("corpus", "tokenizer", "model", "pretrain", "finetune", "seed"),
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{input.tool} --mode full --base {input.base} --tokens {input.tokens} --train-split val"
        " --val-split test {params.optim} --out {output.model} --log {output.log}"
        " --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"
