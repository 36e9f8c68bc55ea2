"""Writing figures and tables: every file through :mod:`edgeasr.atomic` (written to a temporary name beside
it and renamed, so a failure leaves nothing half-written)."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path, write_csv, write_text
from .claims import findings, findings_markdown
from .data import pareto_data, precision_effect
from .options import FORMATS
from .plotting import fit_texts

FINDINGS_MD_TITLE = "# Findings: the study's claims against this run\n\n"
FINDINGS_MD_FOOTER = "\nVerdicts are computed by `edgeasr.figures.findings` (see docs/figures.md).\n"


def save_figure(fig, outs: list, dpi: int = 150) -> None:
    """Write ``fig`` to every path of ``outs`` (format from the suffix), each atomically (edgeasr.atomic)."""
    import matplotlib.pyplot as plt

    fit_texts(fig)
    for out in outs:
        out = Path(out)
        fmt = out.suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            raise ValueError(f"{out}: unsupported figure format {fmt!r} (expected one of {FORMATS})")
        meta = {"Date": None} if fmt in ("svg", "pdf") else {"Software": None}
        if fmt == "pdf":
            meta = {"CreationDate": None}
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
    plt.close(fig)


def write_precision_effect_table(cells, paper, outs, **_) -> None:
    """``results/tables/precision_effect.csv``."""
    for out in outs:
        write_csv(out, precision_effect(cells))


def write_findings(cells, paper, outs, energy_metric="energy_j", fig4_noisy_amplitude=0.1, **_) -> None:
    """``results/tables/findings.csv`` and/or ``findings.md`` (by each output's suffix)."""
    table = findings(cells, paper, energy_metric, fig4_noisy_amplitude)
    for out in outs:
        if str(out).endswith(".md"):
            write_text(out, FINDINGS_MD_TITLE + findings_markdown(table) + FINDINGS_MD_FOOTER)
        else:
            write_csv(out, table)


def write_pareto_table(
    cells, paper, outs, pareto_x="auto", energy_metric="energy_j", pareto_by_condition=False, **_
) -> None:
    """``results/tables/pareto.csv``: every cell's cost, WER and front membership."""
    data, _meta = pareto_data(cells, pareto_x, energy_metric, pareto_by_condition)
    for out in outs:
        write_csv(out, data)
