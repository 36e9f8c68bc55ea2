"""The figures and tables by name (:data:`COMMANDS`): what builds each one, which options it reads, and
:func:`run`, which builds one of them from the tables (behind the command line and the workflow's jobs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .bars import plot_fig4, plot_fig5, plot_fig7
from .bits import plot_wer_vs_bits
from .cells import empty_paper, load_cells, load_paper
from .heatmap import plot_precision_effect
from .io import save_figure, write_findings, write_pareto_table, write_precision_effect_table
from .lines import plot_wer_vs_condition, plot_wer_vs_snr
from .options import DEFAULT_OPTIONS, coerce_option, resolve_options
from .scatter import plot_fig8, plot_pareto


@dataclass(frozen=True)
class Command:
    kind: str  # "figure" or "table"
    func: Callable
    options: tuple  # the `figures:` options it reads (its rule's params hold these only)
    description: str
    paper: bool = True  # reads the study's reference values (an input of its job)


COMMANDS: dict[str, Command] = {
    "fig4_wer_clean_noisy": Command(
        "figure",
        plot_fig4,
        ("dpi", "show_paper", "fig4_noisy_amplitude"),
        "Fig. 4: WER clean vs the study's noisy (uniform) set, per engine x precision",
    ),
    "fig5_energy": Command(
        "figure",
        plot_fig5,
        ("dpi", "show_paper", "energy_metric"),
        "Fig. 5: energy per model at each precision (clean)",
    ),
    "fig7_rtf_memory": Command(
        "figure",
        plot_fig7,
        ("dpi", "show_paper", "memory_metric", "rtf_include_load"),
        "Fig. 7: real-time factor and peak memory per model and precision (clean)",
    ),
    "fig8_wer_energy": Command(
        "figure",
        plot_fig8,
        ("dpi", "show_paper", "fig8_precision", "energy_metric", "memory_metric"),
        "Fig. 8: WER vs energy (or time), colour = RTF, size = memory",
    ),
    "wer_vs_condition": Command(
        "figure",
        plot_wer_vs_condition,
        ("dpi",),
        "WER against noise condition, one line per model x engine x precision",
        paper=False,
    ),
    "wer_vs_snr": Command(
        "figure",
        plot_wer_vs_snr,
        ("dpi", "snr_ci_style"),
        "WER against SNR per noise kind, bootstrap intervals, clean at the right",
        paper=False,
    ),
    "pareto": Command(
        "figure",
        plot_pareto,
        ("dpi", "show_paper", "pareto_x", "energy_metric", "pareto_by_condition"),
        "accuracy / energy (or time) Pareto front",
    ),
    "precision_effect": Command(
        "figure",
        plot_precision_effect,
        ("dpi", "precision_effect_condition", "memory_metric", "energy_metric"),
        "heat map of the relative change from fp32",
        paper=False,
    ),
    "wer_vs_bits": Command(
        "figure",
        plot_wer_vs_bits,
        ("dpi",),
        "WER against weight bits per quantizer method and training mode (the sub-8-bit study)",
        paper=False,
    ),
    "precision_effect_table": Command(
        "table", write_precision_effect_table, (), "results/tables/precision_effect.csv", paper=False
    ),
    "findings": Command(
        "table",
        write_findings,
        ("energy_metric", "fig4_noisy_amplitude"),
        "results/tables/findings.csv and findings.md",
    ),
    "pareto_table": Command(
        "table",
        write_pareto_table,
        ("pareto_x", "energy_metric", "pareto_by_condition"),
        "results/tables/pareto.csv: every cell's cost, WER and front membership",
        paper=False,
    ),
}
FIGURE_NAMES = [n for n, c in COMMANDS.items() if c.kind == "figure"]


def command_options(name: str, options: dict | None = None) -> dict:
    """The options a command uses, from ``options`` (e.g. the resolved config section) or defaults."""
    options = resolve_options(options)
    return {k: options[k] for k in COMMANDS[name].options}


def run(name: str, cells_path, outs: list, paper_path=None, options: dict | None = None) -> None:
    """Build one figure / table from the tables (the API behind the command line and the workflow)."""
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
