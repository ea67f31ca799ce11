# Reports: papers/<study>/report.md rendered from papers/<study>/template.md and the run's HDF5
# files by workflows/scripts/render_report.py; every number comes from the data, and every figure
# carries a provenance block (rule, commands, git commit, sha256 of its inputs).
REPORT_H5 = {
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
        REPORT_H5[f"ppl_{_m}_{_s}"] = f"{D}/ppl/{_m}_{_s}.h5"

REPORTS = ["papers/lora_vs_full/report.md"]


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
        h5=list(REPORT_H5.values()),
        figures=expand("figures/{name}.{ext}", name=FIGURES, ext=["png", "pdf"]),
    output:
        "papers/{study}/report.md",
    log:
        f"{D}/logs/report_{{study}}.log",
    wildcard_constraints:
        study="lora_vs_full",
    params:
        h5=" ".join(f"--h5 {k}={v}" for k, v in REPORT_H5.items()),
        figures=" ".join(f"--figure {n}=figures/{n}" for n in FIGURES),
        python=sys.executable,
        run=RUN,
    threads: 1
    shell:
        "{params.python} {input.script} --template {input.template} --out {output}"
        " {params.h5} {params.figures} --provenance {input.provenance} > {log} 2>&1"
