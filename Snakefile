# edgeasr: which ASR model, at which precision, gives the accuracy you need under noise, at what speed,
# memory and energy. Reproduces and extends arXiv 2405.01004. See README.md.
import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")  # also under --directory


include: "workflow/rules/common.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/noise.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        ALL_TARGETS,
        FIGURE_TARGETS,
    default_target: True
