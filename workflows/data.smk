# Data: the C tools; Debian packages (or local dirs) -> corpus.h5 -> tokenizer.h5 -> tokens.h5


rule build_tools:
    input:
        cmake="csrc/CMakeLists.txt",
        sources=sorted(glob.glob("csrc/src/*.[ch]") + glob.glob("csrc/tools/*.c")),
    output:
        list(TOOL.values()),
    log:
        "build/build_tools.log",
    threads: workflow.cores
    params:
        build_dir=lambda wc, output: os.path.dirname(output[0]),
    resources:
        runtime=10,
    shell:
        "(cmake -S csrc -B {params.build_dir} -DCMAKE_BUILD_TYPE=Release"
        " && cmake --build {params.build_dir} -j{threads}"
        " && touch {output}) > {log} 2>&1"


rule corpus:
    input:
        tool=TOOL["corpus"],
        pinned=config["corpus"]["pinned"] if config["corpus"]["debian"] else [],
    output:
        corpus=f"{D}/corpus.h5",
        manifest=f"{D}/corpus_manifest.tsv",
        removed=f"{D}/corpus_removed.tsv",
    log:
        f"{D}/logs/corpus.log",
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        flags=corpus_flags(),
        sha=config_sha("corpus", "seed"),
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{input.tool} {params.flags} --out {output.corpus} --manifest {output.manifest}"
        " --removed {output.removed} --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"


rule tokenizer:
    input:
        tool=TOOL["tokenizer"],
        corpus=rules.corpus.output.corpus,
    output:
        f"{D}/tokenizer.h5",
    log:
        f"{D}/logs/tokenizer.log",
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        vocab=config["tokenizer"]["vocab_size"],
        max_bytes=config["tokenizer"]["max_train_bytes"],
        sha=config_sha("corpus", "tokenizer", "seed"),
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "{input.tool} train --corpus {input.corpus} --vocab-size {params.vocab}"
        " --max-bytes {params.max_bytes} --out {output} --threads {params.threads}"
        " --config-sha256 {params.sha} > {log} 2>&1"


rule tokens:
    input:
        tool=TOOL["tokenizer"],
        corpus=rules.corpus.output.corpus,
        tokenizer=rules.tokenizer.output[0],
    output:
        f"{D}/tokens.h5",
    log:
        f"{D}/logs/tokens.log",
    threads: JOB_THREADS
    params:
        threads=config["threads"],
        sha=config_sha("corpus", "tokenizer", "seed"),
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "{input.tool} encode --corpus {input.corpus} --tokenizer {input.tokenizer}"
        " --out {output} --threads {params.threads} --config-sha256 {params.sha} > {log} 2>&1"
