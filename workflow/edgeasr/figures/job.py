"""The workflow's side: ``workflow/scripts/figure.py``, the ``script:`` of the figure rules
(``workflow/rules/figures.smk``), calls :func:`run_job` with the ``snakemake`` object of its job."""

from __future__ import annotations

from ..report import write_results_readme
from ..smk import job_log
from .commands import run

README = "results_readme"  # the job writing results/README.md (edgeasr.report)


def run_job(smk) -> None:
    """Build the figure, table or README of one Snakemake job, logging into the job's log.

    ``smk.params.name``: a name of :data:`~edgeasr.figures.COMMANDS` (written to every path of
    ``smk.output``) or ``results_readme``; ``smk.params.options``: that figure's or table's own options (a
    dict, typed) or, for the README, the ``figures`` and ``tables`` it links; ``smk.input``: ``cells`` and,
    where the job reads them, ``paper`` (the study's values) or ``findings``."""
    with job_log(smk.log[0] if smk.log else None) as log:
        name, options = smk.params.name, dict(smk.params.options)
        if name == README:
            write_results_readme(smk.input.cells, smk.input.findings, smk.output[0], **options)
        else:
            run(name, smk.input.cells, list(smk.output), smk.input.get("paper"), options)
        log.write(f"{name} ({options}): wrote {', '.join(map(str, smk.output))}\n")
