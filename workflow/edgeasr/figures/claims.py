"""The study's claims against this run (``results/tables/findings.csv``): what the study reported, what this run
measured, and a verdict (``supported``, ``refuted`` or ``not measurable here``, always with the reason).
The rules are in docs/figures.md ("How the findings are decided")."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from .cells import (
    clean_cells,
    empty_paper,
    energy_backends,
    is_num,
    paper_lookup,
    precision_order,
    status_text,
    study_noisy_condition,
)
from .constants import BASELINE_PRECISION, CLEAN, FP16_HALVES_MAX_RATIO, STUDY_MODEL_PARAMS_M, STUDY_NOISY_KIND
from .data import any_energy

SUPPORTED, REFUTED, NOT_MEASURABLE = "supported", "refuted", "not measurable here"


def _finding(claim_id, claim, study, measured, n, verdict, why) -> dict:
    """One row of the findings table."""
    return {
        "claim_id": claim_id,
        "claim": claim,
        "study": study,
        "measured": measured,
        "n": n,
        "verdict": verdict,
        "why": why,
    }


def _spearman(x, y) -> float:
    rx = pd.Series(list(x), dtype=float).rank()
    ry = pd.Series(list(y), dtype=float).rank()
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _fmt(x, digits=2) -> str:
    return "n/a" if not is_num(x) else f"{x:.{digits}f}"


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
    parts = ", ".join(
        f"{m.replace('whisper-', '')} {r:.2f}"
        for m, r in sorted(ratios.items(), key=lambda kv: STUDY_MODEL_PARAMS_M.get(kv[0], 1e9))
    )
    return f"fp16/fp32 energy ratio {parts} (Whisper, faster-whisper, Fig. 5)"


def _paper_series_text(value_of: Callable, fmt: str, what: str) -> str:
    """The study's Whisper models, smallest first: "tiny <value>, base <value>, ... (what)"."""
    vals = [(m, value_of(m)) for m in sorted(STUDY_MODEL_PARAMS_M, key=STUDY_MODEL_PARAMS_M.get)]
    parts = [f"{m.replace('whisper-', '')} {format(v, fmt)}" for m, v in vals if is_num(v)]
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
        if is_num(a[energy_metric]) and is_num(b[energy_metric]) and b[energy_metric] > 0:
            pairs.append((f"{model}/{engine}", a[energy_metric] / b[energy_metric]))
        if is_num(a["transcribe_s"]) and is_num(b["transcribe_s"]) and b["transcribe_s"] > 0:
            time_pairs.append((f"{model}/{engine}", a["transcribe_s"] / b["transcribe_s"]))
    time_text = (
        "; time ratio fp16/fp32 (not energy): " + ", ".join(f"{k} {v:.2f}" for k, v in time_pairs) if time_pairs else ""
    )
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
            why = (
                why + "; and " if why else ""
            ) + f"no energy measured (energy backend: {energy_backends(cells)}; no power sensor)"
        why = why or "no model has both fp16 and fp32 energy on clean audio"
        return _finding(
            "fp16_vs_fp32_energy", claim, study, "no fp16/fp32 energy pair" + time_text, 0, NOT_MEASURABLE, why
        )
    ratios = [r for _, r in pairs]
    med = float(np.median(ratios))
    measured = (
        f"{energy_metric} fp16/fp32 ratio median {med:.2f} (range {min(ratios):.2f}-{max(ratios):.2f}): "
        + ", ".join(f"{k} {v:.2f}" for k, v in pairs)
        + time_text
    )
    if med <= FP16_HALVES_MAX_RATIO:
        verdict, why = SUPPORTED, f"median ratio {med:.2f} <= {FP16_HALVES_MAX_RATIO} (about half)"
    elif med < 1:
        verdict, why = REFUTED, f"fp16 saves {100 * (1 - med):.0f} % on this device, not about half"
    else:
        verdict, why = REFUTED, f"fp16 used {100 * (med - 1):.0f} % more energy than fp32 on this device"
    return _finding("fp16_vs_fp32_energy", claim, study, measured, len(pairs), verdict, why)


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
    study = _paper_series_text(
        lambda m: pn.get((m, "fp16"), np.nan) - pc.get((m, "fp16"), np.nan),
        "+.1f",
        "pp WER noisy - clean, uniform noise amplitude 0.1, fp16, Fig. 4",
    )
    noisy = study_noisy_condition(cells, noisy_amplitude)
    noisy_conds = [noisy] if noisy else sorted(set(cells.loc[cells["noise_kind"] != CLEAN, "condition"]))
    where = f"condition {noisy}" if noisy else f"mean over {len(noisy_conds)} noise condition(s)" if noisy_conds else ""
    ok = cells[(cells["status"] == "ok") & cells["wer_pct"].notna()]
    rows = []
    for (model, engine, precision), grp in ok.groupby(["model", "engine", "precision"]):
        clean = grp[grp["noise_kind"] == CLEAN]
        nz = grp[grp["condition"].isin(noisy_conds)]
        if clean.empty or len(nz) != len(noisy_conds) or not noisy_conds:
            continue
        rows.append(
            {
                "model": model,
                "engine": engine,
                "precision": precision,
                "model_params_m": grp["model_params_m"].max(),
                "degradation": nz["wer_pct"].mean() - clean["wer_pct"].iloc[0],
            }
        )
    table = pd.DataFrame(rows, columns=["model", "engine", "precision", "model_params_m", "degradation"])
    table = table[table["model_params_m"].notna()]
    best = _best_group(table)
    if not noisy_conds:
        why = "the run has no noise condition"
    elif best is None:
        n = table["model_params_m"].nunique()
        why = (
            "no model has both clean and noisy WER"
            if table.empty
            else f"needs >= 2 model sizes measured clean and noisy at the same engine and precision (found {n})"
        )
    if not noisy_conds or best is None:
        return _finding("size_vs_noise_robustness", claim, study, "-", len(table), NOT_MEASURABLE, why)
    engine, precision, grp = best
    grp = grp.sort_values("model_params_m")
    rho = _spearman(grp["model_params_m"], grp["degradation"])
    measured = (
        f"WER increase ({where}, {engine} {precision}): "
        + ", ".join(f"{r.model} ({r.model_params_m:.0f} M) {r.degradation:+.1f} pp" for r in grp.itertuples())
        + f"; Spearman rho(size, increase) = {_fmt(rho)}"
    )
    verdict = SUPPORTED if rho < 0 else REFUTED
    why = (
        "the increase falls as size grows"
        if verdict == SUPPORTED
        else "the increase does not fall as size grows"
        if rho > 0
        else "no monotone relation"
    )
    return _finding("size_vs_noise_robustness", claim, study, measured, len(grp), verdict, why)


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
            measured = (
                f"proxy, transcription time ({engine} {precision}): "
                + ", ".join(f"{r.model} {r.transcribe_s:.1f} s" for r in grp.itertuples())
                + f"; Spearman rho(size, time) = {_fmt(_spearman(grp['model_params_m'], grp['transcribe_s']))}"
            )
        if not any_energy(cells, energy_metric):
            why = f"no energy measured (energy backend: {energy_backends(cells)}; no power sensor)"
        else:
            why = "needs >= 2 model sizes with energy at the same engine and precision"
        return _finding("size_vs_energy", claim, study, measured, 0, NOT_MEASURABLE, why)
    engine, precision, grp = best
    grp = grp.sort_values("model_params_m")
    rho = _spearman(grp["model_params_m"], grp[energy_metric])
    measured = (
        f"{energy_metric} ({engine} {precision}, clean): "
        + ", ".join(f"{r['model']} {r[energy_metric]:.1f} J" for _, r in grp.iterrows())
        + f"; Spearman rho(size, energy) = {_fmt(rho)}"
    )
    verdict = SUPPORTED if rho > 0 else REFUTED
    why = "energy grows with size" if verdict == SUPPORTED else "energy does not grow with size"
    return _finding("size_vs_energy", claim, study, measured, len(grp), verdict, why)


FINDINGS_COLUMNS = ["claim_id", "claim", "study", "measured", "n", "verdict", "why"]


def findings(
    cells: pd.DataFrame,
    paper: pd.DataFrame | None = None,
    energy_metric: str = "energy_j",
    noisy_amplitude: float = 0.1,
) -> pd.DataFrame:
    """One row per claim of the study: what the study reported, what this run measured, a verdict."""
    paper = empty_paper() if paper is None else paper
    rows = [
        _fp16_energy_finding(cells, paper, energy_metric),
        _size_noise_finding(cells, paper, noisy_amplitude),
        _size_energy_finding(cells, paper, energy_metric),
    ]
    return pd.DataFrame(rows, columns=FINDINGS_COLUMNS)


def findings_markdown(table: pd.DataFrame) -> str:
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| claim | the study (Jetson Orin Nano) | this run | verdict |", "|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(
            f"| {cell(r.claim)} | {cell(r.study)} | {cell(r.measured)} | **{cell(r.verdict)}**: {cell(r.why)} |"
        )
    return "\n".join(lines) + "\n"
