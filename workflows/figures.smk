# Figures: HDF5 tables -> TSV (lab-export) -> gnuplot -c figures/<name>.gp -> figures/<name>.pdf|png
# Each figure's inputs are declared exactly, so `snakemake figures/<name>.pdf` builds only its
# ancestors.

# TSV name -> (HDF5 file, table in it)
TABLES = {
    "pretrain_log": (rules.pretrain.output.log, "train_log"),
    "lora_log": (rules.finetune_lora.output.log, "train_log"),
    "full_log": (rules.finetune_full.output.log, "train_log"),
    "corpus_filters": (rules.corpus.output.corpus, "filters"),
    "corpus_packages": (rules.corpus.output.corpus, "packages"),
}
for _m in MODELS:
    for _s in SPLITS:
        TABLES[f"ppl_{_m}_{_s}"] = (f"{D}/ppl/{_m}_{_s}.h5", "by_package")
for _m in CE_MODELS:
    for _s in TASK_SETS:
        TABLES[f"func_{_m}_{_s}"] = (f"{CED}/func/{_m}_{_s}.h5", "tasks")
    for _s in EDIT_SETS:
        TABLES[f"edit_{_m}_{_s}"] = (f"{CED}/edit/{_m}_{_s}.h5", "samples")
for _b in BENCHES:
    TABLES[f"profile_{_b}"] = (f"{PRD}/{_b}.h5", "configs")
TABLES["profile_serve"] = (rules.profile_serve.output[0], "runs")
for _f in FORMATS:
    TABLES[f"ppl_base_test_{_f}"] = (f"{D}/ppl/base_test_{_f}.h5", "by_package")

# figure -> the TSVs its script takes, in the order of its arguments
FIGURE_INPUTS = {
    "pretrain_loss": ["pretrain_log"],
    "finetune_loss": ["lora_log", "full_log"],
    "ppl_by_package": ["ppl_base_test", "ppl_lora_test", "ppl_full_test",
                       "ppl_base_val", "ppl_lora_val", "ppl_full_val"],
    "corpus_filters": ["corpus_filters"],
    "corpus_packages": ["corpus_packages"],
    "pass_at_k": ["func_base_lab", "func_pairs_lab", "func_base_mined", "func_pairs_mined"],
    "pass_by_difficulty": ["func_base_lab", "func_pairs_lab"],
    "edit_similarity": ["edit_base_body", "edit_pairs_body", "edit_base_next_line", "edit_pairs_next_line"],
    "batch_scaling": ["profile_batch"],
    "kv_cache": ["profile_kv"],
    "quant_frontier": ["profile_formats"] + [f"ppl_base_test_{f}" for f in FORMATS],
    "memory_formula": [f"profile_{b}" for b in BENCHES],
    "width_scaling": ["profile_width"],
    "serving_latency": ["profile_serve"],
}
FIGURES = list(FIGURE_INPUTS)


rule export_table:
    input:
        tool=TOOL["export"],
        h5=lambda wc: TABLES[wc.name][0],
    output:
        f"{D}/tsv/{{name}}.tsv",
    log:
        f"{D}/logs/export_{{name}}.log",
    wildcard_constraints:
        name="|".join(TABLES),
    params:
        command=lambda wc: export_command(wc.name),
    threads: 1
    shell:
        "{params.command} > {log} 2>&1"


rule figure:
    input:
        script="figures/{name}.gp",
        style="figures/style.gp",
        tsv=lambda wc: [f"{D}/tsv/{t}.tsv" for t in FIGURE_INPUTS[wc.name]],
    output:
        pdf="figures/{name}.pdf",
        png="figures/{name}.png",
    log:
        f"{D}/logs/figure_{{name}}.log",
    wildcard_constraints:
        name="|".join(FIGURE_INPUTS),
    params:
        command=lambda wc: figure_command(wc.name),
    threads: 1
    shell:
        "{params.command} > {log} 2>&1"
