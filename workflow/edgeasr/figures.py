"""Figures, precision-effect table and findings, built only from ``results/tables/cells.csv``.

Every figure of the reference study (arXiv 2405.01004: Fig. 4, 5, 7, 8) is rebuilt from this run's
cells, with the study's own values (``resources/reference/paper_2405.01004_figures.csv``, measured on
a Jetson Orin Nano) drawn as a separate marker layer, plus what the study lacked: WER against SNR,
the accuracy / cost Pareto front, the precision effect (table + heat map) and a findings table.

Layout of this module:

* loading / normalising: :func:`load_cells`, :func:`load_paper`
* data behind each figure (pure pandas, unit-tested): :func:`fig4_data`, :func:`bar_metric_data`,
  :func:`fig5_data`, :func:`fig7_data`, :func:`fig8_data`, :func:`snr_data`, :func:`pareto_data`,
  :func:`pareto_front`, :func:`precision_effect`, :func:`findings`, :func:`gap_reason`
* the study's twelve models against this run (Fig. 4 and Fig. 8 draw all of them and name, with the reason,
  each one that did not run here): :mod:`edgeasr.figures_study`
* plotting: ``plot_*`` functions returning a matplotlib figure (matplotlib / seaborn are imported lazily)
* command line: ``python -m edgeasr.figures NAME --cells CELLS --paper PAPER --out OUT... --option k=v``

A cell with no measurement (``unsupported``, ``failed``, or a metric its backend cannot give, such as
energy with ``energy_backend == none``) is drawn as a hatched grey placeholder carrying the reason, never
as zero.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .figures_study import guess_paper_model, not_run_notes, ran_pairs, study_models

# --------------------------------------------------------------------------------------------------
# constants
# --------------------------------------------------------------------------------------------------
STATUSES = ("ok", "failed", "unsupported")
CLEAN = "clean"
STUDY_NOISY_KIND = "uniform"  # the study's "noisy" set: additive uniform noise, amplitude 0.1
PAPER_DEVICE = "Jetson Orin Nano"
PAPER_LABEL = f"study (arXiv 2405.01004), measured on a {PAPER_DEVICE}"
PAPER_AUDIO_S = 328.3  # the study's test set: LibriSpeech dev-clean 3752/4944, 70 utterances
PAPER_PRECISION = {"float16": "fp16", "float32": "fp32", "int8": "int8", "fp16": "fp16", "fp32": "fp32"}
PAPER_CONDITION = {"clean": CLEAN, "noisy": STUDY_NOISY_KIND}
# Parameter counts of the study's Whisper models (millions, from the Whisper model card), used only to
# order the study's own values in the findings table.
STUDY_MODEL_PARAMS_M = {"whisper-tiny": 39, "whisper-base": 74, "whisper-small": 244, "whisper-medium": 769}
PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")
BASELINE_PRECISION = "fp32"
ENERGY_METRICS = ("energy_j", "energy_above_idle_j", "paper_style_energy_j")
MEMORY_METRICS = ("peak_rss_mb", "peak_accel_mem_mb")
EFFECT_METRICS = ("wer_pct", "rtf", "peak_rss_mb", "peak_accel_mem_mb") + ENERGY_METRICS
# findings: "fp16 roughly halves the energy" counts as supported when the median fp16/fp32 energy ratio
# is at most this (the study's own ratios are 0.46-0.52).
FP16_HALVES_MAX_RATIO = 0.65

REQUIRED_COLUMNS = ("model", "engine", "precision", "condition", "status")
NUMERIC_COLUMNS = (
    "model_params_m", "snr_db", "noise_amplitude", "weight_bits", "n_utterances", "audio_s", "load_s",
    "transcribe_s", "transcribe_s_min", "transcribe_s_max", "repeats", "rtf", "rtfx", "peak_rss_mb",
    "peak_accel_mem_mb", "param_bytes", "disk_bytes", "wer_pct", "wer_ci_low_pct", "wer_ci_high_pct",
    "cer_pct", "energy_j", "mean_power_w", "idle_power_w", "energy_above_idle_j", "energy_j_per_audio_s",
    "energy_j_per_utterance", "paper_style_energy_j", "window_s",
)
TEXT_COLUMNS = (
    "paper_model", "noise_kind", "status_reason", "device", "device_name", "compute_type",
    "precision_method", "energy_backend", "energy_rail", "edgeasr_version", "python_version",
    "torch_version", "transformers_version", "ctranslate2_version", "faster_whisper_version", "host",
    "cpu_model", "gpu_model", "git_commit", "config_hash", "finished_utc",
)

METRIC_LABELS = {
    "wer_pct": "WER (%)",
    "rtf": "real-time factor (processing s / audio s)",
    "rtf_with_load": "real-time factor incl. model load",
    "peak_rss_mb": "peak host memory, RSS (MB)",
    "peak_accel_mem_mb": "peak accelerator memory (MB)",
    "energy_j": "energy in the transcription window (J)",
    "energy_above_idle_j": "energy above idle (J)",
    "paper_style_energy_j": "energy, the study's method (J)",
    "transcribe_s": "transcription time (s)",
}
METRIC_SHORT = {
    "wer_pct": "WER", "rtf": "RTF", "peak_rss_mb": "memory (RSS)", "peak_accel_mem_mb": "accel. memory",
    "energy_j": "energy", "energy_above_idle_j": "energy above idle", "paper_style_energy_j": "energy (study method)",
}

GAP_FACE = "#d9d9d9"
GAP_EDGE = "#8c8c8c"
PAPER_MARKER = dict(marker="D", markersize=6.5, markerfacecolor="white", markeredgecolor="black",
                    markeredgewidth=1.4, linestyle="none", zorder=6)
PAPER_MARKER_SCATTER = dict(marker="D", s=46, facecolors="white", edgecolors="black", linewidths=1.4, zorder=6)

# --------------------------------------------------------------------------------------------------
# options (the `figures:` config section)
# --------------------------------------------------------------------------------------------------
DEFAULT_OPTIONS: dict = {
    "formats": ["png", "svg"],
    "dpi": 150,
    "show_paper": True,
    "fig4_noisy_amplitude": 0.1,
    "fig8_precision": "auto",
    "energy_metric": "energy_j",
    "memory_metric": "peak_rss_mb",
    "rtf_include_load": False,
    "snr_ci_style": "band",
    "pareto_x": "auto",
    "pareto_by_condition": False,
    "precision_effect_condition": "clean",
}
OPTION_DESCRIPTIONS = {
    "formats": "file formats written for every figure (png, svg, pdf)",
    "dpi": "resolution of raster formats (50-600)",
    "show_paper": "draw the study's values (Jetson Orin Nano) as a separate marker layer",
    "fig4_noisy_amplitude": "Fig. 4 'noisy' = the `uniform` condition whose noise_amplitude is closest to this",
    "fig8_precision": "precision shown in Fig. 8; `auto` = fp16 when any clean fp16 cell ran, else the "
                      "precision with most clean cells that ran",
    "energy_metric": "energy column plotted and used in findings: energy_j, energy_above_idle_j, paper_style_energy_j",
    "memory_metric": "memory column plotted: peak_rss_mb (host) or peak_accel_mem_mb (accelerator)",
    "rtf_include_load": "Fig. 7: add model load time to the RTF, as the study did",
    "snr_ci_style": "bootstrap-interval style in the WER-vs-SNR figure: band or bars",
    "pareto_x": "cost axis of the Pareto front: auto (energy when measured, else time), energy, time",
    "pareto_by_condition": "also draw one Pareto panel per noise condition",
    "precision_effect_condition": "condition shown in the precision-effect heat map, or `all` (one panel each)",
}
OPTION_CHOICES = {
    "fig8_precision": None,  # free text (any precision name) or auto
    "energy_metric": ENERGY_METRICS,
    "memory_metric": MEMORY_METRICS,
    "snr_ci_style": ("band", "bars"),
    "pareto_x": ("auto", "energy", "time"),
}
FORMATS = ("png", "svg", "pdf")


def _parse_bool(value, key):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"figures option {key}: expected true/false, got {value!r}")


def coerce_option(key: str, value):
    """Check one option (from config or ``--option k=v``) and return it with the default's type."""
    if key not in DEFAULT_OPTIONS:
        raise ValueError(f"unknown figures option {key!r}; known: {', '.join(sorted(DEFAULT_OPTIONS))}")
    default = DEFAULT_OPTIONS[key]
    if isinstance(default, bool):
        return _parse_bool(value, key)
    if key == "formats":
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        items = [str(i).strip().lower().lstrip(".") for i in items if str(i).strip()]
        bad = [i for i in items if i not in FORMATS]
        if not items or bad:
            raise ValueError(f"figures option formats: expected a non-empty list of {FORMATS}, got {value!r}")
        return list(dict.fromkeys(items))
    if key == "dpi":
        try:
            dpi = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"figures option dpi: expected an integer 50-600, got {value!r}") from None
        if not 50 <= dpi <= 600 or isinstance(value, bool):
            raise ValueError(f"figures option dpi: expected an integer 50-600, got {value!r}")
        return dpi
    if isinstance(default, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"figures option {key}: expected a number, got {value!r}") from None
        if not number > 0 or not math.isfinite(number):
            raise ValueError(f"figures option {key}: expected a positive number, got {value!r}")
        return number
    text = str(value).strip()
    choices = OPTION_CHOICES.get(key)
    if choices and text not in choices:
        raise ValueError(f"figures option {key}: expected one of {', '.join(choices)}, got {value!r}")
    if not text:
        raise ValueError(f"figures option {key}: empty value")
    return text


def resolve_options(config_section: dict | None) -> dict:
    """Defaults overlaid with a ``figures:`` config section; every value checked (clear error if bad)."""
    section = dict(config_section or {})
    out = dict(DEFAULT_OPTIONS)
    for key, value in section.items():
        out[key] = coerce_option(key, value)
    return out


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def normalise_cells(df: pd.DataFrame, source: str = "cells table") -> pd.DataFrame:
    """Coerce the cells table to the schema's types; absent optional columns become empty."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing required column(s) {', '.join(missing)} "
                         "(see docs/results-schema.md)")
    df = df.copy()
    if "paper_model" not in df.columns:  # an older table: match the study's models by name (or a known alias)
        df["paper_model"] = df["model"].map(guess_paper_model)
    for col in REQUIRED_COLUMNS:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str).str.strip()
    for col in NUMERIC_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df.columns else np.nan
        df[col] = df[col].astype(float)
    for col in TEXT_COLUMNS:
        df[col] = (df[col].astype(object).where(df[col].notna(), "").astype(str).str.strip()
                   if col in df.columns else "")
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
    return pd.DataFrame(columns=["figure", "paper_model", "paper_engine", "precision", "condition",
                                 "metric", "value"])


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
    out = pd.DataFrame({
        "figure": raw["figure"].astype(str),
        "paper_model": raw["model"].astype(str),
        "paper_engine": raw["engine"].astype(str),
        "precision": raw["precision"].astype(str).map(lambda p: PAPER_PRECISION.get(p, p)),
        "condition": raw["condition"].astype(str).map(lambda c: PAPER_CONDITION.get(c, c)),
        "metric": raw["metric"].astype(str),
        "value": pd.to_numeric(raw["value"], errors="coerce").astype(float),
    })
    return out


def paper_lookup(paper: pd.DataFrame, figures: Iterable[str], metric: str, condition: str = CLEAN,
                 by_engine: bool = False) -> dict:
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


def _is_num(x) -> bool:
    return x is not None and not pd.isna(x)


def _first_text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def status_text(row) -> str:
    status = _first_text(row["status"])
    reason = _first_text(row.get("status_reason", "")).strip()
    return f"{status}: {reason}" if reason else status


def gap_reason(row, metric: str) -> str | None:
    """Why ``row`` has no value for ``metric`` (None when it has one)."""
    if row is None:
        return "not in this run's matrix"
    if row["status"] != "ok":
        return status_text(row)
    value = row.get(metric, np.nan)
    if _is_num(value):
        return None
    if metric in ENERGY_METRICS or metric.startswith("energy"):
        backend = _first_text(row.get("energy_backend", "")) or "none"
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


def _with_metric(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
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


def _index_cells(df: pd.DataFrame, keys) -> dict:
    """{(values of ``keys``): row}."""
    return {tuple(r[c] for c in keys): r for _, r in df.iterrows()}


# --------------------------------------------------------------------------------------------------
# data behind the figures
# --------------------------------------------------------------------------------------------------
def fig4_data(cells: pd.DataFrame, paper: pd.DataFrame | None = None, noisy_amplitude: float = 0.1) -> pd.DataFrame:
    """WER on clean vs the study's noisy set, one row per (engine, precision, model, clean|noisy).

    A model appears on an engine when one of its cells there ran (the others: :func:`not_run_notes`). Each
    model of the study with no row in the panel of its own engine and precision gets ``study_only`` rows
    there (no bar, the study's value alone), so that every model of the study is drawn."""
    paper = empty_paper() if paper is None else paper
    noisy = study_noisy_condition(cells, noisy_amplitude)
    pvals = {"clean": paper_lookup(paper, ["fig4"], "wer_pct", CLEAN, by_engine=True),
             "noisy": paper_lookup(paper, ["fig4"], "wer_pct", STUDY_NOISY_KIND, by_engine=True)}
    pairs = ran_pairs(cells)
    cells = cells.loc[np.array([pair in pairs for pair in zip(cells["model"], cells["engine"])], dtype=bool)]
    idx = _index_cells(cells, ["engine", "precision", "model", "condition"])
    sizes = cells.groupby("model")["model_params_m"].max() if not cells.empty else {}
    pm = cells.groupby("model")["paper_model"].first() if not cells.empty else {}
    rows = []
    for engine in sorted(cells["engine"].unique()):
        eng = cells[cells["engine"] == engine]
        for precision in precision_order(eng["precision"]):
            for model in model_order(eng):
                for which, cond in (("clean", CLEAN), ("noisy", noisy)):
                    row = idx.get((engine, precision, model, cond)) if cond else None
                    gap = gap_reason(row, "wer_pct")
                    if cond is None:
                        gap = "no 'uniform' noise condition in this run"
                    rows.append({
                        "engine": engine, "precision": precision, "model": model,
                        "model_label": model_label(model, sizes[model]), "paper_model": pm[model],
                        "which": which, "condition": cond or "",
                        "value": np.nan if gap else row["wer_pct"],
                        "lo": np.nan if gap else row["wer_ci_low_pct"],
                        "hi": np.nan if gap else row["wer_ci_high_pct"],
                        "gap": gap or "", "paper_value": pvals[which].get((pm[model], engine, precision), np.nan),
                        "study_only": False,
                    })
    drawn = {(r["paper_model"], r["engine"], r["precision"]) for r in rows}
    ran = set(cells.loc[cells["status"] == "ok", "paper_model"])
    for key in dict.fromkeys(list(pvals["clean"]) + list(pvals["noisy"])):
        if key in drawn:
            continue
        study_model, engine, precision = key
        label = f"{study_model} (study" + (")" if study_model in ran else " only)")
        for which in ("clean", "noisy"):
            rows.append({"engine": engine, "precision": precision, "model": "", "model_label": label,
                         "paper_model": study_model, "which": which, "condition": "", "value": np.nan,
                         "lo": np.nan, "hi": np.nan, "gap": "", "paper_value": pvals[which].get(key, np.nan),
                         "study_only": True})
    df = pd.DataFrame(rows, columns=["engine", "precision", "model", "model_label", "paper_model", "which",
                                     "condition", "value", "lo", "hi", "gap", "paper_value", "study_only"])
    return df.astype({"study_only": bool})


def bar_metric_data(cells: pd.DataFrame, metric: str, paper_values: dict | None = None) -> pd.DataFrame:
    """One row per (engine, model, precision) on clean audio, every combination present (gaps filled);
    ``paper_values`` keyed by (paper_model, engine, precision)."""
    cells = _with_metric(cells, metric)
    paper_values = paper_values or {}
    clean = clean_cells(cells)
    idx = _index_cells(clean, ["engine", "model", "precision"])
    sizes = cells.groupby("model")["model_params_m"].max() if not cells.empty else {}
    pm = cells.groupby("model")["paper_model"].first() if not cells.empty else {}
    rows = []
    for engine in sorted(clean["engine"].unique()):
        eng = clean[clean["engine"] == engine]
        for model in model_order(eng):
            for precision in precision_order(eng["precision"]):
                row = idx.get((engine, model, precision))
                gap = gap_reason(row, metric)
                rows.append({
                    "engine": engine, "model": model, "model_label": model_label(model, sizes[model]),
                    "paper_model": pm[model], "precision": precision, "metric": metric,
                    "value": np.nan if gap else float(row[metric]), "gap": gap or "",
                    "paper_value": paper_values.get((pm[model], engine, precision), np.nan),
                })
    return pd.DataFrame(rows, columns=["engine", "model", "model_label", "paper_model", "precision", "metric",
                                       "value", "gap", "paper_value"])


def fig5_data(cells, paper=None, energy_metric="energy_j") -> pd.DataFrame:
    paper = empty_paper() if paper is None else paper
    return bar_metric_data(cells, energy_metric, paper_lookup(paper, ["fig5", "fig8"], "energy_j", by_engine=True))


def fig7_data(cells, paper=None, memory_metric="peak_rss_mb", rtf_include_load=False) -> pd.DataFrame:
    paper = empty_paper() if paper is None else paper
    rtf_metric = "rtf_with_load" if rtf_include_load else "rtf"
    rtf = bar_metric_data(cells, rtf_metric, paper_lookup(paper, ["fig7"], "rtf", by_engine=True))
    mem = bar_metric_data(cells, memory_metric, paper_lookup(paper, ["fig7"], "max_ram_mb", by_engine=True))
    rtf["panel"], mem["panel"] = "rtf", "memory"
    return pd.concat([rtf, mem], ignore_index=True)


def any_energy(cells: pd.DataFrame, energy_metric: str = "energy_j", condition_kind: str | None = CLEAN) -> bool:
    sel = cells if condition_kind is None else cells[cells["noise_kind"] == condition_kind]
    return bool(((sel["status"] == "ok") & sel[energy_metric].notna()).any())


def choose_fig8_precision(cells: pd.DataFrame, option: str = "auto") -> str | None:
    """``auto``: the precision with the most clean cells that ran (ties: fp16, the study's, first)."""
    if option != "auto":
        return option
    ok = clean_cells(cells)
    ok = ok[(ok["status"] == "ok") & ok["wer_pct"].notna()]
    if ok.empty:
        present = precision_order(cells["precision"])
        return "fp16" if "fp16" in present or not present else present[0]
    counts = ok["precision"].value_counts()
    best = list(counts[counts == counts.max()].index)
    return "fp16" if "fp16" in best else precision_order(best)[0]


def cost_axis(cells: pd.DataFrame, mode: str, energy_metric: str, condition_kind: str | None = CLEAN):
    """(column, label, is_energy) of the cost axis for Fig. 8 / Pareto."""
    if mode == "energy" or (mode == "auto" and any_energy(cells, energy_metric, condition_kind)):
        return energy_metric, METRIC_LABELS[energy_metric], True
    return "transcribe_s", METRIC_LABELS["transcribe_s"], False


def paper_cost_points(paper: pd.DataFrame, is_energy: bool, every_model: bool = False) -> pd.DataFrame:
    """The study's fp16 clean points: WER (Fig. 4) against energy (Fig. 8) or run time (RTF x audio).
    ``every_model``: also the study's models with a WER but no such cost (``x`` NaN; the study gives run
    times for its Whisper models only)."""
    wer = paper_lookup(paper, ["fig4"], "wer_pct", CLEAN)
    if is_energy:
        cost = paper_lookup(paper, ["fig8", "fig5"], "energy_j")
    else:
        cost = {k: v * PAPER_AUDIO_S for k, v in paper_lookup(paper, ["fig7"], "rtf").items()}
    keys = [k for k in cost if k in wer] + ([k for k in wer if k not in cost] if every_model else [])
    rows = [{"paper_model": m, "precision": p, "x": cost.get((m, p), np.nan), "wer_pct": wer[(m, p)]}
            for m, p in keys]
    return pd.DataFrame(rows, columns=["paper_model", "precision", "x", "wer_pct"])


def fig8_data(cells, precision="auto", energy_metric="energy_j", memory_metric="peak_rss_mb",
              paper: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Clean cells at one precision: x (energy or time), WER, RTF, memory; gaps listed with reasons.
    ``meta["study"]``: every model of the study's clean WER and its x (NaN where the study has none)."""
    prec = choose_fig8_precision(cells, precision)
    x, xlabel, is_energy = cost_axis(cells, "auto", energy_metric)
    sel = clean_cells(cells)
    sel = sel[sel["precision"] == prec]
    rows = []
    for _, row in sel.iterrows():
        gap = gap_reason(row, "wer_pct") or gap_reason(row, x)
        rows.append({"engine": row["engine"], "model": row["model"], "paper_model": row["paper_model"],
                     "precision": prec, "x": row[x], "wer_pct": row["wer_pct"], "rtf": row["rtf"],
                     "memory": row[memory_metric], "gap": gap or "",
                     "model_params_m": row["model_params_m"]})
    df = pd.DataFrame(rows, columns=["engine", "model", "paper_model", "precision", "x", "wer_pct", "rtf",
                                     "memory", "gap", "model_params_m"])
    study = paper_cost_points(empty_paper() if paper is None else paper, is_energy, every_model=True)
    return df, {"precision": prec, "x": x, "xlabel": xlabel, "is_energy": is_energy, "study": study}


def snr_data(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells of SNR-swept noise conditions plus the clean reference, one row each."""
    has_snr = cells["snr_db"].notna() & ~cells["noise_kind"].isin([CLEAN, STUDY_NOISY_KIND])
    sel = cells[has_snr | (cells["noise_kind"] == CLEAN)].copy()
    sel["gap"] = [gap_reason(r, "wer_pct") or "" for _, r in sel.iterrows()]
    sel["series"] = sel["model"] + " · " + sel["engine"] + " · " + sel["precision"]
    return sel[["series", "model", "engine", "precision", "condition", "noise_kind", "snr_db", "wer_pct",
                "wer_ci_low_pct", "wer_ci_high_pct", "gap", "model_params_m"]].reset_index(drop=True)


def pareto_front(x, y) -> np.ndarray:
    """True where no other point is at least as good on both axes and better on one (minimise both)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    out = np.zeros(len(x), dtype=bool)
    for i in range(len(x)):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            continue
        dominated = (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        out[i] = not dominated.any()
    return out


def pareto_data(cells: pd.DataFrame, pareto_x: str = "auto", energy_metric: str = "energy_j",
                by_condition: bool = False) -> tuple[pd.DataFrame, dict]:
    """Every cell with its cost, WER, whether it is plotted, and ``on_front`` within its panel."""
    x, xlabel, is_energy = cost_axis(cells, pareto_x, energy_metric, None if by_condition else CLEAN)
    sel = cells if by_condition else clean_cells(cells)
    rows = []
    for _, row in sel.iterrows():
        gap = gap_reason(row, "wer_pct") or gap_reason(row, x)
        rows.append({"panel": row["condition"] if by_condition else CLEAN, "condition": row["condition"],
                     "model": row["model"], "engine": row["engine"], "precision": row["precision"],
                     "paper_model": row["paper_model"], "x": row[x], "wer_pct": row["wer_pct"],
                     "gap": gap or ""})
    df = pd.DataFrame(rows, columns=["panel", "condition", "model", "engine", "precision", "paper_model", "x",
                                     "wer_pct", "gap"])
    df["on_front"] = False
    for _, grp in df[df["gap"] == ""].groupby("panel"):
        df.loc[grp.index, "on_front"] = pareto_front(grp["x"], grp["wer_pct"])
    df.insert(6, "x_metric", x)
    return df, {"x": x, "xlabel": xlabel, "is_energy": is_energy}


def precision_effect(cells: pd.DataFrame, baseline: str = BASELINE_PRECISION) -> pd.DataFrame:
    """Relative change of each metric from ``baseline`` to every other precision of the same
    (model, engine, condition): ``{m}_rel_change = (value - baseline) / baseline`` (a fraction), with
    ``{m}_gap`` saying why a change could not be computed."""
    rows = []
    keys = ["model", "engine", "condition"]
    for (model, engine, condition), grp in cells.groupby(keys, sort=False):
        base_rows = grp[grp["precision"] == baseline]
        base = base_rows.iloc[0] if len(base_rows) else None
        for precision in precision_order(grp["precision"]):
            if precision == baseline:
                continue
            row = grp[grp["precision"] == precision].iloc[0]
            out = {"model": model, "paper_model": row["paper_model"], "engine": engine, "condition": condition,
                   "noise_kind": row["noise_kind"], "snr_db": row["snr_db"], "precision": precision,
                   "baseline_precision": baseline, "status": row["status"],
                   "baseline_status": base["status"] if base is not None else "missing"}
            for m in EFFECT_METRICS:
                if row["status"] != "ok":
                    gap = status_text(row)
                elif base is None:
                    gap = f"no {baseline} cell in this run"
                elif base["status"] != "ok":
                    gap = f"{baseline} {status_text(base)}"
                else:
                    gap = gap_reason(row, m) or gap_reason(base, m)
                    if gap is None and base[m] == 0:
                        gap = f"{baseline} value is 0"
                b = base[m] if base is not None and base["status"] == "ok" else np.nan
                v = row[m] if row["status"] == "ok" else np.nan
                out[f"{m}_{baseline}"] = b
                out[m] = v
                out[f"{m}_rel_change"] = np.nan if gap else (v - b) / b
                out[f"{m}_gap"] = gap or ""
            rows.append(out)
    cols = ["model", "paper_model", "engine", "condition", "noise_kind", "snr_db", "precision",
            "baseline_precision", "status", "baseline_status"]
    for m in EFFECT_METRICS:
        cols += [f"{m}_{baseline}", m, f"{m}_rel_change", f"{m}_gap"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------------
# findings
# --------------------------------------------------------------------------------------------------
SUPPORTED, REFUTED, NOT_MEASURABLE = "supported", "refuted", "not measurable here"


def _spearman(x, y) -> float:
    rx = pd.Series(list(x), dtype=float).rank()
    ry = pd.Series(list(y), dtype=float).rank()
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _fmt(x, digits=2) -> str:
    return "n/a" if not _is_num(x) else f"{x:.{digits}f}"


def ran_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells that ran (status ok), or all of them when none did: where provenance is read from
    (a never-scheduled cell records no device name or versions)."""
    ok = cells[cells["status"] == "ok"]
    return ok if len(ok) else cells


def _energy_backends(cells) -> str:
    return ", ".join(sorted(set(ran_cells(cells)["energy_backend"]) - {""})) or "none"


def _reasons(rows: pd.DataFrame, limit: int = 3) -> str:
    """Distinct status reasons of ``rows``, each with the engines it applies to."""
    groups: dict = {}
    for _, r in rows.iterrows():
        groups.setdefault(status_text(r), set()).add(r["engine"])
    texts = [f"{reason} ({', '.join(sorted(engines))})" for reason, engines in groups.items()]
    more = f" (+{len(texts) - limit} more)" if len(texts) > limit else ""
    return "; ".join(texts[:limit]) + more


def _paper_ratio_text(paper: pd.DataFrame) -> str:
    e = paper_lookup(paper, ["fig5"], "energy_j")
    ratios = {m: e[(m, "fp16")] / e[(m, "fp32")] for (m, p) in e if p == "fp16" and (m, "fp32") in e}
    if not ratios:
        return "fp16 about half of fp32's energy (Fig. 5)"
    parts = ", ".join(f"{m.replace('whisper-', '')} {r:.2f}" for m, r in
                      sorted(ratios.items(), key=lambda kv: STUDY_MODEL_PARAMS_M.get(kv[0], 1e9)))
    return f"fp16/fp32 energy ratio {parts} (Whisper, faster-whisper, Fig. 5)"


def _paper_series_text(value_of: Callable, fmt: str, what: str) -> str:
    """The study's Whisper models, smallest first: "tiny <value>, base <value>, ... (what)"."""
    vals = [(m, value_of(m)) for m in sorted(STUDY_MODEL_PARAMS_M, key=STUDY_MODEL_PARAMS_M.get)]
    parts = [f"{m.replace('whisper-', '')} {format(v, fmt)}" for m, v in vals if _is_num(v)]
    return (", ".join(parts) + f" ({what})") if parts else what


def _fp16_energy_finding(cells, paper, energy_metric) -> dict:
    claim = "fp16 roughly halves the energy of fp32"
    study = _paper_ratio_text(paper)
    clean = clean_cells(cells)
    pairs, time_pairs = [], []
    for (model, engine), grp in clean.groupby(["model", "engine"]):
        a, b = grp[grp["precision"] == "fp16"], grp[grp["precision"] == BASELINE_PRECISION]
        if a.empty or b.empty or a.iloc[0]["status"] != "ok" or b.iloc[0]["status"] != "ok":
            continue
        a, b = a.iloc[0], b.iloc[0]
        if _is_num(a[energy_metric]) and _is_num(b[energy_metric]) and b[energy_metric] > 0:
            pairs.append((f"{model}/{engine}", a[energy_metric] / b[energy_metric]))
        if _is_num(a["transcribe_s"]) and _is_num(b["transcribe_s"]) and b["transcribe_s"] > 0:
            time_pairs.append((f"{model}/{engine}", a["transcribe_s"] / b["transcribe_s"]))
    time_text = ("; time ratio fp16/fp32 (not energy): " + ", ".join(f"{k} {v:.2f}" for k, v in time_pairs)
                 if time_pairs else "")
    if not pairs:
        fp16 = clean[clean["precision"] == "fp16"]
        fp32 = clean[clean["precision"] == BASELINE_PRECISION]
        if fp16.empty or fp32.empty:
            why = "the run has no clean " + ("fp16" if fp16.empty else "fp32") + " cell"
        elif not (fp16["status"] == "ok").any():
            why = "no fp16 cell ran: " + _reasons(fp16)
        elif not (fp32["status"] == "ok").any():
            why = "no fp32 cell ran: " + _reasons(fp32)
        else:
            why = ""
        if not any_energy(cells, energy_metric):
            why = (why + "; and " if why else "") + \
                f"no energy measured (energy backend: {_energy_backends(cells)}; no power sensor)"
        why = why or "no model has both fp16 and fp32 energy on clean audio"
        return {"claim_id": "fp16_vs_fp32_energy", "claim": claim, "study": study,
                "measured": "no fp16/fp32 energy pair" + time_text, "n": 0, "verdict": NOT_MEASURABLE, "why": why}
    ratios = [r for _, r in pairs]
    med = float(np.median(ratios))
    measured = (f"{energy_metric} fp16/fp32 ratio median {med:.2f} (range {min(ratios):.2f}-{max(ratios):.2f}): "
                + ", ".join(f"{k} {v:.2f}" for k, v in pairs) + time_text)
    if med <= FP16_HALVES_MAX_RATIO:
        verdict, why = SUPPORTED, f"median ratio {med:.2f} <= {FP16_HALVES_MAX_RATIO} (about half)"
    elif med < 1:
        verdict, why = REFUTED, f"fp16 saves {100 * (1 - med):.0f} % on this device, not about half"
    else:
        verdict, why = REFUTED, f"fp16 used {100 * (med - 1):.0f} % more energy than fp32 on this device"
    return {"claim_id": "fp16_vs_fp32_energy", "claim": claim, "study": study, "measured": measured,
            "n": len(pairs), "verdict": verdict, "why": why}


def _best_group(table: pd.DataFrame, min_sizes: int = 2):
    """(engine, precision) group with the most distinct model sizes (ties: precision order, then engine)."""
    best, best_key = None, None
    order = {p: i for i, p in enumerate(precision_order(table["precision"]))}
    for (engine, precision), grp in table.groupby(["engine", "precision"]):
        n = grp["model_params_m"].nunique()
        key = (n, -order.get(precision, 99))  # ties: first precision, then first engine (alphabetical)
        if n >= min_sizes and (best_key is None or key > best_key):
            best, best_key = (engine, precision, grp), key
    return best


def _size_noise_finding(cells, paper, noisy_amplitude=0.1) -> dict:
    claim = "bigger models degrade less under noise"
    pc = paper_lookup(paper, ["fig4"], "wer_pct", CLEAN)
    pn = paper_lookup(paper, ["fig4"], "wer_pct", STUDY_NOISY_KIND)
    study = _paper_series_text(lambda m: pn.get((m, "fp16"), np.nan) - pc.get((m, "fp16"), np.nan), "+.1f",
                               "pp WER noisy - clean, uniform noise amplitude 0.1, fp16, Fig. 4")
    noisy = study_noisy_condition(cells, noisy_amplitude)
    noisy_conds = [noisy] if noisy else sorted(set(cells.loc[cells["noise_kind"] != CLEAN, "condition"]))
    where = (f"condition {noisy}" if noisy else
             f"mean over {len(noisy_conds)} noise condition(s)" if noisy_conds else "")
    ok = cells[(cells["status"] == "ok") & cells["wer_pct"].notna()]
    rows = []
    for (model, engine, precision), grp in ok.groupby(["model", "engine", "precision"]):
        clean = grp[grp["noise_kind"] == CLEAN]
        nz = grp[grp["condition"].isin(noisy_conds)]
        if clean.empty or len(nz) != len(noisy_conds) or not noisy_conds:
            continue
        rows.append({"model": model, "engine": engine, "precision": precision,
                     "model_params_m": grp["model_params_m"].max(),
                     "degradation": nz["wer_pct"].mean() - clean["wer_pct"].iloc[0]})
    table = pd.DataFrame(rows, columns=["model", "engine", "precision", "model_params_m", "degradation"])
    table = table[table["model_params_m"].notna()]
    best = _best_group(table)
    if not noisy_conds:
        why = "the run has no noise condition"
    elif best is None:
        n = table["model_params_m"].nunique()
        why = ("no model has both clean and noisy WER" if table.empty else
               f"needs >= 2 model sizes measured clean and noisy at the same engine and precision (found {n})")
    if not noisy_conds or best is None:
        return {"claim_id": "size_vs_noise_robustness", "claim": claim, "study": study,
                "measured": "-", "n": len(table), "verdict": NOT_MEASURABLE, "why": why}
    engine, precision, grp = best
    grp = grp.sort_values("model_params_m")
    rho = _spearman(grp["model_params_m"], grp["degradation"])
    measured = (f"WER increase ({where}, {engine} {precision}): "
                + ", ".join(f"{r.model} ({r.model_params_m:.0f} M) {r.degradation:+.1f} pp" for r in grp.itertuples())
                + f"; Spearman rho(size, increase) = {_fmt(rho)}")
    verdict = SUPPORTED if rho < 0 else REFUTED
    why = ("the increase falls as size grows" if verdict == SUPPORTED else
           "the increase does not fall as size grows" if rho > 0 else "no monotone relation")
    return {"claim_id": "size_vs_noise_robustness", "claim": claim, "study": study, "measured": measured,
            "n": len(grp), "verdict": verdict, "why": why}


def _size_energy_finding(cells, paper, energy_metric) -> dict:
    claim = "bigger models use more energy"
    e = paper_lookup(paper, ["fig5"], "energy_j")
    study = _paper_series_text(lambda m: e.get((m, "fp16"), np.nan), ".0f", "J, fp16, Fig. 5")
    ok = clean_cells(cells)
    ok = ok[(ok["status"] == "ok") & ok["model_params_m"].notna()]
    with_e = ok[ok[energy_metric].notna()]
    best = _best_group(with_e)
    if best is None:
        proxy = _best_group(ok[ok["transcribe_s"].notna()])
        measured = "-"
        if proxy is not None:
            engine, precision, grp = proxy
            grp = grp.sort_values("model_params_m")
            measured = (f"proxy, transcription time ({engine} {precision}): "
                        + ", ".join(f"{r.model} {r.transcribe_s:.1f} s" for r in grp.itertuples())
                        + f"; Spearman rho(size, time) = {_fmt(_spearman(grp['model_params_m'], grp['transcribe_s']))}")
        if not any_energy(cells, energy_metric):
            why = f"no energy measured (energy backend: {_energy_backends(cells)}; no power sensor)"
        else:
            why = "needs >= 2 model sizes with energy at the same engine and precision"
        return {"claim_id": "size_vs_energy", "claim": claim, "study": study, "measured": measured,
                "n": 0, "verdict": NOT_MEASURABLE, "why": why}
    engine, precision, grp = best
    grp = grp.sort_values("model_params_m")
    rho = _spearman(grp["model_params_m"], grp[energy_metric])
    measured = (f"{energy_metric} ({engine} {precision}, clean): "
                + ", ".join(f"{r['model']} {r[energy_metric]:.1f} J" for _, r in grp.iterrows())
                + f"; Spearman rho(size, energy) = {_fmt(rho)}")
    verdict = SUPPORTED if rho > 0 else REFUTED
    why = "energy grows with size" if verdict == SUPPORTED else "energy does not grow with size"
    return {"claim_id": "size_vs_energy", "claim": claim, "study": study, "measured": measured,
            "n": len(grp), "verdict": verdict, "why": why}


FINDINGS_COLUMNS = ["claim_id", "claim", "study", "measured", "n", "verdict", "why"]


def findings(cells: pd.DataFrame, paper: pd.DataFrame | None = None, energy_metric: str = "energy_j",
             noisy_amplitude: float = 0.1) -> pd.DataFrame:
    """One row per claim of the study: what the study reported, what this run measured, a verdict."""
    paper = empty_paper() if paper is None else paper
    rows = [_fp16_energy_finding(cells, paper, energy_metric),
            _size_noise_finding(cells, paper, noisy_amplitude),
            _size_energy_finding(cells, paper, energy_metric)]
    return pd.DataFrame(rows, columns=FINDINGS_COLUMNS)


def findings_markdown(table: pd.DataFrame) -> str:
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| claim | the study (Jetson Orin Nano) | this run | verdict |", "|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {cell(r.claim)} | {cell(r.study)} | {cell(r.measured)} | "
                     f"**{cell(r.verdict)}**: {cell(r.why)} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# provenance (footer of every figure, summary of results/README.md)
# --------------------------------------------------------------------------------------------------
def _uniq(series) -> list[str]:
    return sorted(set(str(v) for v in series if str(v) not in ("", "nan")))


def provenance(cells: pd.DataFrame) -> str:
    if cells.empty:
        return "This run: no cells in the table."
    cells = ran_cells(cells)
    dev = "; ".join(f"{name} ({kind})" if name else kind for name, kind in
                    sorted(set(zip(cells["device_name"], cells["device"]))) if name or kind) or "device not recorded"
    versions = []
    for col, name in (("edgeasr_version", "edgeasr"), ("faster_whisper_version", "faster-whisper"),
                      ("ctranslate2_version", "ctranslate2"), ("torch_version", "torch"),
                      ("transformers_version", "transformers"), ("python_version", "python")):
        vals = _uniq(cells[col])
        if vals:
            versions.append(f"{name} {'/'.join(vals)}")
    finished = _uniq(cells["finished_utc"])
    parts = [f"This run: {dev}", f"energy backend: {_energy_backends(cells)}"]
    if versions:
        parts.append(", ".join(versions))
    if finished:
        parts.append(f"finished {finished[-1]}")
    return " · ".join(parts)


# --------------------------------------------------------------------------------------------------
# plotting helpers
# --------------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.05)
    plt.rcParams.update({"svg.hashsalt": "edgeasr", "axes.titleweight": "bold", "hatch.linewidth": 0.6,
                         "legend.frameon": True, "legend.framealpha": 0.92})
    return plt, sns


def precision_colors(precisions: Iterable[str]) -> dict:
    import seaborn as sns
    order = precision_order(precisions)
    pal = sns.color_palette("colorblind", max(len(order), 3))
    return {p: pal[i % len(pal)] for i, p in enumerate(order)}


def _value_limit(values, floor: float) -> float:
    vals = [v for v in values if _is_num(v) and v > 0]
    return max(vals) * 1.12 if vals else floor


def _gap_handle():
    from matplotlib.patches import Patch
    return Patch(facecolor=GAP_FACE, edgecolor=GAP_EDGE, hatch="////", label="no measurement (reason in the bar)")


def _paper_handle(precision_note: str = "", wrap: bool = False):
    from matplotlib.lines import Line2D
    kw = {k: v for k, v in PAPER_MARKER.items() if k not in ("zorder",)}
    label = PAPER_LABEL + precision_note
    if wrap:
        label = label.replace("), measured", "),\nmeasured")
    return Line2D([], [], label=label, **kw)


def _blend(color, amount: float):
    """``color`` mixed with white: ``amount`` of the colour, the rest white."""
    from matplotlib.colors import to_rgb
    return tuple(1 - amount * (1 - c) for c in to_rgb(color))


def _draw_gap(ax, pos, thickness, lim, text, orient, fontsize=6.5, marker_at=None, color=None):
    """Hatched placeholder over the whole value axis (hatch in the bar's colour, so the reader still
    sees which series it stands for), its reason written beside (never under) a study marker
    ``marker_at`` on the same bar, on the side with more room."""
    box = dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75)
    if not _is_num(marker_at):
        at, forward = lim * 0.012, True
    elif marker_at < lim * 0.5:
        at, forward = marker_at + lim * 0.035, True
    else:
        at, forward = marker_at - lim * 0.035, False
    room = ((lim - at) / lim if forward else at / lim) - 0.02
    face = GAP_FACE if color is None else _blend(color, 0.2)
    edge = GAP_EDGE if color is None else color
    if orient == "h":
        ax.barh(pos, lim, height=thickness, color=face, edgecolor=edge, hatch="////", linewidth=0, zorder=1)
        t = ax.text(at, pos, text, ha="left" if forward else "right", va="center", fontsize=fontsize,
                    color="#333333", zorder=3, clip_on=True, bbox=box)
    else:
        ax.bar(pos, lim, width=thickness, color=face, edgecolor=edge, hatch="////", linewidth=0, zorder=1)
        t = ax.text(pos, at, text, ha="center", va="bottom" if forward else "top", rotation=90,
                    fontsize=fontsize, color="#333333", zorder=3, clip_on=True, bbox=box)
    _fit_later(ax, t, room, orient)


def _fit_later(ax, text, room: float, orient: str):
    """Register ``text`` to be shortened (with an ellipsis) to ``room`` x the axis length once the
    layout is final (see :func:`fit_texts`)."""
    if not hasattr(ax, "_edgeasr_fit"):
        ax._edgeasr_fit = []
    ax._edgeasr_fit.append((text, text.get_text(), room, orient))


def fit_texts(fig) -> None:
    """Shorten registered in-bar texts so that none runs past its axis (measured after layout)."""
    pending = [(ax, item) for ax in fig.axes for item in getattr(ax, "_edgeasr_fit", [])]
    if not pending:
        return
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ax, (text, full, room, orient) in pending:
        box = ax.get_window_extent(renderer)
        avail = (box.width if orient == "h" else box.height) * room

        def size():
            ext = text.get_window_extent(renderer)
            return ext.width if orient == "h" else ext.height
        n = len(full)
        while n > 8 and size() > avail:
            n -= max(2, n // 10)
            text.set_text(short_reason(full, n))


def draw_grouped_bars(ax, data: pd.DataFrame, group_col: str, hue_col: str, groups: list, hues: list,
                      colors: dict, orient: str, lim: float, gap_chars: int = 60, show_paper: bool = True) -> int:
    """Grouped bars with CI whiskers, hatched gaps spanning the whole value axis, study markers on top.
    Returns how many study markers were drawn."""
    n = max(len(hues), 1)
    width = 0.8 / n
    drawn = 0
    idx = {(r[group_col], r[hue_col]): r for _, r in data.iterrows()}
    for gi, group in enumerate(groups):
        for hi, hue in enumerate(hues):
            row = idx.get((group, hue))
            if row is None:
                continue
            pos = gi + (hi - (n - 1) / 2) * width
            if row["gap"]:
                _draw_gap(ax, pos, width * 0.92, lim, short_reason(row["gap"], gap_chars), orient,
                          marker_at=row.get("paper_value") if show_paper else None, color=colors[hue])
            elif _is_num(row["value"]):  # (a study-only row has no value and no gap: its marker alone)
                value = row["value"]
                err = None
                if "lo" in row and _is_num(row.get("lo")) and _is_num(row.get("hi")):
                    err = [[max(value - row["lo"], 0)], [max(row["hi"] - value, 0)]]
                if orient == "h":
                    ax.barh(pos, value, height=width * 0.92, color=colors[hue], zorder=2, xerr=err,
                            error_kw=dict(ecolor="#222222", elinewidth=0.9, capsize=2.5))
                else:
                    ax.bar(pos, value, width=width * 0.92, color=colors[hue], zorder=2, yerr=err,
                           error_kw=dict(ecolor="#222222", elinewidth=0.9, capsize=2.5))
            if show_paper and _is_num(row.get("paper_value")):
                xy = (row["paper_value"], pos) if orient == "h" else (pos, row["paper_value"])
                ax.plot(*xy, **PAPER_MARKER)
                drawn += 1
    ticks = list(range(len(groups)))
    if orient == "h":
        ax.set_yticks(ticks)
        ax.set_ylim(len(groups) - 0.5, -0.5)
        ax.set_xlim(0, lim)
        ax.grid(axis="y", visible=False)
    else:
        ax.set_xticks(ticks)
        ax.set_xlim(-0.5, len(groups) - 0.5)
        ax.set_ylim(0, lim)
        ax.grid(axis="x", visible=False)
    return drawn


def _footnote_lines(notes: list[str], width_in: float, fontsize: float = 7.0) -> list[str]:
    chars = max(40, int(width_in * 72 / (fontsize * 0.6)))
    lines = []
    for note in notes:
        lines.extend(textwrap.wrap(note, chars) or [""])
    return lines


def new_figure(nrows, ncols, panel_w, panel_h, notes: list[str], extra_w: float = 0.0, subtitle: bool = False,
               legend_rows: int = 0, legend_right_in: float = 0.0, **subplot_kw):
    """A figure whose axes area is (ncols*panel_w + extra_w) x sum(row heights), with a band above for
    the title (+ subtitle) and a legend of ``legend_rows`` rows, a column of ``legend_right_in`` inches on
    the right for a tall legend, and a footnote block (``notes``) below. ``panel_h`` may be a list (one
    height per row)."""
    plt, _ = _pyplot()
    width = ncols * panel_w + extra_w + legend_right_in
    lines = _footnote_lines(notes, width)
    foot = 0.14 * len(lines) + 0.15
    title_in = 0.38 + (0.2 if subtitle else 0.0)
    top = title_in + (0.21 * legend_rows + 0.14 if legend_rows else 0.0)
    heights = list(panel_h) if isinstance(panel_h, (list, tuple)) else [panel_h] * nrows
    height = sum(heights) + foot + top
    if len(set(heights)) > 1:
        subplot_kw.setdefault("gridspec_kw", {})["height_ratios"] = heights
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained",
                             **subplot_kw)
    right = legend_right_in / width
    fig.get_layout_engine().set(rect=(0, foot / height, 1 - right, 1 - (foot + top) / height), h_pad=0.06,
                                w_pad=0.06)
    fig._edgeasr_band = (height, title_in)
    fig._edgeasr_right = (right, (foot + top) / height, top / height)
    if lines:
        fig.text(0.008, 0.008, "\n".join(lines), ha="left", va="bottom", fontsize=7, color="#444444",
                 linespacing=1.25)
    return fig, axes


def _title(fig, title: str, subtitle: str = ""):
    """Title (and subtitle) at the top left, in the band ``new_figure`` reserved; the font shrinks
    (down to 8 pt) rather than let a long title run off a narrow figure."""
    height, _ = fig._edgeasr_band
    width_pt = fig.get_size_inches()[0] * 72 * 0.97

    def size(text, largest):
        return max(8.0, min(largest, width_pt / (max(len(text), 1) * 0.62)))
    y = 1 - 0.08 / height
    fig.text(0.01, y, title, ha="left", va="top", fontsize=size(title, 11.5), fontweight="bold")
    if subtitle:
        fig.text(0.01, y - 0.27 / height, subtitle, ha="left", va="top", fontsize=size(subtitle, 9),
                 color="#333333")


def _legend_top(fig, handles, ncol):
    """Legend in the band under the title (space reserved by ``new_figure(legend_rows=...)``)."""
    if handles:
        height, title_in = fig._edgeasr_band
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - title_in / height), ncol=ncol,
                   fontsize=8)


def _legend_right(fig, handles, **kw):
    """Legend in the right-hand column reserved by ``new_figure(legend_right_in=...)``, top-aligned with
    the axes."""
    right, _, top = fig._edgeasr_right
    if handles:
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1 - right + 0.005, 1 - top), fontsize=7.5,
                   borderaxespad=0, **kw)


def legend_width_in(labels: Iterable[str], fontsize: float = 7.5, title: str = "") -> float:
    """Inches a one-column legend needs for ``labels`` (estimate; marker and padding included)."""
    longest = max([len(line) for l in labels for line in str(l).split("\n")] + [len(title) * 1.05, 8])
    return longest * fontsize * 0.56 / 72 + 0.75


def _legend_ncol(labels: list[str], width_in: float, fontsize: float = 8.0) -> int:
    """Most legend columns (at most 4) whose entries fit side by side in ``width_in``."""
    entry = max(legend_width_in(labels, fontsize) - 0.25, 0.5)
    return max(1, min(len(labels), 4, int((width_in - 0.3) // entry)))


def _legend_rows(labels: list[str], ncol: int) -> int:
    """Text lines the legend needs (entries fill rows of ``ncol``; a wrapped label makes its row taller)."""
    lines = [str(l).count("\n") + 1 for l in labels]
    return sum(max(lines[i:i + ncol]) for i in range(0, len(lines), ncol))


def _notes(cells, extra: list[str] | None = None) -> list[str]:
    return [n for n in (extra or []) if n] + [provenance(cells)]


def save_figure(fig, outs: list, dpi: int = 150) -> None:
    """Write ``fig`` to every path of ``outs`` (format from the suffix), each atomically (edgeasr.atomic)."""
    import matplotlib.pyplot as plt

    from .atomic import atomic_path

    fit_texts(fig)
    for out in outs:
        out = Path(out)
        fmt = out.suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            raise ValueError(f"{out}: unsupported figure format {fmt!r} (expected one of {FORMATS})")
        meta = {"Date": None} if fmt in ("svg", "pdf") else {"Software": None}
        if fmt == "pdf":
            meta = {"CreationDate": None}
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
    plt.close(fig)


def write_text_atomic(path, text: str) -> None:
    from .atomic import write_text

    write_text(path, text)


def write_csv_atomic(df: pd.DataFrame, path) -> None:
    write_text_atomic(path, df.to_csv(index=False))


def _empty_panel(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#555555",
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _gap_notes(gaps: Iterable[str], prefix="Hatched = no measurement. Reasons: ") -> str:
    uniq = list(dict.fromkeys(g for g in gaps if g))
    if not uniq:
        return ""
    shown = uniq[:6]
    more = f"; and {len(uniq) - 6} more (see results/tables/cells.csv)" if len(uniq) > 6 else ""
    return prefix + "; ".join(shown) + more + "."


def _paper_missing_note(data: pd.DataFrame, show_paper: bool, paper: pd.DataFrame, figures: Iterable[str]) -> str:
    """Why no study marker appears although the study has values (empty when some do appear)."""
    if not show_paper or data["paper_value"].notna().any():
        return ""
    mapped = set(data["paper_model"]) - {""}
    if not mapped:
        return "No model of this run maps to a model of the study (paper_model is empty), so no study values are drawn."
    rows = paper[paper["figure"].isin(list(figures)) & paper["paper_model"].isin(mapped)]
    if len(rows):
        combos = sorted(set(rows["paper_engine"] + " " + rows["precision"]))
        return ("The study has values for these models only with " + ", ".join(combos) +
                ", which this run does not have, so no study values are drawn.")
    return "The study reports no value for the models of this run in this figure."


# --------------------------------------------------------------------------------------------------
# the figures
# --------------------------------------------------------------------------------------------------
def plot_fig4(cells, paper, show_paper=True, fig4_noisy_amplitude=0.1, **_):
    _pyplot()  # theme first: legend proxies below take their style from it
    from matplotlib.patches import Patch
    import seaborn as sns
    data = fig4_data(cells, paper, fig4_noisy_amplitude)
    if not show_paper:
        data = data[~data["study_only"]]
    noisy = study_noisy_condition(cells, fig4_noisy_amplitude)
    amp = cells.loc[cells["condition"] == noisy, "noise_amplitude"].max() if noisy else np.nan
    noisy_label = (f"noisy: {noisy} (uniform noise, amplitude {amp:g})" if _is_num(amp) else
                   f"noisy: {noisy} (uniform noise)" if noisy else "noisy (not in this run)")
    pal = sns.color_palette("colorblind", 4)
    colors = {"clean": pal[0], "noisy": pal[1]}
    handles = [Patch(color=colors["clean"], label="clean"), Patch(color=colors["noisy"], label=noisy_label)]
    if show_paper and data["paper_value"].notna().any():
        handles.append(_paper_handle(" (fp16)", wrap=True))
    if (data["gap"] != "").any():
        handles.append(_gap_handle())
    engines = sorted(data["engine"].unique())
    precs = precision_order(data["precision"])
    # one row of y labels per engine, shared by its panels: the run's models, then the study's alone
    groups = {e: list(dict.fromkeys(data.loc[data["engine"] == e, "model_label"])) for e in engines}
    study_only = set(data.loc[data["study_only"], "model_label"])
    row_h = [(0.55 if len(groups[e]) <= 8 else 0.46) * len(groups[e]) + 0.9 for e in engines] or [2.0]
    label_w = max([len(g) for gs in groups.values() for g in gs] + [20]) * 8.5 * 0.55 / 72
    notes = [_gap_notes(data["gap"]), "Bars: this run's corpus WER with its bootstrap 95 % interval over utterances.",
             *not_run_notes(cells, study_models(paper, ["fig4"]), markers=show_paper, by_engine=True),
             _paper_missing_note(data, show_paper, paper, ["fig4"])]
    fig, axes = new_figure(max(len(engines), 1), max(len(precs), 1), 3.6, row_h, _notes(cells, notes),
                           extra_w=max(1.6, label_w + 0.4),
                           legend_rows=_legend_rows([h.get_label() for h in handles], 2))
    lim = _value_limit(list(data["hi"]) + list(data["value"]) + (list(data["paper_value"]) if show_paper else []),
                       100.0)
    for r, engine in enumerate(engines):
        labelled = False
        for c, precision in enumerate(precs):
            ax = axes[r][c]
            sub = data[(data["engine"] == engine) & (data["precision"] == precision)]
            if sub.empty:
                _empty_panel(ax, f"{engine} · {precision}\nnot in this run's matrix")
                continue
            draw_grouped_bars(ax, sub, "model_label", "which", groups[engine], ["clean", "noisy"], colors, "h",
                              lim, show_paper=show_paper)
            ax.set_yticklabels(groups[engine] if not labelled else [], fontsize=8.5)
            for tick in ax.get_yticklabels():
                if tick.get_text() in study_only:
                    tick.set(color="#555555", style="italic")
            labelled = True
            alone = " (study only)" if sub["study_only"].all() else ""
            ax.set_title(f"{engine} · {precision}{alone}", fontsize=9.5)
            ax.set_xlabel(METRIC_LABELS["wer_pct"] if r == len(engines) - 1 else "")
    if not engines:
        _empty_panel(axes[0][0], "no cells in the table")
    _legend_top(fig, handles, ncol=2)
    _title(fig, "Fig. 4 (study) — WER on clean vs noisy audio, per model")
    return fig


def _bar_panels(cells, data, panels, colors, show_paper, title, notes_extra, paper_figs, subtitle=""):
    """Vertical grouped bars: rows = panels [(panel key, axis label, floor)], columns = engines."""
    from matplotlib.patches import Patch
    handles = [Patch(color=colors[p], label=p) for p in precision_order(data["precision"])]
    if show_paper and data["paper_value"].notna().any():
        handles.append(_paper_handle(wrap=True))
    if (data["gap"] != "").any():
        handles.append(_gap_handle())
    engines = sorted(data["engine"].unique())
    n_models = max([data[data["engine"] == e]["model"].nunique() for e in engines] + [1])
    n_prec = max([data[data["engine"] == e]["precision"].nunique() for e in engines] + [1])
    panel_w = max(3.4, 0.34 * n_models * n_prec + 1.2)
    fig_w = max(len(engines), 1) * panel_w + 0.6
    ncol = _legend_ncol([h.get_label() for h in handles], fig_w)
    notes = [_gap_notes(data["gap"])] + notes_extra + [_paper_missing_note(data, show_paper, *paper_figs)]
    fig, axes = new_figure(len(panels), max(len(engines), 1), panel_w, 3.4, _notes(cells, notes),
                           extra_w=0.6, subtitle=bool(subtitle),
                           legend_rows=_legend_rows([h.get_label() for h in handles], ncol))
    for r, (key, ylabel, floor) in enumerate(panels):
        pdata = data[data["panel"] == key] if "panel" in data else data
        vals = list(pdata["value"]) + (list(pdata["paper_value"]) if show_paper else [])
        lim = _value_limit(vals, floor)
        for c, engine in enumerate(engines):
            ax = axes[r][c]
            sub = pdata[pdata["engine"] == engine]
            groups = list(dict.fromkeys(sub["model_label"]))
            hues = precision_order(sub["precision"])
            draw_grouped_bars(ax, sub, "model_label", "precision", groups, hues, colors, "v", lim,
                              gap_chars=44, show_paper=show_paper)
            ax.set_xticklabels([g.replace(" (", "\n(") for g in groups], fontsize=8)
            ax.set_ylabel(ylabel if c == 0 else "")
            ax.set_title(engine if r == 0 else "", fontsize=9.5)
    if not engines:
        _empty_panel(axes[0][0], "no clean cells in the table")
    _legend_top(fig, handles, ncol)
    _title(fig, title, subtitle)
    return fig


def plot_fig5(cells, paper, show_paper=True, energy_metric="energy_j", **_):
    _pyplot()  # theme first: legend proxies below take their style from it
    data = fig5_data(cells, paper, energy_metric)
    colors = precision_colors(cells["precision"])
    measured = any_energy(cells, energy_metric)
    subtitle = ("" if measured else
                f"No energy measured here (energy backend: {_energy_backends(cells)})"
                + (" — the study's values are shown" if show_paper else ""))
    notes = ["Study: energy above a 515 mW idle baseline on one rail, tegrastats samples with GPU load > 40 %; "
             f"this run: {energy_metric} (see docs/figures.md)."] if show_paper else []
    return _bar_panels(cells, data, [(None, METRIC_LABELS[energy_metric], 100.0)], colors, show_paper,
                       "Fig. 5 (study) — energy per model at each precision, clean audio", notes,
                       (paper, ["fig5", "fig8"]), subtitle)


def plot_fig7(cells, paper, show_paper=True, memory_metric="peak_rss_mb", rtf_include_load=False, **_):
    _pyplot()  # theme first: legend proxies below take their style from it
    data = fig7_data(cells, paper, memory_metric, rtf_include_load)
    colors = precision_colors(cells["precision"])
    rtf_label = METRIC_LABELS["rtf_with_load" if rtf_include_load else "rtf"]
    notes = []
    if show_paper:
        notes.append("Study: RTF = whole run incl. model load / audio; memory = system RAM in use (unified memory, "
                     "OS included), so its memory markers sit far above a process's RSS.")
    return _bar_panels(cells, data, [("rtf", rtf_label, 1.0), ("memory", METRIC_LABELS[memory_metric], 1000.0)],
                       colors, show_paper, "Fig. 7 (study) — real-time factor and peak memory, clean audio", notes,
                       (paper, ["fig7"]))


def _place_labels(ax, xs, ys, texts, fontsize=7.5, color="#222222", style="normal", taken=None, radii=None,
                  obstacles=()):
    """Greedy label placement: try spots around each point (right, left, above, below, diagonals, then
    farther out) and keep the first whose box stays inside the axes and overlaps no earlier label and no
    point of ``obstacles`` ((x, y, radius in pt) in data coordinates). Box sizes are estimated from the
    text length. Returns the occupied boxes, to be passed on as ``taken``."""
    fig = ax.figure
    fig.draw_without_rendering()  # final layout, so that the boxes below are where the labels will be
    px_per_pt = fig.dpi / 72
    taken = [] if taken is None else taken
    for ox, oy, r in obstacles:
        if _is_num(ox) and _is_num(oy):
            cx, cy = ax.transData.transform((ox, oy))
            taken.append((cx - r * px_per_pt, cy - r * px_per_pt, cx + r * px_per_pt, cy + r * px_per_pt))
    frame = ax.get_window_extent()
    radii = list(radii) if radii is not None else [4.0] * len(list(texts))

    def overlaps(box):
        return any(not (box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3]) for b in taken)

    for x, y, text, r in zip(xs, ys, texts, radii):
        cx, cy = ax.transData.transform((x, y))
        w, h = len(text) * 0.56 * fontsize, 1.2 * fontsize  # pt
        d = 0.7 * r + 1
        spots = []
        for extra in (0.0, 8.0, 18.0, 30.0, 44.0, 60.0):
            spots += [(r + 2 + extra, -h / 2), (-r - 2 - w - extra, -h / 2), (-w / 2, r + 1 + extra),
                      (-w / 2, -r - 1 - h - extra), (d + extra, d + extra), (d + extra, -d - h - extra),
                      (-d - w - extra, d + extra), (-d - w - extra, -d - h - extra)]
        choice = fallback = None
        for lx, ly in spots:
            box = (cx + lx * px_per_pt, cy + ly * px_per_pt, cx + (lx + w) * px_per_pt, cy + (ly + h) * px_per_pt)
            inside = frame.x0 <= box[0] and box[2] <= frame.x1 and frame.y0 <= box[1] and box[3] <= frame.y1
            if inside and not overlaps(box):
                choice = (lx, ly)
                break
            if inside and fallback is None:
                fallback = (lx, ly)  # no free spot: at least stay inside the axes
        choice = choice or fallback or spots[0]
        lx, ly = choice
        taken.append((cx + lx * px_per_pt, cy + ly * px_per_pt, cx + (lx + w) * px_per_pt, cy + (ly + h) * px_per_pt))
        far = spots.index(choice) >= 8  # moved away from its point: draw a leader line
        ax.annotate(text, (x, y), xytext=(lx, ly + 0.1 * fontsize), textcoords="offset points", fontsize=fontsize,
                    color=color, style=style, ha="left", va="bottom", zorder=7, in_layout=False,
                    arrowprops=dict(arrowstyle="-", color="#999999", linewidth=0.6, shrinkA=0, shrinkB=r)
                    if far else None)
    return taken


def _stack_labels(ax, x, ys, texts, fontsize=6.5):
    """Labels right of points at (x, ys), stacked so that none overlaps (pushed up, then down from the
    top edge), with a leader line when one had to move."""
    fig = ax.figure
    fig.draw_without_rendering()  # final layout
    px, step = fig.dpi / 72, 1.3 * fontsize * fig.dpi / 72
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    y0 = [ax.transData.transform((x, ys[i]))[1] for i in order]
    at = list(y0)
    for k in range(1, len(at)):
        at[k] = max(at[k], at[k - 1] + step)
    top = ax.get_window_extent().y1 - step / 2
    for k in reversed(range(len(at))):
        at[k] = min(at[k], top if k == len(at) - 1 else at[k + 1] - step)
    for k, i in enumerate(order):
        moved = abs(at[k] - y0[k]) > 1.5
        ax.annotate(texts[i], (x, ys[i]), xytext=(9, (at[k] - y0[k]) / px), textcoords="offset points",
                    fontsize=fontsize, color="#555555", style="italic", ha="left", va="center", zorder=7,
                    in_layout=False, arrowprops=dict(arrowstyle="-", color="#999999", linewidth=0.6, shrinkA=0,
                                                     shrinkB=4) if moved else None)


def _log_if_wide(ax, values, axis="x"):
    """Log scale (ticks 1-2-5, plain numbers) when the values span more than a factor 15."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    vals = [v for v in values if _is_num(v) and v > 0]
    if len(vals) >= 2 and max(vals) / min(vals) > 15:
        axis_obj = ax.xaxis if axis == "x" else ax.yaxis
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        axis_obj.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis_obj.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis_obj.set_minor_formatter(NullFormatter())
        return True
    return False


ENGINE_MARKERS = ["o", "s", "^", "v", "P", "X"]


def plot_fig8(cells, paper, show_paper=True, fig8_precision="auto", energy_metric="energy_j",
              memory_metric="peak_rss_mb", **_):
    plt, sns = _pyplot()
    data, meta = fig8_data(cells, fig8_precision, energy_metric, memory_metric, paper if show_paper else None)
    prec, is_energy, study = meta["precision"], meta["is_energy"], meta["study"]
    ok = data[data["gap"] == ""]
    pts, aside = study[study["x"].notna()], study[study["x"].isna()]  # aside: the study has no x for them
    pairs = ran_pairs(cells)  # (model, engine) with no cell that ran: named once, by not_run_notes
    gaps = [f"{r.model} · {r.engine}: {r.gap}" for r in data[data["gap"] != ""].itertuples()
            if (r.model, r.engine) in pairs]
    notes = []
    if gaps:
        notes.append(_gap_notes(gaps, prefix=f"Not plotted ({prec}, clean; no measurement): "))
    notes += not_run_notes(cells, study_models(paper, ["fig4", "fig8"]), markers=show_paper, by_engine=True)
    if len(aside):
        notes.append("Right-hand strip: the study's models with a WER but no run time in the study (it gives RTF "
                     "for its Whisper models only), at their clean WER.")
    if not is_energy:
        notes.append(f"No energy measured in this run (energy backend: {_energy_backends(cells)}): the x axis is "
                     "transcription time instead of energy.")
        if len(pts):
            audio = clean_cells(cells)["audio_s"].median()
            notes.append(f"Study points: x = its RTF x {PAPER_AUDIO_S} s of audio (model load included)"
                         + (f"; this run's clean audio: {audio:.1f} s." if _is_num(audio) else "."))
    elif len(pts):
        notes.append("Study points: energy above idle (Fig. 8) against clean WER (Fig. 4), fp16.")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker=ENGINE_MARKERS[i % len(ENGINE_MARKERS)], color="#777777", linestyle="none",
                      markeredgecolor="black", markersize=8, label=f"this run, {e}")
               for i, e in enumerate(sorted(ok["engine"].unique()))]
    if len(study):
        handles.append(_paper_handle(" (fp16)", wrap=True))
    if len(ok) and ok["memory"].notna().any():
        mem = ok["memory"].astype(float)
        for frac in (0.25, 1.0):
            handles.append(Line2D([], [], marker="o", linestyle="none", markerfacecolor="none",
                                  markeredgecolor="#555555", markersize=math.sqrt(40 + 360 * frac),
                                  label=f"{METRIC_LABELS[memory_metric].split(' (')[0]}\n{mem.max() * frac:,.0f} MB"))
    strip_w = max([len(m) for m in aside["paper_model"]] + [14]) * 6.5 * 0.56 / 72 + 0.45 if len(aside) else 0.0
    crowd = max(len(ok) + len(pts) - 12, 0)  # more room for many labelled points
    main_w, main_h = min(7.8 + 0.15 * crowd, 11.0), min(5.4 + 0.06 * crowd, 7.0)
    fig, axes = new_figure(1, 2 if len(aside) else 1, (main_w + strip_w) / (2 if len(aside) else 1), main_h,
                           _notes(cells, notes), extra_w=0.9, subtitle=True,
                           legend_right_in=legend_width_in([h.get_label() for h in handles]),
                           **(dict(sharey=True, gridspec_kw={"width_ratios": [main_w, strip_w]}) if len(aside) else {}))
    ax = axes[0][0]
    all_x = list(ok["x"]) + list(pts["x"])
    all_y = list(ok["wer_pct"]) + list(pts["wer_pct"]) + list(aside["wer_pct"])
    taken = []
    if len(ok):
        mem = ok["memory"].astype(float)
        mem_ok = mem.notna().any()
        sizes = (40 + 360 * (mem / mem.max()) if mem_ok else pd.Series(80.0, index=ok.index)).fillna(40)
        engines = sorted(ok["engine"].unique())
        norm = plt.Normalize(vmin=np.nanmin(ok["rtf"]) if ok["rtf"].notna().any() else 0,
                             vmax=np.nanmax(ok["rtf"]) if ok["rtf"].notna().any() else 1)
        cmap = plt.get_cmap("viridis")
        for i, engine in enumerate(engines):
            sub = ok[ok["engine"] == engine]
            ax.scatter(sub["x"], sub["wer_pct"], s=sizes[sub.index], c=sub["rtf"], cmap=cmap, norm=norm,
                       marker=ENGINE_MARKERS[i % len(ENGINE_MARKERS)], edgecolors="black", linewidths=0.6,
                       zorder=4, label=f"this run, {engine}")
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        cb = fig.colorbar(sm, ax=ax, pad=0.02, fraction=0.05)
        cb.set_label("real-time factor (this run)")
        many = len(engines) > 1
        texts = [f"{r.model}" + (f" · {r.engine}" if many else "") for r in ok.itertuples()]
    _log_if_wide(ax, all_x, "x")
    if len(pts):
        ax.scatter(pts["x"], pts["wer_pct"], **PAPER_MARKER_SCATTER)
    xlabel = meta["xlabel"] if is_energy else "transcription time (s) — no energy measured here"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(METRIC_LABELS["wer_pct"])
    if not len(ok) and not len(pts):
        _empty_panel(ax, f"no clean {prec} cell with a measurement")
    if len(ok) or len(pts) or len(aside):
        ys = [v for v in all_y if _is_num(v) and v > 0] or [1.0]
        if _log_if_wide(ax, ys, "y"):  # WERs from 2 % to 40 %: a log axis keeps the low ones apart
            ax.set_ylim(min(ys) / 1.3, max(ys) * 1.4)
        else:
            ax.set_ylim(0, max(ys) * 1.18)
    if len(aside):
        strip = axes[0][1]
        strip.scatter([0.12] * len(aside), aside["wer_pct"], **PAPER_MARKER_SCATTER)
        strip.set(xlim=(0, 1), xticks=[])
        strip.grid(axis="x", visible=False)
        strip.set_title("study: WER only,\nno run time", fontsize=7.5, color="#555555")
    radii = list(np.sqrt(sizes) / 2) if len(ok) else []
    obstacles = list(zip(ok["x"], ok["wer_pct"], radii)) + [(x, y, 4.0) for x, y in zip(pts["x"], pts["wer_pct"])]
    if len(ok):  # labels last: limits and layout are final
        taken = _place_labels(ax, ok["x"], ok["wer_pct"], texts, radii=radii, obstacles=obstacles)
    if len(pts):
        _place_labels(ax, pts["x"], pts["wer_pct"], list(pts["paper_model"]), fontsize=6.5, color="#555555",
                      style="italic", taken=taken, radii=[4.0] * len(pts), obstacles=[] if len(ok) else obstacles)
    if len(aside):
        _stack_labels(axes[0][1], 0.12, list(aside["wer_pct"]), list(aside["paper_model"]))
    _legend_right(fig, handles, labelspacing=1.4)
    what = "energy" if is_energy else "transcription time (no energy measured)"
    _title(fig, f"Fig. 8 (study) — WER vs {what}, {prec}, clean audio",
           "colour = real-time factor, marker size = peak memory")
    return fig


def plot_wer_vs_snr(cells, paper=None, snr_ci_style="band", **_):
    plt, sns = _pyplot()
    data = snr_data(cells)
    swept = data[data["noise_kind"] != CLEAN]
    kinds = sorted(swept["noise_kind"].unique())
    porder = {p: i for i, p in enumerate(precision_order(cells["precision"]))}
    ranked = data.assign(_p=data["precision"].map(porder)).sort_values(["model_params_m", "model", "engine", "_p"])
    measured = set(data.loc[data["gap"] == "", "series"])
    series = [s for s in dict.fromkeys(ranked["series"]) if s in measured]  # series with no value: footnote only
    models = model_order(cells)
    pal = sns.color_palette("colorblind", max(len(models), 3))
    mcolor = {m: pal[i % len(pal)] for i, m in enumerate(models)}
    precs = precision_order(cells["precision"])
    styles = ["-", "--", ":", "-."]
    pstyle = {p: styles[i % len(styles)] for i, p in enumerate(precs)}
    engines = sorted(cells["engine"].unique())
    emarker = {e: ENGINE_MARKERS[i % len(ENGINE_MARKERS)] for i, e in enumerate(engines)}
    gaps = []
    for (s, gap), grp in data[data["gap"] != ""].groupby(["series", "gap"], sort=False):
        where = ("every condition" if s not in measured else
                 ", ".join(f"{v:g} dB" if _is_num(v) else "clean" for v in grp["snr_db"]) + " " +
                 "/".join(sorted(set(grp["noise_kind"]))))
        gaps.append(f"{s} ({where}): {gap}")
    notes = [_gap_notes(gaps, prefix="No measurement (× at the bottom where the rest of the curve exists; curves "
                                     "with no measurement at all are left out): "),
             "Lines: corpus WER; " + ("bands" if snr_ci_style == "band" else "error bars")
             + ": bootstrap 95 % interval over utterances. 'clean' = no added noise (SNR = ∞)."]
    from matplotlib.lines import Line2D
    handles = []
    for s in series:
        first = data[data["series"] == s].iloc[0]
        handles.append(Line2D([], [], color=mcolor[first["model"]], linestyle=pstyle[first["precision"]],
                              marker=emarker[first["engine"]], markersize=4.5, linewidth=1.4, label=s))
    if (data.loc[data["series"].isin(series), "gap"] != "").any():
        handles.append(Line2D([], [], marker="x", color="#444444", linestyle="none", mew=1.6,
                              label="no measurement at this SNR"))
    legend_title = "model · engine · precision"
    ncols = min(max(len(kinds), 1), 3)
    nrows = max(math.ceil(len(kinds) / ncols), 1)
    fig, axes = new_figure(nrows, ncols, 4.2, 3.4, _notes(cells, notes), extra_w=0.3, subtitle=True,
                           legend_right_in=legend_width_in([h.get_label() for h in handles], title=legend_title)
                           if kinds else 0.0, sharey=True)
    if not kinds:
        _empty_panel(axes[0][0], "No SNR-swept noise condition in this run\n(only clean / the study's uniform noise: "
                                 "see Fig. 4)")
    snrs = sorted(swept["snr_db"].dropna().unique())
    step = (np.median(np.diff(snrs)) if len(snrs) > 1 else 5.0) or 5.0
    x_clean = (max(snrs) if snrs else 0) + 1.3 * step
    clean = data[data["noise_kind"] == CLEAN].set_index("series")
    ymax = np.nanmax(list(data["wer_ci_high_pct"]) + list(data["wer_pct"]) + [1.0])
    n_series = max(len(series), 1)
    for k, kind in enumerate(kinds):
        ax = axes[k // ncols][k % ncols]
        sub = swept[swept["noise_kind"] == kind]
        for si, s in enumerate(series):
            pts = sub[sub["series"] == s].sort_values("snr_db")
            if pts.empty and s not in clean.index:
                continue
            first = (pts.iloc[0] if len(pts) else clean.loc[[s]].iloc[0])
            color, ls, mk = mcolor[first["model"]], pstyle[first["precision"]], emarker[first["engine"]]
            dodge = (si - (n_series - 1) / 2) * step * 0.04 if snr_ci_style == "bars" else 0.0
            okp = pts[pts["gap"] == ""]
            ax.plot(okp["snr_db"] + dodge, okp["wer_pct"], color=color, linestyle=ls, marker=mk, markersize=4.5,
                    linewidth=1.4, zorder=3)
            lo, hi = okp["wer_ci_low_pct"], okp["wer_ci_high_pct"]
            if snr_ci_style == "band" and lo.notna().any():
                ax.fill_between(okp["snr_db"], lo, hi, color=color, alpha=0.13, linewidth=0, zorder=2)
            elif lo.notna().any():
                ax.errorbar(okp["snr_db"] + dodge, okp["wer_pct"],
                            yerr=[(okp["wer_pct"] - lo).clip(lower=0), (hi - okp["wer_pct"]).clip(lower=0)],
                            fmt="none", ecolor=color, elinewidth=0.9, capsize=2, zorder=3)
            for r in pts[pts["gap"] != ""].itertuples():
                ax.plot(r.snr_db + dodge, 0.03, marker="x", color=color, markersize=6, mew=1.6,
                        transform=ax.get_xaxis_transform(), clip_on=False, zorder=5)
            if s in clean.index:
                c = clean.loc[[s]].iloc[0]
                if c["gap"]:
                    ax.plot(x_clean + dodge, 0.03, marker="x", color=color, markersize=6, mew=1.6,
                            transform=ax.get_xaxis_transform(), clip_on=False, zorder=5)
                else:
                    yerr = None
                    if _is_num(c["wer_ci_low_pct"]) and _is_num(c["wer_ci_high_pct"]):
                        yerr = [[max(c["wer_pct"] - c["wer_ci_low_pct"], 0)],
                                [max(c["wer_ci_high_pct"] - c["wer_pct"], 0)]]
                    ax.errorbar([x_clean + dodge], [c["wer_pct"]], yerr=yerr, color=color, marker=mk, markersize=5,
                                markerfacecolor="white", markeredgewidth=1.4, capsize=2, elinewidth=0.9, zorder=4)
                    if len(okp):
                        last = okp.iloc[-1]
                        ax.plot([last["snr_db"] + dodge, x_clean + dodge], [last["wer_pct"], c["wer_pct"]], color=color,
                                linestyle=":", linewidth=0.9, alpha=0.6, zorder=2)
        ax.axvline((max(snrs) + x_clean) / 2 if snrs else x_clean - step / 2, color="#999999", linewidth=0.8,
                   linestyle="--")
        ticks = list(snrs) + [x_clean]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in snrs] + ["clean"], fontsize=8)
        ax.set_xlim(min(snrs) - 0.6 * step, x_clean + 0.6 * step)
        ax.set_ylim(0, ymax * 1.08)
        ax.set_title(f"{kind} noise", fontsize=9.5)
        ax.set_xlabel("SNR (dB)")
        if k % ncols == 0:
            ax.set_ylabel(METRIC_LABELS["wer_pct"])
    for k in range(len(kinds), nrows * ncols):
        if kinds:
            axes[k // ncols][k % ncols].set_visible(False)
    if kinds:
        _legend_right(fig, handles, title=legend_title, title_fontsize=8)
    _title(fig, "WER against SNR, per noise kind (not in the study)",
           "one curve per model × engine × precision; 'clean' at the right")
    return fig


def condition_order(cells: pd.DataFrame) -> list[str]:
    """clean first, then the study's uniform set, then SNR conditions by kind and falling SNR."""
    conds = cells.drop_duplicates("condition")
    def key(r):
        kind = r["noise_kind"] if isinstance(r["noise_kind"], str) else ""
        rank = 0 if kind == CLEAN else 1 if kind == STUDY_NOISY_KIND else 2
        snr = -float(r["snr_db"]) if _is_num(r["snr_db"]) else 0.0
        return (rank, kind, snr, r["condition"])
    return [r["condition"] for _, r in sorted(conds.iterrows(), key=lambda kv: key(kv[1]))]


def wer_condition_data(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its series (model · engine · precision), condition position, WER and gap."""
    order = condition_order(cells)
    df = cells.copy()
    df["series"] = df["model"] + " · " + df["engine"] + " · " + df["precision"]
    df["x"] = df["condition"].map({c: i for i, c in enumerate(order)})
    df["gap"] = [gap_reason(r, "wer_pct") or "" for _, r in df.iterrows()]
    return df[["series", "model", "engine", "precision", "condition", "x", "wer_pct", "wer_ci_low_pct",
               "wer_ci_high_pct", "gap"]].sort_values(["series", "x"]).reset_index(drop=True)


def plot_wer_vs_condition(cells, paper=None, **_):
    plt, sns = _pyplot()
    data = wer_condition_data(cells)
    order = condition_order(cells)
    measured = data[data["gap"] == ""]
    series = list(dict.fromkeys(measured["series"]))
    pal = sns.color_palette("colorblind", max(len(series), 3))
    precs = precision_order(cells["precision"])
    styles = {p: ["-", "--", ":", "-."][i % 4] for i, p in enumerate(precs)}
    engines = sorted(cells["engine"].unique())
    emarker = {e: ENGINE_MARKERS[i % len(ENGINE_MARKERS)] for i, e in enumerate(engines)}
    gaps = sorted({f"{r.series}: {r.gap}" for r in data[data["gap"] != ""].itertuples()})
    notes = [_gap_notes(gaps, prefix="Not measured (left out): "),
             "Points: corpus WER; bars: bootstrap 95 % interval over utterances."]
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=pal[i % len(pal)], linestyle=styles[measured[measured.series == s].iloc[0]["precision"]],
                      marker=emarker[measured[measured.series == s].iloc[0]["engine"]], label=s)
               for i, s in enumerate(series)]
    legend_title = "model · engine · precision"
    fig, axes = new_figure(1, 1, max(4.2, 0.9 * len(order) + 1.5), 3.6, _notes(cells, notes), extra_w=0.3,
                           subtitle=True, legend_right_in=legend_width_in([h.get_label() for h in handles],
                                                                          title=legend_title) if handles else 0.0)
    ax = axes[0][0]
    n = max(len(series), 1)
    for i, s in enumerate(series):
        pts = measured[measured["series"] == s].sort_values("x")
        dodge = (i - (n - 1) / 2) * 0.04
        first = pts.iloc[0]
        color = pal[i % len(pal)]
        lo = (pts["wer_pct"] - pts["wer_ci_low_pct"]).clip(lower=0)
        hi = (pts["wer_ci_high_pct"] - pts["wer_pct"]).clip(lower=0)
        ax.errorbar(pts["x"] + dodge, pts["wer_pct"], yerr=[lo.fillna(0), hi.fillna(0)], color=color,
                    linestyle=styles[first["precision"]], marker=emarker[first["engine"]], markersize=4.5,
                    linewidth=1.3, elinewidth=0.8, capsize=2)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("noise condition")
    ax.set_ylabel(METRIC_LABELS["wer_pct"])
    if not series:
        _empty_panel(ax, "No cell with a WER in this run")
    if handles:
        _legend_right(fig, handles, title=legend_title, title_fontsize=8)
    _title(fig, "WER against noise condition", "one line per model × engine × precision")
    return fig


def plot_pareto(cells, paper, show_paper=True, pareto_x="auto", energy_metric="energy_j",
                pareto_by_condition=False, **_):
    plt, sns = _pyplot()
    data, meta = pareto_data(cells, pareto_x, energy_metric, pareto_by_condition)
    is_energy = meta["is_energy"]
    panels = [CLEAN] if not pareto_by_condition else [CLEAN] + sorted(set(data["panel"]) - {CLEAN})
    if pareto_by_condition and CLEAN not in set(data["panel"]):
        panels = sorted(set(data["panel"])) or [CLEAN]
    pts = paper_cost_points(paper if show_paper else empty_paper(), is_energy)
    colors = precision_colors(cells["precision"])
    engines = sorted(cells["engine"].unique())
    emarker = {e: ENGINE_MARKERS[i % len(ENGINE_MARKERS)] for i, e in enumerate(engines)}
    missing = data[data["gap"] != ""]
    notes = []
    if len(missing):
        notes.append(f"{len(missing)} cell(s) without a measurement are not drawn: "
                     + _gap_notes([f"{r.model} {r.engine} {r.precision} @ {r.condition}: {r.gap}"
                                   for r in missing.itertuples()], prefix=""))
    if not is_energy:
        notes.append(f"No energy measured in this run (energy backend: {_energy_backends(cells)}): cost = "
                     "transcription time.")
    if len(pts):
        notes.append("Study points (clean, fp16): " + ("energy above idle, Fig. 8" if is_energy else
                     f"its RTF × {PAPER_AUDIO_S} s, model load included") + "; not part of the front.")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=colors[p], marker="o", linestyle="none", label=p)
               for p in precision_order(data["precision"])]
    handles += [Line2D([], [], color="#555555", marker=emarker[e], linestyle="none", label=e) for e in engines]
    handles += [Line2D([], [], color="black", linewidth=1.3, marker="o", markerfacecolor="#bbbbbb",
                       markeredgecolor="black", markersize=7, label="Pareto front (black edge)"),
                Line2D([], [], color="#bbbbbb", marker="o", linestyle="none", label="dominated (pale)")]
    if len(pts):
        handles.append(_paper_handle(" (fp16)", wrap=True))
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(nrows, ncols, 6.2 if ncols == 1 else 4.2, 4.5 if ncols == 1 else 3.5,
                           _notes(cells, notes), extra_w=0.3, subtitle=True,
                           legend_right_in=legend_width_in([h.get_label() for h in handles]))
    many = len(engines) > 1
    for k, panel in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        sub = data[(data["panel"] == panel) & (data["gap"] == "")]
        ppts = pts if panel == CLEAN else pts.iloc[:0]
        if sub.empty and ppts.empty:
            _empty_panel(ax, f"no {panel} cell with a measurement")
            continue
        _log_if_wide(ax, list(sub["x"]) + list(ppts["x"]), "x")
        ys = list(sub["wer_pct"]) + list(ppts["wer_pct"])
        ax.set_ylim(0, max([v for v in ys if _is_num(v)] + [1.0]) * 1.15)
        for (engine, precision), grp in sub.groupby(["engine", "precision"]):
            kw = dict(marker=emarker[engine], color=colors[precision], zorder=4)
            dom, front = grp[~grp["on_front"]], grp[grp["on_front"]]
            ax.scatter(dom["x"], dom["wer_pct"], s=40, alpha=0.5, edgecolors="none", **kw)
            ax.scatter(front["x"], front["wer_pct"], s=75, edgecolors="black", linewidths=1.3, **kw)
        ax.scatter(ppts["x"], ppts["wer_pct"], **PAPER_MARKER_SCATTER)
        ax.set_title(f"{panel}", fontsize=9.5)
        ax.set_xlabel(meta["xlabel"] + ("" if is_energy else " — no energy measured"), fontsize=8.5)
        ax.set_ylabel(METRIC_LABELS["wer_pct"] if k % ncols == 0 else "")
        front = sub[sub["on_front"]].sort_values("x")
        if len(front):
            ax.step(front["x"], front["wer_pct"], where="post", color="black", linewidth=1.3, zorder=3)
    # labels last: the layout (and so every transform) is final only once every panel is drawn
    for k, panel in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        shown = data[(data["panel"] == panel) & (data["gap"] == "")]
        ppts = pts if panel == CLEAN else pts.iloc[:0]
        obstacles = ([(x, y, 4.5) for x, y in zip(shown["x"], shown["wer_pct"])]
                     + [(x, y, 4.0) for x, y in zip(ppts["x"], ppts["wer_pct"])])
        front = shown[shown["on_front"]].sort_values("x")
        taken = _place_labels(ax, front["x"], front["wer_pct"],
                              [f"{r.model} · {r.precision}" + (f" · {r.engine}" if many else "")
                               for r in front.itertuples()], radii=[4.5] * len(front), obstacles=obstacles)
        _place_labels(ax, ppts["x"], ppts["wer_pct"], list(ppts["paper_model"]), fontsize=6.5, color="#555555",
                      style="italic", taken=taken, radii=[4.0] * len(ppts))
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    _legend_right(fig, handles, labelspacing=1.0)
    cost = "energy" if is_energy else "transcription time"
    _title(fig, f"Accuracy / {cost} Pareto front across all cells (not in the study)",
           "lower-left is better; a cell is on the front when no other cell is both as accurate and cheaper")
    return fig


def _gap_tag(gap: str) -> str:
    """A few words for a heat-map cell; the full reason goes to the footnote."""
    for prefix, tag in (("unsupported", "unsupported"), ("failed", "failed"), ("not measured", "not measured"),
                        ("no fp32", "no fp32 cell"), ("fp32 failed", "fp32 failed"),
                        ("fp32 unsupported", "fp32 unsupported"), ("no accelerator", "CPU run"),
                        ("no energy", "no energy")):
        if gap.startswith(prefix):
            return tag
    return short_reason(gap, 16)


def plot_precision_effect(cells, paper=None, precision_effect_condition="clean", memory_metric="peak_rss_mb",
                          energy_metric="energy_j", **_):
    plt, sns = _pyplot()
    from matplotlib.patches import Rectangle
    table = precision_effect(cells)
    metrics = ["wer_pct", "rtf", memory_metric, energy_metric]
    if precision_effect_condition == "all":
        conds = list(dict.fromkeys(table["condition"]))
    else:
        conds = [c for c in dict.fromkeys(table["condition"]) if c == precision_effect_condition]
        if not conds and precision_effect_condition == CLEAN:
            conds = [c for c, k in zip(table["condition"], table["noise_kind"]) if k == CLEAN][:1]
    n_rows = max([len(table[table["condition"] == c]) for c in conds] + [1])
    ncols = min(max(len(conds), 1), 3)
    nrows = math.ceil(max(len(conds), 1) / ncols)
    gaps = []
    for c in conds:
        sub = table[table["condition"] == c]
        for m in metrics:
            gaps += [g for g in sub[f"{m}_gap"] if g]
    notes = [_gap_notes(gaps, prefix="Hatched grey = change not computable: "),
             "Cell value: (precision - fp32) / fp32 of the same model, engine and condition; "
             "blue = lower than fp32 (cheaper / more accurate), red = higher; colour clipped at ±100 %."]
    fig, axes = new_figure(nrows, ncols, 5.4, 0.38 * n_rows + 1.9, _notes(cells, notes), extra_w=0.8, subtitle=True)
    cmap = sns.color_palette("RdBu_r", as_cmap=True)
    for k, cond in enumerate(conds):
        ax = axes[k // ncols][k % ncols]
        sub = table[table["condition"] == cond]
        labels = [f"{r.model} · {r.engine} · {r.precision}" for r in sub.itertuples()]
        vals = np.array([[r[f"{m}_rel_change"] * 100 for m in metrics] for _, r in sub.iterrows()], dtype=float)
        vals = vals.reshape(len(sub), len(metrics))
        annot = np.array([[f"{v:+.0f} %" if abs(v) >= 10 else f"{v:+.1f} %" if np.isfinite(v) else ""
                           for v in row] for row in vals]).reshape(vals.shape)
        with warnings.catch_warnings():  # seaborn's own call of the deprecated Colormap.set_bad
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(np.clip(vals, -100, 100), ax=ax, cmap=cmap, vmin=-100, vmax=100, center=0, annot=annot,
                        fmt="", annot_kws={"fontsize": 8}, linewidths=0.6, linecolor="white",
                        cbar=k == len(conds) - 1, cbar_kws={"label": "change vs fp32 (%)", "shrink": 0.8},
                        xticklabels=[METRIC_SHORT.get(m, m) for m in metrics], yticklabels=labels)
        for i, (_, r) in enumerate(sub.iterrows()):
            for j, m in enumerate(metrics):
                if np.isfinite(vals[i, j]):
                    continue
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor=GAP_FACE, edgecolor=GAP_EDGE, hatch="////",
                                       linewidth=0))
                ax.text(j + 0.5, i + 0.5, _gap_tag(r[f"{m}_gap"]), ha="center", va="center", fontsize=6.5,
                        color="#333333", bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75))
        ax.set_title(cond, fontsize=9.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.tick_params(axis="x", labelsize=8.5, rotation=0)
        ax.set_xlabel("")
        ax.set_ylabel("")
    if not conds:
        _empty_panel(axes[0][0], f"no precision other than fp32 to compare in condition "
                                 f"'{precision_effect_condition}'")
    for k in range(len(conds), nrows * ncols):
        if conds:
            axes[k // ncols][k % ncols].set_visible(False)
    _title(fig, "Precision effect — relative change from fp32 (not in the study)",
           f"WER, RTF, {METRIC_SHORT.get(memory_metric)}, {METRIC_SHORT.get(energy_metric)}; "
           "table: results/tables/precision_effect.csv")
    return fig


# --------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    kind: str  # "figure" or "table"
    func: Callable
    options: tuple
    description: str


def _table_precision_effect(cells, paper, outs, **_):
    for out in outs:
        write_csv_atomic(precision_effect(cells), out)


def _table_findings(cells, paper, outs, energy_metric="energy_j", fig4_noisy_amplitude=0.1, **_):
    table = findings(cells, paper, energy_metric, fig4_noisy_amplitude)
    for out in outs:
        if str(out).endswith(".md"):
            write_text_atomic(out, "# Findings: the study's claims against this run\n\n" + findings_markdown(table)
                              + "\nVerdicts are computed by `edgeasr.figures.findings` (see docs/figures.md).\n")
        else:
            write_csv_atomic(table, out)


def _table_pareto(cells, paper, outs, pareto_x="auto", energy_metric="energy_j", pareto_by_condition=False, **_):
    data, _meta = pareto_data(cells, pareto_x, energy_metric, pareto_by_condition)
    for out in outs:
        write_csv_atomic(data, out)


COMMANDS: dict[str, Command] = {
    "fig4_wer_clean_noisy": Command("figure", plot_fig4, ("dpi", "show_paper", "fig4_noisy_amplitude"),
                                    "Fig. 4: WER clean vs the study's noisy (uniform) set, per engine x precision"),
    "fig5_energy": Command("figure", plot_fig5, ("dpi", "show_paper", "energy_metric"),
                           "Fig. 5: energy per model at each precision (clean)"),
    "fig7_rtf_memory": Command("figure", plot_fig7, ("dpi", "show_paper", "memory_metric", "rtf_include_load"),
                               "Fig. 7: real-time factor and peak memory per model and precision (clean)"),
    "fig8_wer_energy": Command("figure", plot_fig8, ("dpi", "show_paper", "fig8_precision", "energy_metric",
                                                     "memory_metric"),
                               "Fig. 8: WER vs energy (or time), colour = RTF, size = memory"),
    "wer_vs_condition": Command("figure", plot_wer_vs_condition, ("dpi",),
                                "WER against noise condition, one line per model x engine x precision"),
    "wer_vs_snr": Command("figure", plot_wer_vs_snr, ("dpi", "snr_ci_style"),
                          "WER against SNR per noise kind, bootstrap intervals, clean at the right"),
    "pareto": Command("figure", plot_pareto, ("dpi", "show_paper", "pareto_x", "energy_metric", "pareto_by_condition"),
                      "accuracy / energy (or time) Pareto front"),
    "precision_effect": Command("figure", plot_precision_effect, ("dpi", "precision_effect_condition",
                                                                  "memory_metric", "energy_metric"),
                                "heat map of the relative change from fp32"),
    "precision_effect_table": Command("table", _table_precision_effect, (),
                                      "results/tables/precision_effect.csv"),
    "findings": Command("table", _table_findings, ("energy_metric", "fig4_noisy_amplitude"),
                        "results/tables/findings.csv and findings.md"),
    "pareto_table": Command("table", _table_pareto, ("pareto_x", "energy_metric", "pareto_by_condition"),
                            "results/tables/pareto.csv: every cell's cost, WER and front membership"),
}
FIGURE_NAMES = [n for n, c in COMMANDS.items() if c.kind == "figure"]


def command_options(name: str, options: dict | None = None) -> dict:
    """The options a command uses, from ``options`` (e.g. the resolved config section) or defaults."""
    options = resolve_options(options)
    return {k: options[k] for k in COMMANDS[name].options}


def run(name: str, cells_path, outs: list, paper_path=None, options: dict | None = None) -> None:
    """Build one figure / table from the tables (the API behind the command line)."""
    if name not in COMMANDS:
        raise ValueError(f"unknown figure or table {name!r}; known: {', '.join(COMMANDS)}")
    if not outs:
        raise ValueError(f"{name}: give at least one output path")
    cmd = COMMANDS[name]
    opts = dict(DEFAULT_OPTIONS)
    for key, value in (options or {}).items():
        opts[key] = coerce_option(key, value)
    cells = load_cells(cells_path)
    paper = load_paper(paper_path) if paper_path else empty_paper()
    kwargs = {k: opts[k] for k in cmd.options}
    if cmd.kind == "table":
        cmd.func(cells, paper, list(outs), **kwargs)
        return
    fig = cmd.func(cells, paper, **{k: v for k, v in kwargs.items() if k != "dpi"})
    save_figure(fig, list(outs), dpi=opts["dpi"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeasr.figures",
        description="Build one figure or derived table from results/tables/cells.csv.",
        epilog="names: " + ", ".join(COMMANDS) + ". Options (--option KEY=VALUE): "
               + "; ".join(f"{k} (default {DEFAULT_OPTIONS[k]!r}): {OPTION_DESCRIPTIONS[k]}" for k in DEFAULT_OPTIONS))
    parser.add_argument("name", choices=list(COMMANDS), help="figure or table to build")
    parser.add_argument("--cells", required=True, help="results/tables/cells.csv")
    parser.add_argument("--paper", default=None, help="the study's values (resources/reference/...csv)")
    parser.add_argument("--out", nargs="+", required=True, help="output path(s); figure format from the suffix")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a figures option")
    args = parser.parse_args(argv)
    options = {}
    for item in args.option:
        if "=" not in item:
            parser.error(f"--option expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        options[key.strip()] = value
    try:
        run(args.name, args.cells, args.out, args.paper, options)
    except (ValueError, FileNotFoundError) as exc:
        print(f"edgeasr.figures {args.name}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
