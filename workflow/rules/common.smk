# Config validation (before any job runs), the result matrix, and target lists built with expand().
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))  # the edgeasr package, also without pip install
import edgeasr.config as ecfg  # noqa: E402
from edgeasr.noise import expand_conditions  # noqa: E402
from edgeasr.precision import plan as precision_plan, resolve_device  # noqa: E402

SCHEMA = str(Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
try:
    ecfg.validate(config)  # messages name the key and the allowed values
except ecfg.ConfigError as e:
    raise WorkflowError(str(e)) from None
validate(config, SCHEMA)  # snakemake's own validation: the same schema, fills defaults

# Measurement jobs take the one accelerator token: they never overlap, even under --cores N.
if "accelerator" not in workflow.global_resources:
    workflow.register_resource("accelerator", 1)

CONDITIONS = {c.name: c for c in ecfg.conditions(config)}
# every defined condition can be built (a target outside matrix.conditions too); the matrix runs CONDITIONS
ALL_CONDITIONS = {c.name: c for c in expand_conditions(config["noise"]["conditions"])}
DEVICE = resolve_device(config["inference"]["device"])
QUANTIZERS = config.get("quantizers") or {}

wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    engine=r"faster-whisper|transformers",
    precision=r"[A-Za-z0-9_.+-]+",
    condition=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",


def cell_plan(model, engine, precision):
    m = config["models"][model]
    if "engines" in m and engine not in m["engines"]:
        from edgeasr.precision import Plan

        return Plan(False, f"engine {engine} is not enabled for this model (models.{model}.engines: {m['engines']})")
    return precision_plan(engine, precision, DEVICE, family=m["family"], quantizers=QUANTIZERS)


def matrix_cells():
    """(cells to run, cells not scheduled with their reason)."""
    run, unsupported = [], []
    for c in ecfg.matrix_cells(config):
        p = cell_plan(c.model, c.engine, c.precision)
        (run if p.supported else unsupported).append((c, p))
    return run, unsupported


RUN_CELLS, UNSUPPORTED_CELLS = matrix_cells()


def noise_params(condition):
    return ALL_CONDITIONS[condition].as_params()


ALL_TARGETS = [
    "resources/dataset/manifest.csv",
    *expand("resources/audio/{condition}/noise.csv", condition=CONDITIONS),
]
