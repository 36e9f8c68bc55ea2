"""The data behind each figure and table (pure pandas, unit-tested): one function per figure, returning the
rows it draws, with ``gap`` saying why a value is missing and ``paper_value`` the study's value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cells import (
    clean_cells,
    empty_paper,
    gap_reason,
    index_cells,
    is_num,
    model_label,
    model_order,
    paper_lookup,
    precision_order,
    status_text,
    study_noisy_condition,
    with_metric,
)
from .constants import BASELINE_PRECISION, CLEAN, EFFECT_METRICS, METRIC_LABELS, PAPER_AUDIO_S, STUDY_NOISY_KIND
from .study import ran_pairs


# --------------------------------------------------------------------------------------------------
# the study's bar figures (Fig. 4, 5, 7)
# --------------------------------------------------------------------------------------------------
def fig4_data(cells: pd.DataFrame, paper: pd.DataFrame | None = None, noisy_amplitude: float = 0.1) -> pd.DataFrame:
    """WER on clean vs the study's noisy set, one row per (engine, precision, model, clean|noisy).

    A model appears on an engine when one of its cells there ran (the others: :func:`not_run_notes`). Each
    model of the study with no row in the panel of its own engine and precision gets ``study_only`` rows
    there (no bar, the study's value alone), so that every model of the study is drawn."""
    paper = empty_paper() if paper is None else paper
    noisy = study_noisy_condition(cells, noisy_amplitude)
    pvals = {
        "clean": paper_lookup(paper, ["fig4"], "wer_pct", CLEAN, by_engine=True),
        "noisy": paper_lookup(paper, ["fig4"], "wer_pct", STUDY_NOISY_KIND, by_engine=True),
    }
    pairs = ran_pairs(cells)
    cells = cells.loc[np.array([pair in pairs for pair in zip(cells["model"], cells["engine"])], dtype=bool)]
    idx = index_cells(cells, ["engine", "precision", "model", "condition"])
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
                    rows.append(
                        {
                            "engine": engine,
                            "precision": precision,
                            "model": model,
                            "model_label": model_label(model, sizes[model]),
                            "paper_model": pm[model],
                            "which": which,
                            "condition": cond or "",
                            "value": np.nan if gap else row["wer_pct"],
                            "lo": np.nan if gap else row["wer_ci_low_pct"],
                            "hi": np.nan if gap else row["wer_ci_high_pct"],
                            "gap": gap or "",
                            "paper_value": pvals[which].get((pm[model], engine, precision), np.nan),
                            "study_only": False,
                        }
                    )
    drawn = {(r["paper_model"], r["engine"], r["precision"]) for r in rows}
    ran = set(cells.loc[cells["status"] == "ok", "paper_model"])
    for key in dict.fromkeys(list(pvals["clean"]) + list(pvals["noisy"])):
        if key in drawn:
            continue
        study_model, engine, precision = key
        label = f"{study_model} (study" + (")" if study_model in ran else " only)")
        for which in ("clean", "noisy"):
            rows.append(
                {
                    "engine": engine,
                    "precision": precision,
                    "model": "",
                    "model_label": label,
                    "paper_model": study_model,
                    "which": which,
                    "condition": "",
                    "value": np.nan,
                    "lo": np.nan,
                    "hi": np.nan,
                    "gap": "",
                    "paper_value": pvals[which].get(key, np.nan),
                    "study_only": True,
                }
            )
    df = pd.DataFrame(
        rows,
        columns=[
            "engine",
            "precision",
            "model",
            "model_label",
            "paper_model",
            "which",
            "condition",
            "value",
            "lo",
            "hi",
            "gap",
            "paper_value",
            "study_only",
        ],
    )
    return df.astype({"study_only": bool})


def bar_metric_data(cells: pd.DataFrame, metric: str, paper_values: dict | None = None) -> pd.DataFrame:
    """One row per (engine, model, precision) on clean audio, every combination present (gaps filled);
    ``paper_values`` keyed by (paper_model, engine, precision)."""
    cells = with_metric(cells, metric)
    paper_values = paper_values or {}
    clean = clean_cells(cells)
    idx = index_cells(clean, ["engine", "model", "precision"])
    sizes = cells.groupby("model")["model_params_m"].max() if not cells.empty else {}
    pm = cells.groupby("model")["paper_model"].first() if not cells.empty else {}
    rows = []
    for engine in sorted(clean["engine"].unique()):
        eng = clean[clean["engine"] == engine]
        for model in model_order(eng):
            for precision in precision_order(eng["precision"]):
                row = idx.get((engine, model, precision))
                gap = gap_reason(row, metric)
                rows.append(
                    {
                        "engine": engine,
                        "model": model,
                        "model_label": model_label(model, sizes[model]),
                        "paper_model": pm[model],
                        "precision": precision,
                        "metric": metric,
                        "value": np.nan if gap else float(row[metric]),
                        "gap": gap or "",
                        "paper_value": paper_values.get((pm[model], engine, precision), np.nan),
                    }
                )
    return pd.DataFrame(
        rows,
        columns=["engine", "model", "model_label", "paper_model", "precision", "metric", "value", "gap", "paper_value"],
    )


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


# --------------------------------------------------------------------------------------------------
# accuracy against cost (Fig. 8, the Pareto front)
# --------------------------------------------------------------------------------------------------
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
    rows = [{"paper_model": m, "precision": p, "x": cost.get((m, p), np.nan), "wer_pct": wer[(m, p)]} for m, p in keys]
    return pd.DataFrame(rows, columns=["paper_model", "precision", "x", "wer_pct"])


def fig8_data(
    cells, precision="auto", energy_metric="energy_j", memory_metric="peak_rss_mb", paper: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict]:
    """Clean cells at one precision: x (energy or time), WER, RTF, memory; gaps listed with reasons.
    ``meta["study"]``: every model of the study's clean WER and its x (NaN where the study has none)."""
    prec = choose_fig8_precision(cells, precision)
    x, xlabel, is_energy = cost_axis(cells, "auto", energy_metric)
    sel = clean_cells(cells)
    sel = sel[sel["precision"] == prec]
    rows = []
    for _, row in sel.iterrows():
        gap = gap_reason(row, "wer_pct") or gap_reason(row, x)
        rows.append(
            {
                "engine": row["engine"],
                "model": row["model"],
                "paper_model": row["paper_model"],
                "precision": prec,
                "x": row[x],
                "wer_pct": row["wer_pct"],
                "rtf": row["rtf"],
                "memory": row[memory_metric],
                "gap": gap or "",
                "model_params_m": row["model_params_m"],
            }
        )
    df = pd.DataFrame(
        rows,
        columns=[
            "engine",
            "model",
            "paper_model",
            "precision",
            "x",
            "wer_pct",
            "rtf",
            "memory",
            "gap",
            "model_params_m",
        ],
    )
    study = paper_cost_points(empty_paper() if paper is None else paper, is_energy, every_model=True)
    return df, {"precision": prec, "x": x, "xlabel": xlabel, "is_energy": is_energy, "study": study}


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


def pareto_data(
    cells: pd.DataFrame, pareto_x: str = "auto", energy_metric: str = "energy_j", by_condition: bool = False
) -> tuple[pd.DataFrame, dict]:
    """Every cell with its cost, WER, whether it is plotted, and ``on_front`` within its panel."""
    x, xlabel, is_energy = cost_axis(cells, pareto_x, energy_metric, None if by_condition else CLEAN)
    sel = cells if by_condition else clean_cells(cells)
    rows = []
    for _, row in sel.iterrows():
        gap = gap_reason(row, "wer_pct") or gap_reason(row, x)
        rows.append(
            {
                "panel": row["condition"] if by_condition else CLEAN,
                "condition": row["condition"],
                "model": row["model"],
                "engine": row["engine"],
                "precision": row["precision"],
                "paper_model": row["paper_model"],
                "x": row[x],
                "wer_pct": row["wer_pct"],
                "gap": gap or "",
            }
        )
    df = pd.DataFrame(
        rows, columns=["panel", "condition", "model", "engine", "precision", "paper_model", "x", "wer_pct", "gap"]
    )
    df["on_front"] = False
    for _, grp in df[df["gap"] == ""].groupby("panel"):
        df.loc[grp.index, "on_front"] = pareto_front(grp["x"], grp["wer_pct"])
    df.insert(6, "x_metric", x)
    return df, {"x": x, "xlabel": xlabel, "is_energy": is_energy}


# --------------------------------------------------------------------------------------------------
# WER against noise (SNR sweep, every condition)
# --------------------------------------------------------------------------------------------------
def snr_data(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells of SNR-swept noise conditions plus the clean reference, one row each."""
    has_snr = cells["snr_db"].notna() & ~cells["noise_kind"].isin([CLEAN, STUDY_NOISY_KIND])
    sel = cells[has_snr | (cells["noise_kind"] == CLEAN)].copy()
    sel["gap"] = [gap_reason(r, "wer_pct") or "" for _, r in sel.iterrows()]
    sel["series"] = sel["model"] + " · " + sel["engine"] + " · " + sel["precision"]
    return sel[
        [
            "series",
            "model",
            "engine",
            "precision",
            "condition",
            "noise_kind",
            "snr_db",
            "wer_pct",
            "wer_ci_low_pct",
            "wer_ci_high_pct",
            "gap",
            "model_params_m",
        ]
    ].reset_index(drop=True)


def condition_order(cells: pd.DataFrame) -> list[str]:
    """clean first, then the study's uniform set, then SNR conditions by kind and falling SNR."""
    conds = cells.drop_duplicates("condition")

    def key(r):
        kind = r["noise_kind"] if isinstance(r["noise_kind"], str) else ""
        rank = 0 if kind == CLEAN else 1 if kind == STUDY_NOISY_KIND else 2
        snr = -float(r["snr_db"]) if is_num(r["snr_db"]) else 0.0
        return (rank, kind, snr, r["condition"])

    return [r["condition"] for _, r in sorted(conds.iterrows(), key=lambda kv: key(kv[1]))]


def wer_condition_data(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its series (model · engine · precision), condition position, WER and gap."""
    order = condition_order(cells)
    df = cells.copy()
    df["series"] = df["model"] + " · " + df["engine"] + " · " + df["precision"]
    df["x"] = df["condition"].map({c: i for i, c in enumerate(order)})
    df["gap"] = [gap_reason(r, "wer_pct") or "" for _, r in df.iterrows()]
    return (
        df[
            [
                "series",
                "model",
                "engine",
                "precision",
                "condition",
                "x",
                "wer_pct",
                "wer_ci_low_pct",
                "wer_ci_high_pct",
                "gap",
            ]
        ]
        .sort_values(["series", "x"])
        .reset_index(drop=True)
    )


# --------------------------------------------------------------------------------------------------
# the precision effect (table and heat map)
# --------------------------------------------------------------------------------------------------
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
            out = {
                "model": model,
                "paper_model": row["paper_model"],
                "engine": engine,
                "condition": condition,
                "noise_kind": row["noise_kind"],
                "snr_db": row["snr_db"],
                "precision": precision,
                "baseline_precision": baseline,
                "status": row["status"],
                "baseline_status": base["status"] if base is not None else "missing",
            }
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
    cols = [
        "model",
        "paper_model",
        "engine",
        "condition",
        "noise_kind",
        "snr_db",
        "precision",
        "baseline_precision",
        "status",
        "baseline_status",
    ]
    for m in EFFECT_METRICS:
        cols += [f"{m}_{baseline}", m, f"{m}_rel_change", f"{m}_gap"]
    return pd.DataFrame(rows, columns=cols)
