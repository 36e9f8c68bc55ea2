"""The `script:` of the figure rules (workflow/rules/figures.smk): one figure, table or results/README.md."""

from edgeasr.figures.job import run_job

run_job(snakemake)
