"""Snakemake script: writes params.text to the rule's one output atomically (tmp, then rename)."""
import os

out = snakemake.output[0]  # noqa: F821 (set by Snakemake)
tmp = f"{out}.tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write(snakemake.params.text)  # noqa: F821
os.replace(tmp, out)
with open(snakemake.log[0], "w", encoding="utf-8") as f:  # noqa: F821
    f.write(f"wrote {out}\n")
