# edgeasr: which ASR model, at which precision, gives the accuracy you need under noise, at what speed,
# memory and energy. Reproduces and extends arXiv 2405.01004. See README.md.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from edgeasr.config import ConfigError, load_config_file

min_version("9.0")


DEFAULT_CONFIG = os.path.join(workflow.basedir, "config", "config.yaml")  # found also under --directory
try:  # an empty file or a YAML error in the default config: the message names the file and the line
    load_config_file(DEFAULT_CONFIG)
except ConfigError as e:
    raise WorkflowError(str(e)) from None


configfile: DEFAULT_CONFIG


include: "workflow/rules/common.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/noise.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,
        FIGURE_TARGETS,
