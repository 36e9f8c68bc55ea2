"""The tables behind every figure: the cells table (loading, normalising), the study's reference values,
and the small helpers shared by the data functions (ordering, labels, why a value is missing, provenance)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .constants import (
    CLEAN,
    ENERGY_METRICS,
    NUMERIC_COLUMNS,
    PAPER_CONDITION,
    PAPER_PRECISION,
    PRECISION_ORDER,
    REQUIRED_COLUMNS,
    STATUSES,
    STUDY_NOISY_KIND,
    TEXT_COLUMNS,
)
from .study import guess_paper_model


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def normalise_cells(df: pd.DataFrame, source: str = "cells table") -> pd.DataFrame:
    """Coerce the cells table to the schema's types; absent optional columns become empty."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing required column(s) {', '.join(missing)} (see docs/results-schema.md)")
    df = df.copy()
    if "paper_model" not in df.columns:  # an older table: match the study's models by name (or a known alias)
        df["paper_model"] = df["model"].map(guess_paper_model)
    for col in REQUIRED_COLUMNS:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str).str.strip()
    for col in NUMERIC_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df.columns else np.nan
        df[col] = df[col].astype(float)
    for col in TEXT_COLUMNS:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str).str.strip() if col in df.columns else ""
    bad = sorted(set(df["status"]) - set(STATUSES))
    if bad:
        raise ValueError(f"{source}: unknown status value(s) {bad}; expected one of {STATUSES}")
    no_kind = df["noise_kind"] == ""
    df.loc[no_kind & (df["condition"] == CLEAN), "noise_kind"] = CLEAN
    df.loc[df["energy_backend"] == "", "energy_backend"] = "none"
    return df.reset_index(drop=True)


def load_cells(path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cells table not found: {path} (written by the workflow's aggregate step)")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty file, expected the cells table header at least") from None
    return normalise_cells(df, str(path))


def empty_paper() -> pd.DataFrame:
    return pd.DataFrame(columns=["figure", "paper_model", "paper_engine", "precision", "condition", "metric", "value"])


def load_paper(path) -> pd.DataFrame:
    """The study's values with precisions and conditions renamed to this project's names."""
    if path is None:
        return empty_paper()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference values not found: {path}")
    raw = pd.read_csv(path, comment="#")
    need = {"figure", "model", "engine", "precision", "condition", "metric", "value"}
    if not need <= set(raw.columns):
        raise ValueError(f"{path}: expected columns {sorted(need)}, got {list(raw.columns)}")
    out = pd.DataFrame(
        {
            "figure": raw["figure"].astype(str),
            "paper_model": raw["model"].astype(str),
            "paper_engine": raw["engine"].astype(str),
            "precision": raw["precision"].astype(str).map(lambda p: PAPER_PRECISION.get(p, p)),
            "condition": raw["condition"].astype(str).map(lambda c: PAPER_CONDITION.get(c, c)),
            "metric": raw["metric"].astype(str),
            "value": pd.to_numeric(raw["value"], errors="coerce").astype(float),
        }
    )
    return out


def paper_lookup(
    paper: pd.DataFrame, figures: Iterable[str], metric: str, condition: str = CLEAN, by_engine: bool = False
) -> dict:
    """{(paper_model, precision): value} (or {(paper_model, engine, precision): value} with
    ``by_engine``) from the first of ``figures`` that has it."""
    out: dict = {}
    for fig in figures:
        sel = paper[(paper["figure"] == fig) & (paper["metric"] == metric) & (paper["condition"] == condition)]
        for row in sel.itertuples():
            key = (row.paper_model, row.paper_engine, row.precision) if by_engine else (row.paper_model, row.precision)
            out.setdefault(key, row.value)
    return out


# --------------------------------------------------------------------------------------------------
# small helpers shared by the data functions
# --------------------------------------------------------------------------------------------------
def precision_order(precisions: Iterable[str]) -> list[str]:
    uniq = list(dict.fromkeys(p for p in precisions if p))
    known = [p for p in PRECISION_ORDER if p in uniq]
    return known + sorted(p for p in uniq if p not in PRECISION_ORDER)


def model_order(cells: pd.DataFrame) -> list[str]:
    if cells.empty:
        return []
    sizes = cells.groupby("model")["model_params_m"].max()
    return sorted(sizes.index, key=lambda m: (math.inf if pd.isna(sizes[m]) else sizes[m], m))


def model_label(model: str, params_m: float | None) -> str:
    if params_m is None or pd.isna(params_m):
        return model
    return f"{model} ({params_m:.0f} M)" if params_m >= 10 else f"{model} ({params_m:.1f} M)"


def is_num(x) -> bool:
    """True for a number that is not NaN (None and NaN are "no value")."""
    return x is not None and not pd.isna(x)


def first_text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def status_text(row) -> str:
    status = first_text(row["status"])
    reason = first_text(row.get("status_reason", "")).strip()
    return f"{status}: {reason}" if reason else status


def gap_reason(row, metric: str) -> str | None:
    """Why ``row`` has no value for ``metric`` (None when it has one)."""
    if row is None:
        return "not in this run's matrix"
    if row["status"] != "ok":
        return status_text(row)
    value = row.get(metric, np.nan)
    if is_num(value):
        return None
    if metric in ENERGY_METRICS or metric.startswith("energy"):
        backend = first_text(row.get("energy_backend", "")) or "none"
        if backend == "none":
            return "not measured here (energy backend: none)"
        return f"no {metric} from energy backend {backend}"
    if metric == "peak_accel_mem_mb":
        return "no accelerator memory (ran on CPU)"
    return f"{metric} not recorded"


def short_reason(reason: str, maxlen: int = 48) -> str:
    reason = " ".join(str(reason).split())
    return reason if len(reason) <= maxlen else reason[: maxlen - 1].rstrip() + "…"


def metric_values(cells: pd.DataFrame, metric: str) -> pd.Series:
    """A column, or a derived one (``rtf_with_load``)."""
    if metric == "rtf_with_load":
        return (cells["load_s"] + cells["transcribe_s"]) / cells["audio_s"]
    return cells[metric]


def with_metric(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``cells`` with the column ``metric`` (derived when it is not a column of the table)."""
    if metric in cells.columns:
        return cells
    cells = cells.copy()
    cells[metric] = metric_values(cells, metric)
    return cells


def clean_cells(cells: pd.DataFrame) -> pd.DataFrame:
    return cells[cells["noise_kind"] == CLEAN]


def study_noisy_condition(cells: pd.DataFrame, amplitude: float = 0.1) -> str | None:
    """Name of the ``uniform`` condition closest to the study's amplitude (None if the run has none)."""
    uni = cells[cells["noise_kind"] == STUDY_NOISY_KIND]
    if uni.empty:
        return None
    conds = uni.groupby("condition")["noise_amplitude"].first().reset_index()
    conds["dist"] = (conds["noise_amplitude"] - amplitude).abs().fillna(math.inf)
    return str(conds.sort_values(["dist", "condition"]).iloc[0]["condition"])


def index_cells(df: pd.DataFrame, keys) -> dict:
    """{(values of ``keys``): row}."""
    return {tuple(r[c] for c in keys): r for _, r in df.iterrows()}


# --------------------------------------------------------------------------------------------------
# provenance (footer of every figure, summary of results/README.md)
# --------------------------------------------------------------------------------------------------
def ran_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells that ran (status ok), or all of them when none did: where provenance is read from
    (a never-scheduled cell records no device name or versions)."""
    ok = cells[cells["status"] == "ok"]
    return ok if len(ok) else cells


def energy_backends(cells) -> str:
    """The energy backends of the cells that ran, comma-separated ("none" when there is none)."""
    return ", ".join(sorted(set(ran_cells(cells)["energy_backend"]) - {""})) or "none"


def uniq(series) -> list[str]:
    """The distinct non-empty values of ``series`` as text, sorted."""
    return sorted(set(str(v) for v in series if str(v) not in ("", "nan")))


def provenance(cells: pd.DataFrame) -> str:
    if cells.empty:
        return "This run: no cells in the table."
    cells = ran_cells(cells)
    dev = (
        "; ".join(
            f"{name} ({kind})" if name else kind
            for name, kind in sorted(set(zip(cells["device_name"], cells["device"])))
            if name or kind
        )
        or "device not recorded"
    )
    versions = []
    for col, name in (
        ("edgeasr_version", "edgeasr"),
        ("faster_whisper_version", "faster-whisper"),
        ("ctranslate2_version", "ctranslate2"),
        ("torch_version", "torch"),
        ("transformers_version", "transformers"),
        ("python_version", "python"),
    ):
        vals = uniq(cells[col])
        if vals:
            versions.append(f"{name} {'/'.join(vals)}")
    finished = uniq(cells["finished_utc"])
    parts = [f"This run: {dev}", f"energy backend: {energy_backends(cells)}"]
    if versions:
        parts.append(", ".join(versions))
    if finished:
        parts.append(f"finished {finished[-1]}")
    return " · ".join(parts)
