"""The inference job behind the ``infer`` rule: one cell, its power window, its outputs."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from .atomic import exclusive, write_csv, write_json, write_text
from .cell import CellSpec, failed_row, load_inputs, run_cell
from .config import stable_hash
from .engines.base import EngineSettings
from .models import dir_bytes, model_failure, row_provenance
from .precision import Plan
from .provenance import provenance

log = logging.getLogger(__name__)


class CellFailed(RuntimeError):
    pass


def run_infer_job(wildcards: dict, inputs: dict, outputs: dict, cell: dict, energy: dict, threads: int) -> dict:
    """One attempt at one cell. It holds the cell's lock (a second attempt, e.g. a rerun while a job
    orphaned by a killed Snakemake still runs, stops at once naming the holder) and writes its power
    log and markers under names of its own, moved into place at the end."""
    cell_dir = Path(outputs["cell"]).parent
    with exclusive(cell_dir / ".infer.lock", f"cell {cell_dir}"):
        own = {
            k: Path(outputs[k]).with_name(f".{Path(outputs[k]).name}.attempt-{os.getpid()}")
            for k in ("power_log", "markers")
        }
        try:
            row = _run(wildcards, inputs, {**outputs, **{k: str(v) for k, v in own.items()}}, cell, energy, threads)
            for k, tmp in own.items():
                os.replace(tmp, outputs[k])
            return row
        finally:
            for tmp in own.values():
                tmp.unlink(missing_ok=True)


def _run(wildcards: dict, inputs: dict, outputs: dict, cell: dict, energy: dict, threads: int) -> dict:
    from .energy import make_meter

    plan = Plan(**cell["plan"])
    s = dict(cell["settings"])
    # The engine uses inference.threads. Snakemake reserves that many cores for the job, but caps a
    # job's threads at --cores: under `--cores 1` nothing else runs beside the job (one job at a time),
    # so the configured count is still right for the machine; the table records both numbers.
    configured = int(s.get("threads") or threads)
    if int(threads) < configured:
        log.warning(
            "Snakemake gave this job %s thread(s) (--cores); the engine uses inference.threads = %s. "
            "Use --cores >= %s so that no other job shares those cores.",
            threads,
            configured,
            configured,
        )
    s["threads"] = configured
    settings = EngineSettings(**s)
    spec = CellSpec(
        model=wildcards["model"],
        engine=wildcards["engine"],
        precision=wildcards["precision"],
        condition=wildcards["condition"],
        family=cell["family"],
        batch_size=int(cell["batch_size"]),
        repeats=int(cell["repeats"]),
        warmup_utterances=int(cell["warmup_utterances"]),
    )
    data = load_inputs(inputs["noise"], inputs["manifest"])
    started = dt.datetime.now(dt.timezone.utc)
    failure = model_failure(inputs["model"])
    if failure:  # the weights could not be had: a failed row, no engine, no power window
        row, utts = failed_row(spec, plan, settings, data, f"ModelSourceError: {failure}")
        for p in (outputs["power_log"], outputs["markers"]):
            write_text(p, "")
        return _finish(row, utts, wildcards, inputs, outputs, cell, energy, threads, started, settings)
    meter = make_meter(
        energy["backend"],
        log_path=Path(outputs["power_log"]),
        markers_path=Path(outputs["markers"]),
        interval_ms=int(energy["interval_ms"]),
        idle_s=float(energy["idle_s"]),
        use_sudo=bool(energy.get("sudo", False)),
        tegrastats_path=energy.get("tegrastats_path"),
    )

    def hook(event: str, name: str) -> None:
        (meter.begin_window if event == "begin" else meter.end_window)(name)

    with meter:
        row, utts = run_cell(
            spec,
            inputs["model"],
            plan,
            settings,
            data,
            window_hook=hook,
            packed_path=inputs.get("packed"),
            decompression=(cell.get("quantizer") or {}).get("decompression", "dequant-at-load"),
        )
    return _finish(row, utts, wildcards, inputs, outputs, cell, energy, threads, started, settings)


def _finish(row, utts, wildcards, inputs, outputs, cell, energy, threads, started, settings) -> dict:
    """Provenance, the on_failure policy, and the cell's files."""
    row.update(
        {
            "energy_backend": energy["backend"],
            "disk_bytes": dir_bytes(inputs["packed"]) if inputs.get("packed") else dir_bytes(inputs["model"]),
            "job_threads": int(threads),
            "cell_config_hash": stable_hash({"cell": cell, "energy": energy}),
            "started_utc": started.isoformat(timespec="seconds"),
            "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **provenance(settings.device),
            **row_provenance(inputs["model"]),
        }
    )
    if inputs.get("packed_report"):
        import json

        from .quantize_job import training_recipe

        rep = json.loads(Path(inputs["packed_report"]).read_text())
        row.update({f"packed_{k}": v for k, v in rep.items() if isinstance(v, (int, float, str))})
        if rep.get("mode") == "qat" and rep.get("training"):  # how it was trained, in one column
            row["packed_training_recipe"] = training_recipe(rep["training"])
    if row["status"] == "failed" and cell.get("on_failure") == "stop":
        raise CellFailed(f"cell {wildcards} failed: {row['status_reason']} (inference.on_failure: stop)")
    write_csv(outputs["transcripts"], utts)
    write_json(outputs["cell"], row)
    log.info("cell %s: %s %s", wildcards, row["status"], row.get("status_reason", ""))
    return row
