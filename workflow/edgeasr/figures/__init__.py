"""Figures, precision-effect table and findings, built only from ``results/tables/cells.csv``.

Every figure of the reference study (arXiv 2405.01004: Fig. 4, 5, 7, 8) is rebuilt from this run's
cells, with the study's own values (``resources/reference/paper_2405.01004_figures.csv``, measured on
a Jetson Orin Nano) drawn as a separate marker layer, plus what the study lacked: WER against SNR,
the accuracy / cost Pareto front, the precision effect (table + heat map) and a findings table.

Layout of this package (everything below is importable from ``edgeasr.figures`` itself):

* :mod:`.options`: the ``figures:`` config section (:func:`resolve_options`)
* :mod:`.constants`: the cells table's columns, the study's conventions, axis labels
* :mod:`.cells`: loading / normalising (:func:`load_cells`, :func:`load_paper`), shared helpers
  (:func:`gap_reason`, :func:`precision_order`, :func:`provenance`, ...)
* :mod:`.study`: the study's twelve models against this run (Fig. 4 and Fig. 8 draw all of them and name,
  with the reason, each one that did not run here)
* :mod:`.data`: the data behind each figure (pure pandas, unit-tested): :func:`fig4_data`,
  :func:`bar_metric_data`, :func:`fig5_data`, :func:`fig7_data`, :func:`fig8_data`, :func:`snr_data`,
  :func:`wer_condition_data`, :func:`pareto_data`, :func:`pareto_front`, :func:`precision_effect`
* :mod:`.claims`: the findings table (:func:`findings`, :func:`findings_markdown`)
* plotting, one module per family, each ``plot_*`` returning a matplotlib figure (matplotlib / seaborn are
  imported lazily): :mod:`.bars` (Fig. 4, 5, 7), :mod:`.scatter` (Fig. 8, Pareto), :mod:`.lines` (WER vs SNR,
  WER vs condition), :mod:`.heatmap` (precision effect), :mod:`.bits` (WER vs weight bits, the sub-8-bit
  study); shared helpers in :mod:`.plotting`
* :mod:`.io`: writing figures and tables atomically (:mod:`edgeasr.atomic`)
* :mod:`.commands`: every figure and table by name (:data:`COMMANDS`, :func:`command_options`, :func:`run`)
* entry points: :mod:`.cli` (``python -m edgeasr.figures NAME --cells CELLS --paper PAPER --out OUT...
  --option k=v``) and :mod:`.job` (the Snakemake ``script:`` of the figure rules)

A cell with no measurement (``unsupported``, ``failed``, or a metric its backend cannot give, such as
energy with ``energy_backend == none``) is drawn as a hatched grey placeholder carrying the reason, never
as zero.
"""

from __future__ import annotations

from .bars import plot_fig4, plot_fig5, plot_fig7
from .bits import bits_data, plot_wer_vs_bits
from .cells import (
    clean_cells,
    empty_paper,
    energy_backends,
    gap_reason,
    is_num,
    load_cells,
    load_paper,
    metric_values,
    model_label,
    model_order,
    normalise_cells,
    paper_lookup,
    precision_order,
    provenance,
    ran_cells,
    short_reason,
    status_text,
    study_noisy_condition,
    uniq,
)
from .claims import FINDINGS_COLUMNS, NOT_MEASURABLE, REFUTED, SUPPORTED, findings, findings_markdown
from .cli import main
from .commands import COMMANDS, FIGURE_NAMES, Command, command_options, run
from .constants import (
    BASELINE_PRECISION,
    CLEAN,
    EFFECT_METRICS,
    ENERGY_METRICS,
    FP16_HALVES_MAX_RATIO,
    MEMORY_METRICS,
    METRIC_LABELS,
    METRIC_SHORT,
    NUMERIC_COLUMNS,
    PAPER_AUDIO_S,
    PAPER_CONDITION,
    PAPER_DEVICE,
    PAPER_LABEL,
    PAPER_PRECISION,
    PRECISION_ORDER,
    REQUIRED_COLUMNS,
    STATUSES,
    STUDY_MODEL_PARAMS_M,
    STUDY_NOISY_KIND,
    TEXT_COLUMNS,
)
from .data import (
    any_energy,
    bar_metric_data,
    choose_fig8_precision,
    condition_order,
    cost_axis,
    fig4_data,
    fig5_data,
    fig7_data,
    fig8_data,
    paper_cost_points,
    pareto_data,
    pareto_front,
    precision_effect,
    snr_data,
    wer_condition_data,
)
from .heatmap import plot_precision_effect
from .io import save_figure
from .lines import plot_wer_vs_condition, plot_wer_vs_snr
from .options import DEFAULT_OPTIONS, FORMATS, OPTION_CHOICES, OPTION_DESCRIPTIONS, coerce_option, resolve_options
from .scatter import plot_fig8, plot_pareto
from .study import STUDY_MODELS, guess_paper_model, not_run_notes, ran_pairs, study_models, study_status

__all__ = [
    # options
    "DEFAULT_OPTIONS",
    "FORMATS",
    "OPTION_CHOICES",
    "OPTION_DESCRIPTIONS",
    "coerce_option",
    "resolve_options",
    # the cells table, the study's values, shared helpers
    "BASELINE_PRECISION",
    "CLEAN",
    "EFFECT_METRICS",
    "ENERGY_METRICS",
    "FP16_HALVES_MAX_RATIO",
    "MEMORY_METRICS",
    "METRIC_LABELS",
    "METRIC_SHORT",
    "NUMERIC_COLUMNS",
    "PAPER_AUDIO_S",
    "PAPER_CONDITION",
    "PAPER_DEVICE",
    "PAPER_LABEL",
    "PAPER_PRECISION",
    "PRECISION_ORDER",
    "REQUIRED_COLUMNS",
    "STATUSES",
    "STUDY_MODEL_PARAMS_M",
    "STUDY_NOISY_KIND",
    "TEXT_COLUMNS",
    "clean_cells",
    "empty_paper",
    "energy_backends",
    "gap_reason",
    "is_num",
    "load_cells",
    "load_paper",
    "metric_values",
    "model_label",
    "model_order",
    "normalise_cells",
    "paper_lookup",
    "precision_order",
    "provenance",
    "ran_cells",
    "short_reason",
    "status_text",
    "study_noisy_condition",
    "uniq",
    # the study's models
    "STUDY_MODELS",
    "guess_paper_model",
    "not_run_notes",
    "ran_pairs",
    "study_models",
    "study_status",
    # the data behind the figures, the findings
    "any_energy",
    "bar_metric_data",
    "choose_fig8_precision",
    "condition_order",
    "cost_axis",
    "fig4_data",
    "fig5_data",
    "fig7_data",
    "fig8_data",
    "paper_cost_points",
    "pareto_data",
    "pareto_front",
    "precision_effect",
    "snr_data",
    "wer_condition_data",
    "FINDINGS_COLUMNS",
    "NOT_MEASURABLE",
    "REFUTED",
    "SUPPORTED",
    "findings",
    "findings_markdown",
    # plotting and output
    "plot_fig4",
    "plot_wer_vs_bits",
    "bits_data",
    "plot_fig5",
    "plot_fig7",
    "plot_fig8",
    "plot_pareto",
    "plot_precision_effect",
    "plot_wer_vs_condition",
    "plot_wer_vs_snr",
    "save_figure",
    # by name: the registry, the runner, the command line
    "COMMANDS",
    "Command",
    "FIGURE_NAMES",
    "command_options",
    "main",
    "run",
]
