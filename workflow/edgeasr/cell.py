"""One inference cell: load (timed apart), warm up (not counted), transcribe every utterance of one
noise condition, inside one measurement window.

The window hook is the attachment point for power measurement: ``window_hook("begin", name)`` is
called right before the timed transcription starts and ``window_hook("end", name)`` right after it
ends (also when it fails), so that the energy step integrates exactly the timed work.
"""

from __future__ import annotations

import logging
import resource
import statistics
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .audio import read_audio
from .config import Cell
from .engines.base import EngineSettings, make_engine
from .precision import Plan

log = logging.getLogger(__name__)

WindowHook = Callable[[str, str], None]
UTTERANCE_COLUMNS = ["utt_id", "audio_s", "seconds", "reference", "hypothesis"]


@dataclass(frozen=True)
class CellSpec(Cell):
    """One cell (its identity, edgeasr.config.Cell) and how its measurement runs."""

    family: str = "whisper"
    batch_size: int = 1
    repeats: int = 1
    warmup_utterances: int = 1


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (1e6 bytes). Linux reports KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def load_inputs(noise_table: str | Path, manifest: str | Path) -> pd.DataFrame:
    """The condition's audio paths joined with references and durations from the manifest."""
    from .dataset import read_manifest

    noisy = pd.read_csv(noise_table, dtype={"utt_id": str})
    man = read_manifest(manifest)[["utt_id", "duration_s", "reference"]]
    df = noisy[["utt_id", "audio_path"]].merge(man, on="utt_id", how="inner", validate="one_to_one")
    if len(df) != len(noisy):
        raise ValueError(f"{noise_table}: {len(noisy) - len(df)} utterances are not in {manifest}")
    return df.sort_values("utt_id", kind="stable").reset_index(drop=True)


def _base_row(spec: CellSpec, plan: Plan, settings: EngineSettings, inputs: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    row: dict = {
        **asdict(spec),
        "status": "ok",
        "status_reason": "",
        "device": settings.device,
        "compute_type": plan.compute_type,
        "precision_method": plan.method,
        "weight_bits": plan.weight_bits,
        "threads": settings.threads,
        "n_utterances": int(len(inputs)),
        "audio_s": float(inputs["duration_s"].sum()),
    }
    utts = inputs[["utt_id", "duration_s", "reference"]].rename(columns={"duration_s": "audio_s"}).copy()
    utts["seconds"], utts["hypothesis"] = np.nan, ""
    return row, utts


def failed_row(
    spec: CellSpec, plan: Plan, settings: EngineSettings, inputs: pd.DataFrame, reason: str
) -> tuple[dict, pd.DataFrame]:
    """The row of a cell that could not run at all (e.g. its weights could not be had)."""
    row, utts = _base_row(spec, plan, settings, inputs)
    row.update({"status": "failed", "status_reason": reason[:600], "peak_rss_mb": peak_rss_mb()})
    return row, utts[UTTERANCE_COLUMNS]


def run_cell(
    spec: CellSpec,
    model_dir: str | Path,
    plan: Plan,
    settings: EngineSettings,
    inputs: pd.DataFrame,
    window_hook: WindowHook | None = None,
    packed_path: str | None = None,
    decompression: str = "dequant-at-load",
) -> tuple[dict, pd.DataFrame]:
    """Run one cell. Never raises for a model failure: returns status ``failed`` with the error instead."""
    hook = window_hook or (lambda event, name: None)
    row, utts = _base_row(spec, plan, settings, inputs)
    audio = [read_audio(p)[0].astype(np.float32) for p in inputs["audio_path"]]
    engine = make_engine(spec.engine, model_dir, plan, settings)
    if packed_path:
        engine.packed_path = packed_path
        engine.decompression = decompression
        row["decompression"] = decompression
    window_open = False
    try:
        t0 = time.perf_counter()
        engine.load()
        row["load_s"] = time.perf_counter() - t0
        for a in audio[: spec.warmup_utterances]:
            engine.transcribe([a])
        engine.accel_memory_reset()
        per_rep: list[float] = []
        per_utt = np.zeros((spec.repeats, len(audio)))
        hyps: list[str] = [""] * len(audio)
        hook("begin", "transcribe")
        window_open = True
        for rep in range(spec.repeats):
            t_rep = time.perf_counter()
            for i in range(0, len(audio), spec.batch_size):
                batch = audio[i : i + spec.batch_size]
                tb = time.perf_counter()
                out = engine.transcribe(batch)
                dt = time.perf_counter() - tb
                if len(out) != len(batch):
                    raise RuntimeError(f"engine returned {len(out)} transcripts for {len(batch)} utterances")
                per_utt[rep, i : i + len(batch)] = dt / len(batch)  # batch time shared equally (stated)
                if rep == 0:
                    hyps[i : i + len(batch)] = out
            per_rep.append(time.perf_counter() - t_rep)
        hook("end", "transcribe")
        window_open = False
        med = statistics.median(per_rep)
        row.update(
            {
                "transcribe_s": med,
                "transcribe_s_min": min(per_rep),
                "transcribe_s_max": max(per_rep),
                "repeats": spec.repeats,
                "rtf": med / row["audio_s"],
                "rtfx": row["audio_s"] / med,
            }
        )
        utts["seconds"] = np.median(per_utt, axis=0)
        utts["hypothesis"] = hyps
        pam = engine.peak_accel_mem_bytes()
        row["peak_accel_mem_mb"] = pam / 1e6 if pam else None
        row["param_count"] = engine.param_count()
        row["param_bytes"] = engine.param_bytes()
        row.update(engine.describe())
    except Exception as e:  # a cell that fails (OOM, crash) is recorded; the study goes on
        if window_open:
            hook("end", "transcribe")
        row["status"] = "failed"
        row["status_reason"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        log.error("cell %s failed:\n%s", spec, traceback.format_exc())
    finally:
        engine.close()
    row["peak_rss_mb"] = peak_rss_mb()
    return row, utts[UTTERANCE_COLUMNS]
