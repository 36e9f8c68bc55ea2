# Inference: one job per (model, engine, precision, condition) cell, pinned to the accelerator.
from dataclasses import asdict

from edgeasr.energy import EnergyError, available_rails, resolve_backend


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
    if ENERGY["rails"] and ENERGY_BACKEND != "none" and RUN_CELLS and not _planning_only():
        # a misspelt rail is found now, not after every cell has run: read the sensor's rails once
        present = available_rails(ENERGY_BACKEND, **TEGRASTATS)
        missing = [r for rail in ENERGY["rails"] for r in rail.split("+") if r.upper() not in present]
        if missing:
            raise EnergyError(f"energy.rails: {missing} not among the rails this machine's {ENERGY_BACKEND} "
                              f"reports: {present}")
except EnergyError as e:
    if not _planning_only():
        msg = str(e) if str(e).startswith("energy.") else f"energy.backend: {e}"
        raise WorkflowError(f"{msg} (set energy.backend: auto or none to run without it)") from None
    ENERGY_BACKEND = ENERGY["backend"]
    print(f"edgeasr: warning (dry run): {e}; a real run here would stop", file=sys.stderr)
print(f"edgeasr: device {DEVICE} (inference.device: {config['inference']['device']}), energy backend "
      f"{ENERGY_BACKEND} (energy.backend: {config['energy']['backend']}), {len(RUN_CELLS)} cells to measure, "
      f"{len(UNSUPPORTED_CELLS)} listed as unsupported", file=sys.stderr)
CELL = "results/cells/{model}/{engine}/{precision}/{condition}"


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
        inp["packed"] = f"resources/models/{wc.model}/quantized/{wc.precision}.gq"
        inp["packed_report"] = f"resources/models/{wc.model}/quantized/{wc.precision}.json"
    return inp


rule infer:
    input:
        unpack(cell_inputs),
    output:
        transcripts=CELL + "/transcripts.csv",
        cell=CELL + "/cell.json",
        power_log=CELL + "/power.log",
        markers=CELL + "/power_markers.jsonl",
    params:
        cell=cell_params,
        energy={
            "backend": ENERGY_BACKEND,
            "interval_ms": config["energy"]["interval_ms"],
            "idle_s": config["energy"]["idle_s"],
            "sudo": config["energy"]["tegrastats_sudo"],
            "tegrastats_path": config["energy"]["tegrastats_path"],
        },
    threads: config["inference"]["threads"]
    resources:
        accelerator=1,
    log:
        "results/logs/" + CELL + "/infer.log",
    benchmark:
        "results/benchmarks/" + CELL + "/infer.tsv"
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/infer.py"
