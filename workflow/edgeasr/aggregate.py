"""The results tables: one row per cell (cells.csv) and one per (cell, utterance) (utterances.csv)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from .config import Cell
from .energy.errors import EnergyError
from .energy.summarize import KEYS as ENERGY_KEYS
from .energy.summarize import summarize
from .scoring import score

# what a cell's run measured (timing and memory), numbers all; the figures read them as numbers too
RUN_COLUMNS = (
    "n_utterances",
    "audio_s",
    "load_s",
    "transcribe_s",
    "transcribe_s_min",
    "transcribe_s_max",
    "repeats",
    "rtf",
    "rtfx",
    "peak_rss_mb",
    "peak_accel_mem_mb",
)
# the software that produced a row (provenance), text all
VERSION_COLUMNS = (
    "edgeasr_version",
    "python_version",
    "torch_version",
    "transformers_version",
    "ctranslate2_version",
    "faster_whisper_version",
    "torchao_version",
)
KEYS = [f.name for f in fields(Cell)]  # a cell's identity, defined once (edgeasr.config.Cell)
CELL_COLUMNS = [
    *KEYS,
    "paper_model",
    "family",
    "noise_kind",
    "snr_db",
    "noise_amplitude",
    "status",
    "status_reason",
    "device",
    "device_name",
    "compute_type",
    "quantizer",
    "decompression",
    "precision_method",
    "weight_bits",
    *RUN_COLUMNS,
    "param_count",
    "model_params_m",
    "param_bytes",
    "disk_bytes",
    "threads",
    "job_threads",
    "batch_size",
    "wer_pct",
    "wer_ci_low_pct",
    "wer_ci_high_pct",
    "cer_pct",
    "ref_words",
    "hits",
    "substitutions",
    "deletions",
    "insertions",
    *ENERGY_KEYS,  # the energy step's columns, defined once (edgeasr.energy.summarize.KEYS)
    "backend",
    *VERSION_COLUMNS,
    "host",
    "os",
    "cpu_model",
    "gpu_model",
    "git_commit",
    "model_source",
    "model_revision",
    "model_files_sha256",
    "model_conversion",
    "l4t_release",
    "jetson_power_mode",
    "slurm_job_id",
    "slurm_node",
    "cell_config_hash",
    "config_hash",
    "started_utc",
    "finished_utc",
]
UTT_COLUMNS = [
    *KEYS,
    "utt_id",
    "audio_s",
    "seconds",
    "reference",
    "hypothesis",
    "ref_norm",
    "hyp_norm",
    "ref_words",
    "errors",
    "substitutions",
    "deletions",
    "insertions",
    "wer_pct",
]


def _read_json(p) -> dict:
    return json.loads(Path(p).read_text())


@dataclass(frozen=True)
class CellFiles:
    """One cell's raw outputs, as its inference job wrote them (results/cells/<cell>/...)."""

    cell: str  # cell.json: what the job measured (timing, memory, provenance)
    transcripts: str  # transcripts.csv: reference and hypothesis per utterance
    power_log: str  # power.log: the meter's raw samples
    markers: str  # power_markers.jsonl: the measurement windows


def derive_cell(files: CellFiles, scoring: dict, energy: dict) -> tuple[dict, pd.DataFrame]:
    """A cell's row and its utterance table, derived from its raw outputs alone.

    Scores come from the transcripts (``edgeasr.scoring.score`` with ``scoring``: ``samples``, ``seed``,
    ``confidence``), energy from the power log and its window markers (``edgeasr.energy.summarize`` with
    ``energy``: ``rails``, ``interval_ms``). A failed cell keeps its gap: no scores, no energy.
    """
    row = _read_json(files.cell)
    utts = pd.read_csv(files.transcripts, dtype={"utt_id": str}, keep_default_na=False)
    if row["status"] != "ok":
        row["energy_backend"] = row.get("energy_backend", "none")
        return row, utts.iloc[0:0]
    metrics, scored = score(utts, samples=scoring["samples"], seed=scoring["seed"], confidence=scoring["confidence"])
    reps = int(row.get("repeats") or 1)
    try:
        cols = summarize(
            row["energy_backend"],
            files.power_log,
            files.markers,
            audio_s=row["audio_s"] * reps,
            n_utterances=row["n_utterances"] * reps,
            rails=energy.get("rails"),
            interval_ms=energy.get("interval_ms"),
        )
    except EnergyError as e:
        raise EnergyError(f"cell {files.cell}: its power log cannot be summarized: {e}") from None
    return {**row, **metrics, **cols}, scored


def _derive_all(cells: list[CellFiles], scoring: dict, energy: dict, workers: int):
    if workers <= 1 or len(cells) < 2 * workers:
        return [derive_cell(c, scoring, energy) for c in cells]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:  # order kept: map returns results in input order
        return list(pool.map(derive_cell, cells, [scoring] * len(cells), [energy] * len(cells), chunksize=16))


def build_tables(
    cells: list[CellFiles],
    unsupported: list[dict],
    conditions: dict,
    models: dict,
    config_hash: str,
    scoring: dict,
    energy: dict,
    workers: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cells table (one row per cell, unsupported cells included) and the utterances table.

    Every cell's scores and energy are derived here from its raw outputs (:func:`derive_cell`), on
    ``workers`` processes: a change of the scoring or energy settings re-derives the tables and never
    reruns a measurement.
    """
    rows, utt_frames = [], []
    for row, u in _derive_all(list(cells), scoring, energy, workers):
        rows.append(row)
        if len(u):
            for k in KEYS:
                u.insert(KEYS.index(k), k, row[k])
            utt_frames.append(u)
    for u in unsupported:
        rows.append({**u, "energy_backend": None})
    df = pd.DataFrame(rows)
    for name, col in (("noise_kind", "kind"), ("snr_db", "snr_db"), ("noise_amplitude", "amplitude")):
        df[name] = [conditions.get(c, {}).get(col) for c in df["condition"]]
    df["paper_model"] = [models.get(m, {}).get("paper_model") for m in df["model"]]
    df["family"] = [models.get(m, {}).get("family") for m in df["model"]]
    if "param_count" in df:
        df["model_params_m"] = pd.to_numeric(df["param_count"], errors="coerce") / 1e6
    df["device_name"] = [r.get("gpu_model") or r.get("cpu_model") for r in rows]
    df["config_hash"] = config_hash
    extra = sorted(c for c in df.columns if c not in CELL_COLUMNS)  # per-rail energy columns and the like
    df = df.reindex(columns=CELL_COLUMNS + extra)
    order = {"ok": 0, "failed": 1, "unsupported": 2}
    df = df.sort_values(KEYS, kind="stable").reset_index(drop=True)
    df["status"] = df["status"].fillna("failed")
    assert set(df["status"]) <= set(order), f"unknown status in {set(df['status'])}"
    utts = pd.concat(utt_frames, ignore_index=True) if utt_frames else pd.DataFrame(columns=UTT_COLUMNS)
    utts = utts.reindex(columns=UTT_COLUMNS)
    return df, utts
