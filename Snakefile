# codelm-lab: one command regenerates every figure and report of a run from scratch.
#   snakemake --cores 8                                   the default config (configs/default.yaml)
#   snakemake --cores 8 --configfile configs/tiny.yaml    another config (outputs under data/<run>/)
#   snakemake --cores 8 figures/pretrain_loss.pdf         one figure and only its ancestors
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "configs/default.yaml"


validate(config, "configs/schema.yaml")


include: "workflows/common.smk"
include: "workflows/data.smk"
include: "workflows/train.smk"
include: "workflows/eval.smk"
include: "workflows/code_eval.smk"
include: "workflows/profile.smk"
include: "workflows/figures.smk"
include: "workflows/papers.smk"


rule all:
    default_target: True
    input:
        expand("figures/{name}.{ext}", name=FIGURES, ext=["pdf", "png"]),
        REPORTS,
