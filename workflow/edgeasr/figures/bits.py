"""WER against weight bits, per quantizer method and training mode (the sub-8-bit study; not in the study).

One panel per condition (clean first, then the study's noisy set, then the rest); one line per (model,
method with its scale groups, training mode and distillation loss) over the bits; fp32 and int8 of the same
model and engine as horizontal lines. A mixed allocation is drawn at its mean bits per quantized weight.
"""

from __future__ import annotations

import math

import pandas as pd

from .cells import is_num, model_order
from .data import condition_order
from .plotting import (
    draw_title,
    empty_panel,
    legend_right,
    legend_width_in,
    log_if_wide,
    new_figure,
    pyplot,
    with_provenance,
)

QUANTIZER_METHODS = ("gq", "uniform")


def bits_data(cells: pd.DataFrame) -> pd.DataFrame:
    """The sub-8-bit cells that ran: model, engine, condition, method, mode, bits (mean bits for a mixed
    allocation), WER and its interval."""
    cols = ["model", "engine", "condition", "precision", "method", "mode", "bits", "wer_pct", "lo", "hi"]
    if "precision_method" not in cells:
        return pd.DataFrame(columns=cols)
    q = cells[(cells["status"] == "ok") & cells["precision_method"].isin(QUANTIZER_METHODS)]
    rows = []
    for r in q.to_dict("records"):
        bits = r.get("weight_bits") if is_num(r.get("weight_bits")) else r.get("packed_mean_bits")
        if not is_num(bits) or not is_num(r.get("wer_pct")):
            continue
        mode = r.get("packed_mode") if isinstance(r.get("packed_mode"), str) else "data_free"
        recipe = r.get("packed_training_recipe")
        if mode == "qat" and isinstance(recipe, str):  # one line per distillation loss: "qat-kd", "qat-ce"
            mode = f"qat-{recipe.split(',')[0].strip()}"
        group = r.get("packed_group_size")
        method = r["precision_method"] + (f" g{int(group)}" if is_num(group) and int(group) else "")
        if not is_num(r.get("weight_bits")):  # a mixed allocation: a point of its own, not on the line
            method += f" ({r['precision']})"
        rows.append(
            {
                "model": r["model"],
                "engine": r["engine"],
                "condition": r["condition"],
                "precision": r["precision"],
                "method": method,
                "mode": mode,
                "recipe": recipe if mode.startswith("qat") and isinstance(recipe, str) else None,
                "bits": float(bits),
                "wer_pct": float(r["wer_pct"]),
                "lo": r.get("wer_ci_low_pct"),
                "hi": r.get("wer_ci_high_pct"),
            }
        )
    # the same checkpoint held another way (decompression) decodes the same text: one point
    out = pd.DataFrame(rows, columns=cols + ["recipe"])
    out["mode"] = _recipe_modes(out)
    out = out[cols]
    return out.drop_duplicates(["model", "engine", "condition", "method", "mode", "bits", "wer_pct"]).reset_index(
        drop=True
    )


def _recipe_modes(rows: pd.DataFrame) -> pd.Series:
    """The training mode, with the recipe's distinguishing settings where one distillation loss was trained
    more than one way (e.g. "qat-kd (lr 5e-05, centroid lr 0.0005)"), so each recipe is a line of its own
    instead of two points at the same bits joined on one line."""
    modes = rows["mode"].copy()
    for mode, g in rows[rows["recipe"].notna()].groupby("mode"):
        recipes = list(dict.fromkeys(g["recipe"]))
        if len(recipes) < 2:
            continue
        fields = [[f.strip() for f in r.split(",")] for r in recipes]
        shared = set.intersection(*(set(f) for f in fields))
        tag = {r: ", ".join(f for f in fs if f not in shared) for r, fs in zip(recipes, fields)}
        modes[g.index] = [f"{mode} ({tag[r]})" for r in g["recipe"]]
    return modes


def plot_wer_vs_bits(cells, paper=None, **_):
    plt, sns = pyplot()
    data = bits_data(cells)
    conds = [c for c in condition_order(cells) if c in set(data["condition"])] if len(data) else []
    series = list(dict.fromkeys(zip(data["model"], data["method"], data["mode"]))) if len(data) else []
    pal = sns.color_palette("colorblind", max(len(series), 3))
    models = [m for m in model_order(cells) if m in set(data["model"])]
    marker = {m: "os^Dv<>"[i % 7] for i, m in enumerate(models)}
    style = {"data_free": "--", "qat": "-", "qat-ce": "-.", "qat-kd": "-"}
    labels = [f"{m} · {meth} · {mode.replace('_', '-')}" for m, meth, mode in series]
    # a recipe-named mode ("qat-kd (lr 5e-05)") draws in its loss's style
    line = [style.get(mode.split(" ")[0], ":") for _, _, mode in series]
    notes = [
        "Points: corpus WER; bars: bootstrap 95 % interval over utterances. Grey lines: fp32 (solid) and "
        "int8 (dotted) of the same model and engine. A mixed allocation sits at its mean bits per weight.",
    ]
    ncols = max(1, min(len(conds), 2))
    nrows = max(1, -(-len(conds) // 2)) if conds else 1
    fig, axes = new_figure(
        nrows,
        ncols,
        4.2,
        3.3,
        with_provenance(cells, notes),
        subtitle=True,
        legend_right_in=legend_width_in(labels, title="model · method · training") if labels else 0.0,
    )
    if not conds:
        empty_panel(axes[0][0], "no sub-8-bit cell ran (config/gq-study.yaml runs the sub-8-bit study)")
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [],
            [],
            color=pal[i % len(pal)],
            linestyle=line[i],
            marker=marker[s[0]],
            label=lab,
        )
        for i, (s, lab) in enumerate(zip(series, labels))
    ]
    for k, cond in enumerate(conds):
        ax = axes[k // ncols][k % ncols]
        d = data[data["condition"] == cond]
        for i, s in enumerate(series):
            pts = d[(d["model"] == s[0]) & (d["method"] == s[1]) & (d["mode"] == s[2])].sort_values("bits")
            if pts.empty:
                continue
            lo = (pts["wer_pct"] - pd.to_numeric(pts["lo"], errors="coerce")).clip(lower=0).fillna(0)
            hi = (pd.to_numeric(pts["hi"], errors="coerce") - pts["wer_pct"]).clip(lower=0).fillna(0)
            dodge = (i - (len(series) - 1) / 2) * 0.06  # overlapping series stay apart at equal bits
            ax.errorbar(
                pts["bits"] + dodge,
                pts["wer_pct"],
                yerr=[lo, hi],
                color=pal[i % len(pal)],
                linestyle=line[i],
                marker=marker[s[0]],
                markersize=4.5,
                linewidth=1.3,
                elinewidth=0.8,
                capsize=2,
            )
        ref = cells[(cells["status"] == "ok") & (cells["condition"] == cond)]
        ref = ref[ref["precision"].isin(["fp32", "int8"]) & ref["model"].isin(models)]
        ref = ref[ref["engine"].isin(set(d["engine"]))]
        for r in ref.itertuples():
            ax.axhline(r.wer_pct, color="#777777", linewidth=0.9, linestyle="-" if r.precision == "fp32" else ":")
        log_if_wide(ax, list(d["wer_pct"]) + list(ref["wer_pct"]), axis="y")
        # whole bits as ticks; a mixed allocation (e.g. 5.14 mean bits) sits between them, unlabelled, so its
        # tick does not print over its neighbours'
        ticks = list(range(math.floor(min(data["bits"])), math.ceil(max(data["bits"])) + 1))
        ax.set_xticks(ticks, [str(b) for b in ticks])
        ax.set_xlim(max(ticks) + 0.6, min(ticks) - 0.6)  # fewer bits to the right
        ax.set(xlabel="bits per quantized weight", ylabel="WER (%)", title=cond)
        ax.title.set_fontsize(9)
    for k in range(len(conds), nrows * ncols):
        if conds:
            axes[k // ncols][k % ncols].set_visible(False)
    legend_right(fig, handles, title="model · method · training", title_fontsize=7.5)
    draw_title(
        fig,
        "WER against weight bits: General Quantizer and the uniform ablation (not in the study)",
        "dashed: data-free fit; solid: quantization-aware training distilled from fp32 (dash-dot: token loss)",
    )
    return fig
