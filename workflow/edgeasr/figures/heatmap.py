"""The precision effect as a heat map (not in the study): the relative change from fp32 of WER, RTF, memory and
energy for each model, engine and precision (the numbers: ``results/tables/precision_effect.csv``)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .cells import short_reason
from .constants import CLEAN, METRIC_SHORT
from .data import precision_effect
from .plotting import GAP_EDGE, GAP_FACE, draw_title, empty_panel, gap_notes, new_figure, pyplot, with_provenance


def _gap_tag(gap: str) -> str:
    """A few words for a heat-map cell; the full reason goes to the footnote."""
    for prefix, tag in (
        ("unsupported", "unsupported"),
        ("failed", "failed"),
        ("not measured", "not measured"),
        ("no fp32", "no fp32 cell"),
        ("fp32 failed", "fp32 failed"),
        ("fp32 unsupported", "fp32 unsupported"),
        ("no accelerator", "CPU run"),
        ("no energy", "no energy"),
    ):
        if gap.startswith(prefix):
            return tag
    return short_reason(gap, 16)


def plot_precision_effect(
    cells, paper=None, precision_effect_condition="clean", memory_metric="peak_rss_mb", energy_metric="energy_j", **_
):
    plt, sns = pyplot()
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
    notes = [
        gap_notes(gaps, prefix="Hatched grey = change not computable: "),
        "Cell value: (precision - fp32) / fp32 of the same model, engine and condition; "
        "blue = lower than fp32 (cheaper / more accurate), red = higher; colour clipped at ±100 %.",
    ]
    fig, axes = new_figure(
        nrows, ncols, 5.4, 0.38 * n_rows + 1.9, with_provenance(cells, notes), extra_w=0.8, subtitle=True
    )
    cmap = sns.color_palette("RdBu_r", as_cmap=True)
    for k, cond in enumerate(conds):
        ax = axes[k // ncols][k % ncols]
        sub = table[table["condition"] == cond]
        labels = [f"{r.model} · {r.engine} · {r.precision}" for r in sub.itertuples()]
        vals = np.array([[r[f"{m}_rel_change"] * 100 for m in metrics] for _, r in sub.iterrows()], dtype=float)
        vals = vals.reshape(len(sub), len(metrics))
        annot = np.array(
            [[f"{v:+.0f} %" if abs(v) >= 10 else f"{v:+.1f} %" if np.isfinite(v) else "" for v in row] for row in vals]
        ).reshape(vals.shape)
        with warnings.catch_warnings():  # seaborn's own call of the deprecated Colormap.set_bad
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(
                np.clip(vals, -100, 100),
                ax=ax,
                cmap=cmap,
                vmin=-100,
                vmax=100,
                center=0,
                annot=annot,
                fmt="",
                annot_kws={"fontsize": 8},
                linewidths=0.6,
                linecolor="white",
                cbar=k == len(conds) - 1,
                cbar_kws={"label": "change vs fp32 (%)", "shrink": 0.8},
                xticklabels=[METRIC_SHORT.get(m, m) for m in metrics],
                yticklabels=labels,
            )
        for i, (_, r) in enumerate(sub.iterrows()):
            for j, m in enumerate(metrics):
                if np.isfinite(vals[i, j]):
                    continue
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor=GAP_FACE, edgecolor=GAP_EDGE, hatch="////", linewidth=0))
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    _gap_tag(r[f"{m}_gap"]),
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color="#333333",
                    bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75),
                )
        ax.set_title(cond, fontsize=9.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.tick_params(axis="x", labelsize=8.5, rotation=0)
        ax.set_xlabel("")
        ax.set_ylabel("")
    if not conds:
        empty_panel(axes[0][0], f"no precision other than fp32 to compare in condition '{precision_effect_condition}'")
    for k in range(len(conds), nrows * ncols):
        if conds:
            axes[k // ncols][k % ncols].set_visible(False)
    draw_title(
        fig,
        "Precision effect — relative change from fp32 (not in the study)",
        f"WER, RTF, {METRIC_SHORT.get(memory_metric)}, {METRIC_SHORT.get(energy_metric)}; "
        "table: results/tables/precision_effect.csv",
    )
    return fig
