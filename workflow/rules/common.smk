# Config validation (before any job runs), the result matrix, and target lists built with expand().
# Every function the rule files use lives here; the rule files hold rules only.
import functools
import re
import sys
from dataclasses import asdict
from pathlib import Path

from snakemake.exceptions import WorkflowError

import edgeasr.config as ecfg
from edgeasr.energy import EnergyError, available_rails, resolve_backend
from edgeasr.noise import expand_conditions
from edgeasr.training_speech import text_path
from edgeasr.precision import Plan, plan as precision_plan, resolve_device

_foreign = ecfg.package_checkout_mismatch(workflow.basedir)
if _foreign:
    raise WorkflowError(_foreign)

try:
    # once, against workflow/schemas/config.schema.yaml: defaults filled from the schema, messages that
    # name the key and the allowed values, then the checks a schema cannot express
    ecfg.validate(config)
except ecfg.ConfigError as e:
    raise WorkflowError(str(e)) from None

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


@functools.cache  # once per (model, engine, precision), not once per job
def cell_plan(model, engine, precision):
    m = config["models"][model]
    if "engines" in m and engine not in m["engines"]:
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


def dataset_root(wildcards):
    return [] if config["dataset"]["extracted_dir"] else rules.extract_dataset.output


def model_cfg(model):
    return config["models"][model]


ENGINE_FORMAT = {"faster-whisper": "ctranslate2", "transformers": "transformers"}


def model_dir(model, engine):
    """The folder an engine loads: the source itself, or its conversion to the engine's format."""
    need = ENGINE_FORMAT[engine]
    if model_cfg(model)["format"] == need:
        return f"resources/models/{model}/source"
    return f"resources/models/{model}/converted-{need}"


# One cell of the result matrix: its files, log and benchmark.
CELL_ID = "{model}/{engine}/{precision}/{condition}"


def cell_file(name):
    return f"results/cells/{CELL_ID}/{name}"


def cell_log(name):
    return f"results/logs/cells/{CELL_ID}/{name}"


def cell_benchmark(name):
    return f"results/benchmarks/cells/{CELL_ID}/{name}"


def _planning_only():
    """True for `snakemake -n` (a plan needs no power sensor: a Jetson study can be planned anywhere)."""
    if workflow.dryrun:
        return True
    flags = [a for a in sys.argv[1:] if a.startswith("-") and not a.startswith("--")]
    return "--dry-run" in sys.argv or "--dryrun" in sys.argv or any("n" in f[1:] for f in flags if len(f) <= 4)


ENERGY = config["energy"]
TEGRASTATS = {"tegrastats_path": ENERGY["tegrastats_path"], "use_sudo": ENERGY["tegrastats_sudo"]}
try:
    ENERGY_BACKEND = resolve_backend(ENERGY["backend"], **TEGRASTATS)
    if ENERGY["rails"] and ENERGY_BACKEND != "none" and RUN_CELLS and workflow.is_main_process and not _planning_only():
        # a misspelt rail is found now, not after every cell has run: read the sensor's rails once, in the
        # main process only (each job re-reads the Snakefile; it need not start the sensor again)
        present = available_rails(ENERGY_BACKEND, **TEGRASTATS)
        missing = [r for rail in ENERGY["rails"] for r in rail.split("+") if r.upper() not in present]
        if missing:
            raise EnergyError(
                f"energy.rails: {missing} not among the rails this machine's {ENERGY_BACKEND} " f"reports: {present}"
            )
except EnergyError as e:
    if not _planning_only():
        msg = str(e) if str(e).startswith("energy.") else f"energy.backend: {e}"
        raise WorkflowError(f"{msg} (set energy.backend: auto or none to run without it)") from None
    ENERGY_BACKEND = ENERGY["backend"]
    print(f"edgeasr: warning (dry run): {e}; a real run here would stop", file=sys.stderr)
print(
    f"edgeasr: device {DEVICE} (inference.device: {config['inference']['device']}), energy backend "
    f"{ENERGY_BACKEND} (energy.backend: {config['energy']['backend']}), {len(RUN_CELLS)} cells to measure, "
    f"{len(UNSUPPORTED_CELLS)} listed as unsupported",
    file=sys.stderr,
)


def cell_params(wc):
    """Everything this cell's measurement depends on, and nothing else (a change reruns only this cell)."""
    m = model_cfg(wc.model)
    inf = config["inference"]
    return {
        "family": m["family"],
        "plan": asdict(cell_plan(wc.model, wc.engine, wc.precision)),
        "settings": {
            "device": DEVICE,
            "threads": inf["threads"],
            "language": m.get("language") or inf["language"],
            "beam_size": m.get("options", {}).get("num_beams", inf["beam_size"]),
            "max_new_tokens": m.get("options", {}).get("max_new_tokens", inf["max_new_tokens"]),
            "family": m["family"],
            "options": m.get("options", {}),
        },
        "batch_size": inf["batch_size"],
        "repeats": inf["repeats"],
        "warmup_utterances": inf["warmup_utterances"],
        "on_failure": inf["on_failure"],
        "quantizer": QUANTIZERS.get(wc.precision),
    }


def cell_inputs(wc):
    inp = {
        "model": model_dir(wc.model, wc.engine),
        "noise": f"resources/audio/{wc.condition}/noise.csv",
        "manifest": "resources/dataset/manifest.csv",
    }
    if wc.precision in QUANTIZERS:
        owner = packed_owner(wc.precision)
        inp["packed"] = f"resources/models/{wc.model}/quantized/{owner}.gq"
        inp["packed_report"] = f"resources/models/{wc.model}/quantized/{owner}.json"
    return inp


def weight_settings(name):
    """A quantizer's settings that shape its packed weights (how a cell decompresses them does not)."""
    return {k: v for k, v in QUANTIZERS[name].items() if k != "decompression"}


@functools.cache
def packed_owner(precision):
    """The quantizer whose checkpoint a cell of ``precision`` loads: the first in the config with the same
    weight settings. Quantizers that differ only in ``decompression`` share one checkpoint (one training)."""
    mine = weight_settings(precision)
    return next(name for name in QUANTIZERS if weight_settings(name) == mine)


def quantize_params(wc):
    return weight_settings(wc.precision)


def training_text(speech):
    return text_path(config["training_speech"][speech]["text"])


def quantize_inputs(wc):
    """The checkpoint, the test manifest (kept out of training) and, for distillation, the speech and targets."""
    inp = {"model": model_dir(wc.model, "transformers"), "manifest": "resources/dataset/manifest.csv"}
    speech = (QUANTIZERS[wc.precision].get("training") or {}).get("speech")
    if QUANTIZERS[wc.precision].get("mode") == "qat" and speech:
        inp["training_manifest"] = f"resources/training/{speech}/manifest.csv"
        inp["teacher_targets"] = f"resources/training/{speech}/teacher-{wc.model}.csv"
    return inp


def cell_files(name):
    return [f"results/cells/{c.model}/{c.engine}/{c.precision}/{c.condition}/{name}" for c, _ in RUN_CELLS]


ALL_TARGETS = [
    "resources/dataset/manifest.csv",
    *expand("resources/audio/{condition}/noise.csv", condition=CONDITIONS),
]
