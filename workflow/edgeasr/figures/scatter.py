"""Accuracy against cost: Fig. 8 of the study (WER vs energy or time; colour = RTF, size = memory) and the
Pareto front across all cells (not in the study)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .cells import clean_cells, empty_paper, energy_backends, is_num, precision_order
from .constants import CLEAN, METRIC_LABELS, PAPER_AUDIO_S
from .data import fig8_data, paper_cost_points, pareto_data
from .plotting import (
    ENGINE_MARKERS,
    PAPER_MARKER_SCATTER,
    draw_title,
    empty_panel,
    gap_notes,
    legend_right,
    legend_width_in,
    log_if_wide,
    new_figure,
    paper_handle,
    place_labels,
    precision_colors,
    pyplot,
    stack_labels,
    with_provenance,
)
from .study import not_run_notes, ran_pairs, study_models


def _label_paper_points(ax, pts, taken, obstacles=()) -> None:
    """The study's own points, labelled in grey italics around the labels already placed."""
    place_labels(
        ax,
        pts["x"],
        pts["wer_pct"],
        list(pts["paper_model"]),
        fontsize=6.5,
        color="#555555",
        style="italic",
        taken=taken,
        radii=[4.0] * len(pts),
        obstacles=obstacles,
    )


def plot_fig8(
    cells, paper, show_paper=True, fig8_precision="auto", energy_metric="energy_j", memory_metric="peak_rss_mb", **_
):
    plt, sns = pyplot()
    data, meta = fig8_data(cells, fig8_precision, energy_metric, memory_metric, paper if show_paper else None)
    prec, is_energy, study = meta["precision"], meta["is_energy"], meta["study"]
    ok = data[data["gap"] == ""]
    pts, aside = study[study["x"].notna()], study[study["x"].isna()]  # aside: the study has no x for them
    pairs = ran_pairs(cells)  # (model, engine) with no cell that ran: named once, by not_run_notes
    gaps = [
        f"{r.model} · {r.engine}: {r.gap}" for r in data[data["gap"] != ""].itertuples() if (r.model, r.engine) in pairs
    ]
    notes = []
    if gaps:
        notes.append(gap_notes(gaps, prefix=f"Not plotted ({prec}, clean; no measurement): "))
    notes += not_run_notes(cells, study_models(paper, ["fig4", "fig8"]), markers=show_paper, by_engine=True)
    if len(aside):
        notes.append(
            "Right-hand strip: the study's models with a WER but no run time in the study (it gives RTF "
            "for its Whisper models only), at their clean WER."
        )
    if not is_energy:
        notes.append(
            f"No energy measured in this run (energy backend: {energy_backends(cells)}): the x axis is "
            "transcription time instead of energy."
        )
        if len(pts):
            audio = clean_cells(cells)["audio_s"].median()
            notes.append(
                f"Study points: x = its RTF x {PAPER_AUDIO_S} s of audio (model load included)"
                + (f"; this run's clean audio: {audio:.1f} s." if is_num(audio) else ".")
            )
    elif len(pts):
        notes.append("Study points: energy above idle (Fig. 8) against clean WER (Fig. 4), fp16.")
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [],
            [],
            marker=ENGINE_MARKERS[i % len(ENGINE_MARKERS)],
            color="#777777",
            linestyle="none",
            markeredgecolor="black",
            markersize=8,
            label=f"this run, {e}",
        )
        for i, e in enumerate(sorted(ok["engine"].unique()))
    ]
    if len(study):
        handles.append(paper_handle(" (fp16)", wrap=True))
    if len(ok) and ok["memory"].notna().any():
        mem = ok["memory"].astype(float)
        for frac in (0.25, 1.0):
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="o",
                    linestyle="none",
                    markerfacecolor="none",
                    markeredgecolor="#555555",
                    markersize=math.sqrt(40 + 360 * frac),
                    label=f"{METRIC_LABELS[memory_metric].split(' (')[0]}\n{mem.max() * frac:,.0f} MB",
                )
            )
    strip_w = max([len(m) for m in aside["paper_model"]] + [14]) * 6.5 * 0.56 / 72 + 0.45 if len(aside) else 0.0
    crowd = max(len(ok) + len(pts) - 12, 0)  # more room for many labelled points
    main_w, main_h = min(7.8 + 0.15 * crowd, 11.0), min(5.4 + 0.06 * crowd, 7.0)
    fig, axes = new_figure(
        1,
        2 if len(aside) else 1,
        (main_w + strip_w) / (2 if len(aside) else 1),
        main_h,
        with_provenance(cells, notes),
        extra_w=0.9,
        subtitle=True,
        legend_right_in=legend_width_in([h.get_label() for h in handles]),
        **(dict(sharey=True, gridspec_kw={"width_ratios": [main_w, strip_w]}) if len(aside) else {}),
    )
    ax = axes[0][0]
    all_x = list(ok["x"]) + list(pts["x"])
    all_y = list(ok["wer_pct"]) + list(pts["wer_pct"]) + list(aside["wer_pct"])
    taken = []
    if len(ok):
        mem = ok["memory"].astype(float)
        mem_ok = mem.notna().any()
        sizes = (40 + 360 * (mem / mem.max()) if mem_ok else pd.Series(80.0, index=ok.index)).fillna(40)
        engines = sorted(ok["engine"].unique())
        norm = plt.Normalize(
            vmin=np.nanmin(ok["rtf"]) if ok["rtf"].notna().any() else 0,
            vmax=np.nanmax(ok["rtf"]) if ok["rtf"].notna().any() else 1,
        )
        cmap = plt.get_cmap("viridis")
        for i, engine in enumerate(engines):
            sub = ok[ok["engine"] == engine]
            ax.scatter(
                sub["x"],
                sub["wer_pct"],
                s=sizes[sub.index],
                c=sub["rtf"],
                cmap=cmap,
                norm=norm,
                marker=ENGINE_MARKERS[i % len(ENGINE_MARKERS)],
                edgecolors="black",
                linewidths=0.6,
                zorder=4,
                label=f"this run, {engine}",
            )
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        cb = fig.colorbar(sm, ax=ax, pad=0.02, fraction=0.05)
        cb.set_label("real-time factor (this run)")
        many = len(engines) > 1
        texts = [f"{r.model}" + (f" · {r.engine}" if many else "") for r in ok.itertuples()]
    log_if_wide(ax, all_x, "x")
    if len(pts):
        ax.scatter(pts["x"], pts["wer_pct"], **PAPER_MARKER_SCATTER)
    xlabel = meta["xlabel"] if is_energy else "transcription time (s) — no energy measured here"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(METRIC_LABELS["wer_pct"])
    if not len(ok) and not len(pts):
        empty_panel(ax, f"no clean {prec} cell with a measurement")
    if len(ok) or len(pts) or len(aside):
        ys = [v for v in all_y if is_num(v) and v > 0] or [1.0]
        if log_if_wide(ax, ys, "y"):  # WERs from 2 % to 40 %: a log axis keeps the low ones apart
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
        taken = place_labels(ax, ok["x"], ok["wer_pct"], texts, radii=radii, obstacles=obstacles)
    if len(pts):
        _label_paper_points(ax, pts, taken, obstacles=[] if len(ok) else obstacles)
    if len(aside):
        stack_labels(axes[0][1], 0.12, list(aside["wer_pct"]), list(aside["paper_model"]))
    legend_right(fig, handles, labelspacing=1.4)
    what = "energy" if is_energy else "transcription time (no energy measured)"
    draw_title(
        fig,
        f"Fig. 8 (study) — WER vs {what}, {prec}, clean audio",
        "colour = real-time factor, marker size = peak memory",
    )
    return fig


def plot_pareto(
    cells, paper, show_paper=True, pareto_x="auto", energy_metric="energy_j", pareto_by_condition=False, **_
):
    plt, sns = pyplot()
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
        notes.append(
            f"{len(missing)} cell(s) without a measurement are not drawn: "
            + gap_notes(
                [f"{r.model} {r.engine} {r.precision} @ {r.condition}: {r.gap}" for r in missing.itertuples()],
                prefix="",
            )
        )
    if not is_energy:
        notes.append(
            f"No energy measured in this run (energy backend: {energy_backends(cells)}): cost = transcription time."
        )
    if len(pts):
        notes.append(
            "Study points (clean, fp16): "
            + ("energy above idle, Fig. 8" if is_energy else f"its RTF × {PAPER_AUDIO_S} s, model load included")
            + "; not part of the front."
        )
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=colors[p], marker="o", linestyle="none", label=p)
        for p in precision_order(data["precision"])
    ]
    handles += [Line2D([], [], color="#555555", marker=emarker[e], linestyle="none", label=e) for e in engines]
    handles += [
        Line2D(
            [],
            [],
            color="black",
            linewidth=1.3,
            marker="o",
            markerfacecolor="#bbbbbb",
            markeredgecolor="black",
            markersize=7,
            label="Pareto front (black edge)",
        ),
        Line2D([], [], color="#bbbbbb", marker="o", linestyle="none", label="dominated (pale)"),
    ]
    if len(pts):
        handles.append(paper_handle(" (fp16)", wrap=True))
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(
        nrows,
        ncols,
        6.2 if ncols == 1 else 4.2,
        4.5 if ncols == 1 else 3.5,
        with_provenance(cells, notes),
        extra_w=0.3,
        subtitle=True,
        legend_right_in=legend_width_in([h.get_label() for h in handles]),
    )
    many = len(engines) > 1
    for k, panel in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        sub = data[(data["panel"] == panel) & (data["gap"] == "")]
        ppts = pts if panel == CLEAN else pts.iloc[:0]
        if sub.empty and ppts.empty:
            empty_panel(ax, f"no {panel} cell with a measurement")
            continue
        log_if_wide(ax, list(sub["x"]) + list(ppts["x"]), "x")
        ys = list(sub["wer_pct"]) + list(ppts["wer_pct"])
        ax.set_ylim(0, max([v for v in ys if is_num(v)] + [1.0]) * 1.15)
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
        obstacles = [(x, y, 4.5) for x, y in zip(shown["x"], shown["wer_pct"])] + [
            (x, y, 4.0) for x, y in zip(ppts["x"], ppts["wer_pct"])
        ]
        front = shown[shown["on_front"]].sort_values("x")
        taken = place_labels(
            ax,
            front["x"],
            front["wer_pct"],
            [f"{r.model} · {r.precision}" + (f" · {r.engine}" if many else "") for r in front.itertuples()],
            radii=[4.5] * len(front),
            obstacles=obstacles,
        )
        _label_paper_points(ax, ppts, taken)
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    legend_right(fig, handles, labelspacing=1.0)
    cost = "energy" if is_energy else "transcription time"
    draw_title(
        fig,
        f"Accuracy / {cost} Pareto front across all cells (not in the study)",
        "lower-left is better; a cell is on the front when no other cell is both as accurate and cheaper",
    )
    return fig
