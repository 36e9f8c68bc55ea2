# Inference: one job per (model, engine, precision, condition) cell, pinned to the accelerator.
from dataclasses import asdict

from edgeasr.energy import resolve_backend

ENERGY_BACKEND = resolve_backend(config["energy"]["backend"])
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
