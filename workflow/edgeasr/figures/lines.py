"""WER against noise (not in the study): against SNR, one panel per noise kind, and against every condition."""

from __future__ import annotations

import math

import numpy as np

from .cells import is_num, model_order, precision_order
from .constants import CLEAN, METRIC_LABELS
from .data import condition_order, snr_data, wer_condition_data
from .plotting import (
    ENGINE_MARKERS,
    draw_title,
    empty_panel,
    gap_notes,
    legend_right,
    legend_width_in,
    new_figure,
    pyplot,
    with_provenance,
)


def plot_wer_vs_snr(cells, paper=None, snr_ci_style="band", **_):
    plt, sns = pyplot()
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
        where = (
            "every condition"
            if s not in measured
            else ", ".join(f"{v:g} dB" if is_num(v) else "clean" for v in grp["snr_db"])
            + " "
            + "/".join(sorted(set(grp["noise_kind"])))
        )
        gaps.append(f"{s} ({where}): {gap}")
    notes = [
        gap_notes(
            gaps,
            prefix="No measurement (× at the bottom where the rest of the curve exists; curves "
            "with no measurement at all are left out): ",
        ),
        "Lines: corpus WER; "
        + ("bands" if snr_ci_style == "band" else "error bars")
        + ": bootstrap 95 % interval over utterances. 'clean' = no added noise (SNR = ∞).",
    ]
    from matplotlib.lines import Line2D

    handles = []
    for s in series:
        first = data[data["series"] == s].iloc[0]
        handles.append(
            Line2D(
                [],
                [],
                color=mcolor[first["model"]],
                linestyle=pstyle[first["precision"]],
                marker=emarker[first["engine"]],
                markersize=4.5,
                linewidth=1.4,
                label=s,
            )
        )
    if (data.loc[data["series"].isin(series), "gap"] != "").any():
        handles.append(
            Line2D([], [], marker="x", color="#444444", linestyle="none", mew=1.6, label="no measurement at this SNR")
        )
    legend_title = "model · engine · precision"
    ncols = min(max(len(kinds), 1), 3)
    nrows = max(math.ceil(len(kinds) / ncols), 1)
    fig, axes = new_figure(
        nrows,
        ncols,
        4.2,
        3.4,
        with_provenance(cells, notes),
        extra_w=0.3,
        subtitle=True,
        legend_right_in=legend_width_in([h.get_label() for h in handles], title=legend_title) if kinds else 0.0,
        sharey=True,
    )
    if not kinds:
        empty_panel(
            axes[0][0], "No SNR-swept noise condition in this run\n(only clean / the study's uniform noise: see Fig. 4)"
        )
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
            first = pts.iloc[0] if len(pts) else clean.loc[[s]].iloc[0]
            color, ls, mk = mcolor[first["model"]], pstyle[first["precision"]], emarker[first["engine"]]
            dodge = (si - (n_series - 1) / 2) * step * 0.04 if snr_ci_style == "bars" else 0.0
            okp = pts[pts["gap"] == ""]
            ax.plot(
                okp["snr_db"] + dodge,
                okp["wer_pct"],
                color=color,
                linestyle=ls,
                marker=mk,
                markersize=4.5,
                linewidth=1.4,
                zorder=3,
            )
            lo, hi = okp["wer_ci_low_pct"], okp["wer_ci_high_pct"]
            if snr_ci_style == "band" and lo.notna().any():
                ax.fill_between(okp["snr_db"], lo, hi, color=color, alpha=0.13, linewidth=0, zorder=2)
            elif lo.notna().any():
                ax.errorbar(
                    okp["snr_db"] + dodge,
                    okp["wer_pct"],
                    yerr=[(okp["wer_pct"] - lo).clip(lower=0), (hi - okp["wer_pct"]).clip(lower=0)],
                    fmt="none",
                    ecolor=color,
                    elinewidth=0.9,
                    capsize=2,
                    zorder=3,
                )
            for r in pts[pts["gap"] != ""].itertuples():
                _gap_mark(ax, r.snr_db + dodge, color)
            if s in clean.index:
                c = clean.loc[[s]].iloc[0]
                if c["gap"]:
                    _gap_mark(ax, x_clean + dodge, color)
                else:
                    yerr = None
                    if is_num(c["wer_ci_low_pct"]) and is_num(c["wer_ci_high_pct"]):
                        yerr = [
                            [max(c["wer_pct"] - c["wer_ci_low_pct"], 0)],
                            [max(c["wer_ci_high_pct"] - c["wer_pct"], 0)],
                        ]
                    ax.errorbar(
                        [x_clean + dodge],
                        [c["wer_pct"]],
                        yerr=yerr,
                        color=color,
                        marker=mk,
                        markersize=5,
                        markerfacecolor="white",
                        markeredgewidth=1.4,
                        capsize=2,
                        elinewidth=0.9,
                        zorder=4,
                    )
                    if len(okp):
                        last = okp.iloc[-1]
                        ax.plot(
                            [last["snr_db"] + dodge, x_clean + dodge],
                            [last["wer_pct"], c["wer_pct"]],
                            color=color,
                            linestyle=":",
                            linewidth=0.9,
                            alpha=0.6,
                            zorder=2,
                        )
        ax.axvline(
            (max(snrs) + x_clean) / 2 if snrs else x_clean - step / 2, color="#999999", linewidth=0.8, linestyle="--"
        )
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
        legend_right(fig, handles, title=legend_title, title_fontsize=8)
    draw_title(
        fig,
        "WER against SNR, per noise kind (not in the study)",
        "one curve per model × engine × precision; 'clean' at the right",
    )
    return fig


def plot_wer_vs_condition(cells, paper=None, **_):
    plt, sns = pyplot()
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
    notes = [
        gap_notes(gaps, prefix="Not measured (left out): "),
        "Points: corpus WER; bars: bootstrap 95 % interval over utterances.",
    ]
    from matplotlib.lines import Line2D

    first_row = {s: measured[measured.series == s].iloc[0] for s in series}
    handles = [
        Line2D(
            [],
            [],
            color=pal[i % len(pal)],
            linestyle=styles[first_row[s]["precision"]],
            marker=emarker[first_row[s]["engine"]],
            label=s,
        )
        for i, s in enumerate(series)
    ]
    legend_title = "model · engine · precision"
    fig, axes = new_figure(
        1,
        1,
        max(4.2, 0.9 * len(order) + 1.5),
        3.6,
        with_provenance(cells, notes),
        extra_w=0.3,
        subtitle=True,
        legend_right_in=legend_width_in([h.get_label() for h in handles], title=legend_title) if handles else 0.0,
    )
    ax = axes[0][0]
    n = max(len(series), 1)
    for i, s in enumerate(series):
        pts = measured[measured["series"] == s].sort_values("x")
        dodge = (i - (n - 1) / 2) * 0.04
        first = pts.iloc[0]
        color = pal[i % len(pal)]
        lo = (pts["wer_pct"] - pts["wer_ci_low_pct"]).clip(lower=0)
        hi = (pts["wer_ci_high_pct"] - pts["wer_pct"]).clip(lower=0)
        ax.errorbar(
            pts["x"] + dodge,
            pts["wer_pct"],
            yerr=[lo.fillna(0), hi.fillna(0)],
            color=color,
            linestyle=styles[first["precision"]],
            marker=emarker[first["engine"]],
            markersize=4.5,
            linewidth=1.3,
            elinewidth=0.8,
            capsize=2,
        )
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels(order, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("noise condition")
    ax.set_ylabel(METRIC_LABELS["wer_pct"])
    if not series:
        empty_panel(ax, "No cell with a WER in this run")
    if handles:
        legend_right(fig, handles, title=legend_title, title_fontsize=8)
    draw_title(fig, "WER against noise condition", "one line per model × engine × precision")
    return fig


def _gap_mark(ax, x, color) -> None:
    """A cell with no measurement: a cross at the bottom of the panel, at its x."""
    ax.plot(
        x,
        0.03,
        marker="x",
        color=color,
        markersize=6,
        mew=1.6,
        transform=ax.get_xaxis_transform(),
        clip_on=False,
        zorder=5,
    )
