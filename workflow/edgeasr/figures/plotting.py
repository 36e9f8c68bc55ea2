"""Plotting helpers shared by every figure: the theme, figure layout (title band, legends, footnotes), grouped
bars with hatched gaps, the study's marker layer, label placement and log axes. matplotlib and seaborn are
imported lazily (importing :mod:`edgeasr.figures` does not load them)."""

from __future__ import annotations

import textwrap
from typing import Iterable

import pandas as pd

from .cells import is_num, precision_order, provenance, short_reason
from .constants import PAPER_LABEL

GAP_FACE = "#d9d9d9"
GAP_EDGE = "#8c8c8c"
PAPER_MARKER = dict(
    marker="D",
    markersize=6.5,
    markerfacecolor="white",
    markeredgecolor="black",
    markeredgewidth=1.4,
    linestyle="none",
    zorder=6,
)
PAPER_MARKER_SCATTER = dict(marker="D", s=46, facecolors="white", edgecolors="black", linewidths=1.4, zorder=6)
ENGINE_MARKERS = ["o", "s", "^", "v", "P", "X"]


# --------------------------------------------------------------------------------------------------
# theme, colours, legend entries
# --------------------------------------------------------------------------------------------------
def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.05)
    plt.rcParams.update(
        {
            "svg.hashsalt": "edgeasr",
            "axes.titleweight": "bold",
            "hatch.linewidth": 0.6,
            "legend.frameon": True,
            "legend.framealpha": 0.92,
        }
    )
    return plt, sns


def precision_colors(precisions: Iterable[str]) -> dict:
    import seaborn as sns

    order = precision_order(precisions)
    pal = sns.color_palette("colorblind", max(len(order), 3))
    return {p: pal[i % len(pal)] for i, p in enumerate(order)}


def value_limit(values, floor: float) -> float:
    vals = [v for v in values if is_num(v) and v > 0]
    return max(vals) * 1.12 if vals else floor


def gap_handle():
    from matplotlib.patches import Patch

    return Patch(facecolor=GAP_FACE, edgecolor=GAP_EDGE, hatch="////", label="no measurement (reason in the bar)")


def paper_handle(precision_note: str = "", wrap: bool = False):
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


# --------------------------------------------------------------------------------------------------
# bars and gaps
# --------------------------------------------------------------------------------------------------
def draw_gap(ax, pos, thickness, lim, text, orient, fontsize=6.5, marker_at=None, color=None):
    """Hatched placeholder over the whole value axis (hatch in the bar's colour, so the reader still
    sees which series it stands for), its reason written beside (never under) a study marker
    ``marker_at`` on the same bar, on the side with more room."""
    box = dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75)
    if not is_num(marker_at):
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
        t = ax.text(
            at,
            pos,
            text,
            ha="left" if forward else "right",
            va="center",
            fontsize=fontsize,
            color="#333333",
            zorder=3,
            clip_on=True,
            bbox=box,
        )
    else:
        ax.bar(pos, lim, width=thickness, color=face, edgecolor=edge, hatch="////", linewidth=0, zorder=1)
        t = ax.text(
            pos,
            at,
            text,
            ha="center",
            va="bottom" if forward else "top",
            rotation=90,
            fontsize=fontsize,
            color="#333333",
            zorder=3,
            clip_on=True,
            bbox=box,
        )
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


def draw_grouped_bars(
    ax,
    data: pd.DataFrame,
    group_col: str,
    hue_col: str,
    groups: list,
    hues: list,
    colors: dict,
    orient: str,
    lim: float,
    gap_chars: int = 60,
    show_paper: bool = True,
) -> int:
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
                draw_gap(
                    ax,
                    pos,
                    width * 0.92,
                    lim,
                    short_reason(row["gap"], gap_chars),
                    orient,
                    marker_at=row.get("paper_value") if show_paper else None,
                    color=colors[hue],
                )
            elif is_num(row["value"]):  # (a study-only row has no value and no gap: its marker alone)
                value = row["value"]
                err = None
                if "lo" in row and is_num(row.get("lo")) and is_num(row.get("hi")):
                    err = [[max(value - row["lo"], 0)], [max(row["hi"] - value, 0)]]
                horizontal = orient == "h"
                (ax.barh if horizontal else ax.bar)(
                    pos,
                    value,
                    width * 0.92,
                    color=colors[hue],
                    zorder=2,
                    **{"xerr" if horizontal else "yerr": err},
                    error_kw=dict(ecolor="#222222", elinewidth=0.9, capsize=2.5),
                )
            if show_paper and is_num(row.get("paper_value")):
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


# --------------------------------------------------------------------------------------------------
# figure layout: title band, legends, footnotes
# --------------------------------------------------------------------------------------------------
def _footnote_lines(notes: list[str], width_in: float, fontsize: float = 7.0) -> list[str]:
    chars = max(40, int(width_in * 72 / (fontsize * 0.6)))
    lines = []
    for note in notes:
        lines.extend(textwrap.wrap(note, chars) or [""])
    return lines


def new_figure(
    nrows,
    ncols,
    panel_w,
    panel_h,
    notes: list[str],
    extra_w: float = 0.0,
    subtitle: bool = False,
    legend_rows: int = 0,
    legend_right_in: float = 0.0,
    **subplot_kw,
):
    """A figure whose axes area is (ncols*panel_w + extra_w) x sum(row heights), with a band above for
    the title (+ subtitle) and a legend of ``legend_rows`` rows, a column of ``legend_right_in`` inches on
    the right for a tall legend, and a footnote block (``notes``) below. ``panel_h`` may be a list (one
    height per row)."""
    plt, _ = pyplot()
    width = ncols * panel_w + extra_w + legend_right_in
    lines = _footnote_lines(notes, width)
    foot = 0.14 * len(lines) + 0.15
    title_in = 0.38 + (0.2 if subtitle else 0.0)
    top = title_in + (0.21 * legend_rows + 0.14 if legend_rows else 0.0)
    heights = list(panel_h) if isinstance(panel_h, (list, tuple)) else [panel_h] * nrows
    height = sum(heights) + foot + top
    if len(set(heights)) > 1:
        subplot_kw.setdefault("gridspec_kw", {})["height_ratios"] = heights
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained", **subplot_kw)
    right = legend_right_in / width
    fig.get_layout_engine().set(rect=(0, foot / height, 1 - right, 1 - (foot + top) / height), h_pad=0.06, w_pad=0.06)
    fig._edgeasr_band = (height, title_in)
    fig._edgeasr_right = (right, (foot + top) / height, top / height)
    if lines:
        fig.text(0.008, 0.008, "\n".join(lines), ha="left", va="bottom", fontsize=7, color="#444444", linespacing=1.25)
    return fig, axes


def draw_title(fig, title: str, subtitle: str = ""):
    """Title (and subtitle) at the top left, in the band ``new_figure`` reserved; the font shrinks
    (down to 8 pt) rather than let a long title run off a narrow figure."""
    height, _ = fig._edgeasr_band
    width_pt = fig.get_size_inches()[0] * 72 * 0.97

    def size(text, largest):
        return max(8.0, min(largest, width_pt / (max(len(text), 1) * 0.62)))

    y = 1 - 0.08 / height
    fig.text(0.01, y, title, ha="left", va="top", fontsize=size(title, 11.5), fontweight="bold")
    if subtitle:
        fig.text(0.01, y - 0.27 / height, subtitle, ha="left", va="top", fontsize=size(subtitle, 9), color="#333333")


def legend_top(fig, handles, ncol):
    """Legend in the band under the title (space reserved by ``new_figure(legend_rows=...)``)."""
    if handles:
        height, title_in = fig._edgeasr_band
        fig.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - title_in / height), ncol=ncol, fontsize=8
        )


def legend_right(fig, handles, **kw):
    """Legend in the right-hand column reserved by ``new_figure(legend_right_in=...)``, top-aligned with
    the axes."""
    right, _, top = fig._edgeasr_right
    if handles:
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1 - right + 0.005, 1 - top),
            fontsize=7.5,
            borderaxespad=0,
            **kw,
        )


def legend_width_in(labels: Iterable[str], fontsize: float = 7.5, title: str = "") -> float:
    """Inches a one-column legend needs for ``labels`` (estimate; marker and padding included)."""
    longest = max([len(line) for l in labels for line in str(l).split("\n")] + [len(title) * 1.05, 8])
    return longest * fontsize * 0.56 / 72 + 0.75


def legend_ncol(labels: list[str], width_in: float, fontsize: float = 8.0) -> int:
    """Most legend columns (at most 4) whose entries fit side by side in ``width_in``."""
    entry = max(legend_width_in(labels, fontsize) - 0.25, 0.5)
    return max(1, min(len(labels), 4, int((width_in - 0.3) // entry)))


def legend_rows(labels: list[str], ncol: int) -> int:
    """Text lines the legend needs (entries fill rows of ``ncol``; a wrapped label makes its row taller)."""
    lines = [str(l).count("\n") + 1 for l in labels]
    return sum(max(lines[i : i + ncol]) for i in range(0, len(lines), ncol))


def with_provenance(cells, extra: list[str] | None = None) -> list[str]:
    return [n for n in (extra or []) if n] + [provenance(cells)]


def empty_panel(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="#555555", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def gap_notes(gaps: Iterable[str], prefix="Hatched = no measurement. Reasons: ") -> str:
    uniq = list(dict.fromkeys(g for g in gaps if g))
    if not uniq:
        return ""
    shown = uniq[:6]
    more = f"; and {len(uniq) - 6} more (see results/tables/cells.csv)" if len(uniq) > 6 else ""
    return prefix + "; ".join(shown) + more + "."


def paper_missing_note(data: pd.DataFrame, show_paper: bool, paper: pd.DataFrame, figures: Iterable[str]) -> str:
    """Why no study marker appears although the study has values (empty when some do appear)."""
    if not show_paper or data["paper_value"].notna().any():
        return ""
    mapped = set(data["paper_model"]) - {""}
    if not mapped:
        return "No model of this run maps to a model of the study (paper_model is empty), so no study values are drawn."
    rows = paper[paper["figure"].isin(list(figures)) & paper["paper_model"].isin(mapped)]
    if len(rows):
        combos = sorted(set(rows["paper_engine"] + " " + rows["precision"]))
        return (
            "The study has values for these models only with "
            + ", ".join(combos)
            + ", which this run does not have, so no study values are drawn."
        )
    return "The study reports no value for the models of this run in this figure."


# --------------------------------------------------------------------------------------------------
# scatter labels and axes
# --------------------------------------------------------------------------------------------------
def place_labels(
    ax, xs, ys, texts, fontsize=7.5, color="#222222", style="normal", taken=None, radii=None, obstacles=()
):
    """Greedy label placement: try spots around each point (right, left, above, below, diagonals, then
    farther out) and keep the first whose box stays inside the axes and overlaps no earlier label and no
    point of ``obstacles`` ((x, y, radius in pt) in data coordinates). Box sizes are estimated from the
    text length. Returns the occupied boxes, to be passed on as ``taken``."""
    fig = ax.figure
    fig.draw_without_rendering()  # final layout, so that the boxes below are where the labels will be
    px_per_pt = fig.dpi / 72
    taken = [] if taken is None else taken
    for ox, oy, r in obstacles:
        if is_num(ox) and is_num(oy):
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
            spots += [
                (r + 2 + extra, -h / 2),
                (-r - 2 - w - extra, -h / 2),
                (-w / 2, r + 1 + extra),
                (-w / 2, -r - 1 - h - extra),
                (d + extra, d + extra),
                (d + extra, -d - h - extra),
                (-d - w - extra, d + extra),
                (-d - w - extra, -d - h - extra),
            ]
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
        ax.annotate(
            text,
            (x, y),
            xytext=(lx, ly + 0.1 * fontsize),
            textcoords="offset points",
            fontsize=fontsize,
            color=color,
            style=style,
            ha="left",
            va="bottom",
            zorder=7,
            in_layout=False,
            arrowprops=dict(arrowstyle="-", color="#999999", linewidth=0.6, shrinkA=0, shrinkB=r) if far else None,
        )
    return taken


def stack_labels(ax, x, ys, texts, fontsize=6.5):
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
        ax.annotate(
            texts[i],
            (x, ys[i]),
            xytext=(9, (at[k] - y0[k]) / px),
            textcoords="offset points",
            fontsize=fontsize,
            color="#555555",
            style="italic",
            ha="left",
            va="center",
            zorder=7,
            in_layout=False,
            arrowprops=dict(arrowstyle="-", color="#999999", linewidth=0.6, shrinkA=0, shrinkB=4) if moved else None,
        )


def log_if_wide(ax, values, axis="x"):
    """Log scale (ticks 1-2-5, plain numbers) when the values span more than a factor 15."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    vals = [v for v in values if is_num(v) and v > 0]
    if len(vals) >= 2 and max(vals) / min(vals) > 15:
        axis_obj = ax.xaxis if axis == "x" else ax.yaxis
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        axis_obj.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis_obj.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis_obj.set_minor_formatter(NullFormatter())
        return True
    return False
