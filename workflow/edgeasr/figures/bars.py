"""The study's bar figures, rebuilt: Fig. 4 (WER clean vs noisy), Fig. 5 (energy), Fig. 7 (RTF and memory)."""

from __future__ import annotations

import numpy as np

from .cells import energy_backends, is_num, precision_order, study_noisy_condition
from .constants import METRIC_LABELS
from .data import any_energy, fig4_data, fig5_data, fig7_data
from .plotting import (
    draw_grouped_bars,
    draw_title,
    empty_panel,
    gap_handle,
    gap_notes,
    legend_ncol,
    legend_rows,
    legend_top,
    new_figure,
    paper_handle,
    paper_missing_note,
    precision_colors,
    pyplot,
    value_limit,
    with_provenance,
)
from .study import not_run_notes, study_models


def plot_fig4(cells, paper, show_paper=True, fig4_noisy_amplitude=0.1, **_):
    pyplot()  # theme first: legend proxies below take their style from it
    import seaborn as sns
    from matplotlib.patches import Patch

    data = fig4_data(cells, paper, fig4_noisy_amplitude)
    if not show_paper:
        data = data[~data["study_only"]]
    noisy = study_noisy_condition(cells, fig4_noisy_amplitude)
    amp = cells.loc[cells["condition"] == noisy, "noise_amplitude"].max() if noisy else np.nan
    noisy_label = (
        f"noisy: {noisy} (uniform noise, amplitude {amp:g})"
        if is_num(amp)
        else f"noisy: {noisy} (uniform noise)"
        if noisy
        else "noisy (not in this run)"
    )
    pal = sns.color_palette("colorblind", 4)
    colors = {"clean": pal[0], "noisy": pal[1]}
    handles = [Patch(color=colors["clean"], label="clean"), Patch(color=colors["noisy"], label=noisy_label)]
    if show_paper and data["paper_value"].notna().any():
        handles.append(paper_handle(" (fp16)", wrap=True))
    if (data["gap"] != "").any():
        handles.append(gap_handle())
    engines = sorted(data["engine"].unique())
    precs = precision_order(data["precision"])
    # one row of y labels per engine, shared by its panels: the run's models, then the study's alone
    groups = {e: list(dict.fromkeys(data.loc[data["engine"] == e, "model_label"])) for e in engines}
    study_only = set(data.loc[data["study_only"], "model_label"])
    row_h = [(0.55 if len(groups[e]) <= 8 else 0.46) * len(groups[e]) + 0.9 for e in engines] or [2.0]
    label_w = max([len(g) for gs in groups.values() for g in gs] + [20]) * 8.5 * 0.55 / 72
    notes = [
        gap_notes(data["gap"]),
        "Bars: this run's corpus WER with its bootstrap 95 % interval over utterances.",
        *not_run_notes(cells, study_models(paper, ["fig4"]), markers=show_paper, by_engine=True),
        paper_missing_note(data, show_paper, paper, ["fig4"]),
    ]
    fig, axes = new_figure(
        max(len(engines), 1),
        max(len(precs), 1),
        3.6,
        row_h,
        with_provenance(cells, notes),
        extra_w=max(1.6, label_w + 0.4),
        legend_rows=legend_rows([h.get_label() for h in handles], 2),
    )
    lim = value_limit(list(data["hi"]) + list(data["value"]) + (list(data["paper_value"]) if show_paper else []), 100.0)
    for r, engine in enumerate(engines):
        labelled = False
        for c, precision in enumerate(precs):
            ax = axes[r][c]
            sub = data[(data["engine"] == engine) & (data["precision"] == precision)]
            if sub.empty:
                empty_panel(ax, f"{engine} · {precision}\nnot in this run's matrix")
                continue
            draw_grouped_bars(
                ax,
                sub,
                "model_label",
                "which",
                groups[engine],
                ["clean", "noisy"],
                colors,
                "h",
                lim,
                show_paper=show_paper,
            )
            ax.set_yticklabels(groups[engine] if not labelled else [], fontsize=8.5)
            for tick in ax.get_yticklabels():
                if tick.get_text() in study_only:
                    tick.set(color="#555555", style="italic")
            labelled = True
            alone = " (study only)" if sub["study_only"].all() else ""
            ax.set_title(f"{engine} · {precision}{alone}", fontsize=9.5)
            ax.set_xlabel(METRIC_LABELS["wer_pct"] if r == len(engines) - 1 else "")
    if not engines:
        empty_panel(axes[0][0], "no cells in the table")
    legend_top(fig, handles, ncol=2)
    draw_title(fig, "Fig. 4 (study) — WER on clean vs noisy audio, per model")
    return fig


def _bar_panels(cells, data, panels, colors, show_paper, title, notes_extra, paper_figs, subtitle=""):
    """Vertical grouped bars: rows = panels [(panel key, axis label, floor)], columns = engines."""
    from matplotlib.patches import Patch

    handles = [Patch(color=colors[p], label=p) for p in precision_order(data["precision"])]
    if show_paper and data["paper_value"].notna().any():
        handles.append(paper_handle(wrap=True))
    if (data["gap"] != "").any():
        handles.append(gap_handle())
    engines = sorted(data["engine"].unique())
    n_models = max([data[data["engine"] == e]["model"].nunique() for e in engines] + [1])
    n_prec = max([data[data["engine"] == e]["precision"].nunique() for e in engines] + [1])
    panel_w = max(3.4, 0.34 * n_models * n_prec + 1.2)
    fig_w = max(len(engines), 1) * panel_w + 0.6
    ncol = legend_ncol([h.get_label() for h in handles], fig_w)
    notes = [gap_notes(data["gap"])] + notes_extra + [paper_missing_note(data, show_paper, *paper_figs)]
    fig, axes = new_figure(
        len(panels),
        max(len(engines), 1),
        panel_w,
        3.4,
        with_provenance(cells, notes),
        extra_w=0.6,
        subtitle=bool(subtitle),
        legend_rows=legend_rows([h.get_label() for h in handles], ncol),
    )
    for r, (key, ylabel, floor) in enumerate(panels):
        pdata = data[data["panel"] == key] if "panel" in data else data
        vals = list(pdata["value"]) + (list(pdata["paper_value"]) if show_paper else [])
        lim = value_limit(vals, floor)
        for c, engine in enumerate(engines):
            ax = axes[r][c]
            sub = pdata[pdata["engine"] == engine]
            groups = list(dict.fromkeys(sub["model_label"]))
            hues = precision_order(sub["precision"])
            draw_grouped_bars(
                ax, sub, "model_label", "precision", groups, hues, colors, "v", lim, gap_chars=44, show_paper=show_paper
            )
            ax.set_xticklabels([g.replace(" (", "\n(") for g in groups], fontsize=8)
            ax.set_ylabel(ylabel if c == 0 else "")
            ax.set_title(engine if r == 0 else "", fontsize=9.5)
    if not engines:
        empty_panel(axes[0][0], "no clean cells in the table")
    legend_top(fig, handles, ncol)
    draw_title(fig, title, subtitle)
    return fig


def plot_fig5(cells, paper, show_paper=True, energy_metric="energy_j", **_):
    pyplot()  # theme first: legend proxies below take their style from it
    data = fig5_data(cells, paper, energy_metric)
    colors = precision_colors(cells["precision"])
    measured = any_energy(cells, energy_metric)
    subtitle = (
        ""
        if measured
        else f"No energy measured here (energy backend: {energy_backends(cells)})"
        + (" — the study's values are shown" if show_paper else "")
    )
    notes = (
        [
            "Study: energy above a 515 mW idle baseline on one rail, tegrastats samples with GPU load > 40 %; "
            f"this run: {energy_metric} (see docs/figures.md)."
        ]
        if show_paper
        else []
    )
    return _bar_panels(
        cells,
        data,
        [(None, METRIC_LABELS[energy_metric], 100.0)],
        colors,
        show_paper,
        "Fig. 5 (study) — energy per model at each precision, clean audio",
        notes,
        (paper, ["fig5", "fig8"]),
        subtitle,
    )


def plot_fig7(cells, paper, show_paper=True, memory_metric="peak_rss_mb", rtf_include_load=False, **_):
    pyplot()  # theme first: legend proxies below take their style from it
    data = fig7_data(cells, paper, memory_metric, rtf_include_load)
    colors = precision_colors(cells["precision"])
    rtf_label = METRIC_LABELS["rtf_with_load" if rtf_include_load else "rtf"]
    notes = []
    if show_paper:
        notes.append(
            "Study: RTF = whole run incl. model load / audio; memory = system RAM in use (unified memory, "
            "OS included), so its memory markers sit far above a process's RSS."
        )
    return _bar_panels(
        cells,
        data,
        [("rtf", rtf_label, 1.0), ("memory", METRIC_LABELS[memory_metric], 1000.0)],
        colors,
        show_paper,
        "Fig. 7 (study) — real-time factor and peak memory, clean audio",
        notes,
        (paper, ["fig7"]),
    )
