# Reports: papers/<study>/report.md rendered from papers/<study>/template.md and the run's HDF5
# files by workflows/scripts/render_report.py; every number comes from the data, and every figure
# carries a provenance block (rule, commands, git commit, sha256 of its inputs).
LORA_VS_FULL_H5 = {
    "corpus": rules.corpus.output.corpus,
    "tokens": rules.tokens.output[0],
    "base": rules.pretrain.output.model,
    "lora": rules.finetune_lora.output.adapter,
    "full": rules.finetune_full.output.model,
    "pretrain_log": rules.pretrain.output.log,
    "lora_log": rules.finetune_lora.output.log,
    "full_log": rules.finetune_full.output.log,
}
for _m in MODELS:
    for _s in SPLITS:
        LORA_VS_FULL_H5[f"ppl_{_m}_{_s}"] = f"{D}/ppl/{_m}_{_s}.h5"

CODE_EVAL_H5 = {
    "corpus": rules.corpus.output.corpus,
    "base": rules.pretrain.output.model,
    "pairs": rules.encode_pairs.output[0],
    "adapter": rules.finetune_pairs.output.adapter,
    "pairs_log": rules.finetune_pairs.output.log,
    "lab_check": rules.check_lab_tasks.output[0],
    "mined_check": rules.check_mined_tasks.output.check,
}
for _m in CE_MODELS:
    for _s in ["test", "heldout"]:
        CODE_EVAL_H5[f"ppl_{_m}_{_s}"] = f"{D}/ppl/{_m}_{_s}.h5"
    for _s in TASK_SETS:
        CODE_EVAL_H5[f"func_{_m}_{_s}"] = f"{CED}/func/{_m}_{_s}.h5"
        CODE_EVAL_H5[f"gen_{_m}_{_s}"] = f"{CED}/gen/{_m}_{_s}.h5"
    for _s in EDIT_SETS:
        CODE_EVAL_H5[f"edit_{_m}_{_s}"] = f"{CED}/edit/{_m}_{_s}.h5"

INFERENCE_PROFILE_H5 = {
    "base": rules.pretrain.output.model,
    "serve": rules.profile_serve.output[0],
    "ppl_base_test": f"{D}/ppl/base_test.h5",
}
for _b in BENCHES:
    INFERENCE_PROFILE_H5[_b] = f"{PRD}/{_b}.h5"
for _f in FORMATS:
    INFERENCE_PROFILE_H5[f"ppl_{_f}"] = f"{D}/ppl/base_test_{_f}.h5"

# study -> the HDF5 files its template reads and the figures it shows
STUDIES = {
    "lora_vs_full": (LORA_VS_FULL_H5, ["pretrain_loss", "finetune_loss", "ppl_by_package",
                                       "corpus_filters", "corpus_packages"]),
    "code_eval": (CODE_EVAL_H5, ["pass_at_k", "pass_by_difficulty", "edit_similarity"]),
    "inference_profile": (INFERENCE_PROFILE_H5, ["batch_scaling", "kv_cache", "quant_frontier", "memory_formula",
                                                 "width_scaling", "serving_latency"]),
}
REPORTS = [f"papers/{study}/report.md" for study in STUDIES]


rule figure_provenance:
    output:
        f"{D}/figure_provenance.json",
    log:
        f"{D}/logs/figure_provenance.log",
    params:
        text=figure_provenance(),
    threads: 1
    script:
        "scripts/write_text.py"


rule report:
    input:
        script="workflows/scripts/render_report.py",
        template="papers/{study}/template.md",
        provenance=rules.figure_provenance.output[0],
        h5=lambda wc: list(STUDIES[wc.study][0].values()),
        figures=lambda wc: expand("figures/{name}.{ext}", name=STUDIES[wc.study][1], ext=["png", "pdf"]),
    output:
        "papers/{study}/report.md",
    log:
        f"{D}/logs/report_{{study}}.log",
    wildcard_constraints:
        study="|".join(STUDIES),
    params:
        h5=lambda wc: " ".join(f"--h5 {k}={v}" for k, v in STUDIES[wc.study][0].items()),
        figures=lambda wc: " ".join(f"--figure {n}=figures/{n}" for n in STUDIES[wc.study][1]),
        python=sys.executable,
        run=RUN,
    threads: 1
    shell:
        "{params.python} {input.script} --template {input.template} --out {output}"
        " {params.h5} {params.figures} --provenance {input.provenance} > {log} 2>&1"
