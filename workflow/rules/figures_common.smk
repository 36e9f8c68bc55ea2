# Names, paths and helper functions of the figure jobs (workflow/rules/figures.smk, which includes this
# file): the Snakemake linter wants functions apart from rules. Logic lives in edgeasr.figures.
import re
from pathlib import Path

from edgeasr import figures as figlib

FIG_OPTIONS = figlib.resolve_options(config.get("figures"))  # defaults + checks (clear error on a bad value)
FIG_CELLS = "results/tables/cells.csv"
# the study's values ship with the workflow (found also under --directory)
FIG_PAPER = str(Path(workflow.basedir) / "resources" / "reference" / "paper_2405.01004_figures.csv")
FIG_CONDA = "../../envs/figures.yaml"  # light env (pandas, matplotlib, seaborn; no torch)
FIG_STUDY = ("fig4_wer_clean_noisy", "fig5_energy", "fig7_rtf_memory", "fig8_wer_energy")  # rebuilt from the study
FIG_README = "results_readme"  # the job writing results/README.md (edgeasr.report)
# Each file under results/ that a table job writes, and the table (edgeasr.figures.COMMANDS) it comes from.
FIG_TABLE_JOBS = {
    "tables/precision_effect.csv": "precision_effect_table",
    "tables/findings.csv": "findings",
    "tables/findings.md": "findings",
    "tables/pareto.csv": "pareto_table",
    "README.md": FIG_README,
}
FIG_NAME_PATTERN = "|".join(figlib.FIGURE_NAMES)
FIG_TABLE_PATTERN = "|".join(re.escape(path) for path in FIG_TABLE_JOBS)


def fig_paths(name):
    """results/figures/<name>.<ext> for every configured format."""
    return [f"results/figures/{name}.{ext}" for ext in FIG_OPTIONS["formats"]]


def fig_category(wildcards):
    """The report category of a figure."""
    return "Figures of the study (rebuilt)" if wildcards.name in FIG_STUDY else "Figures beyond the study"


def fig_outputs():
    """A figure's files; the first format goes into the HTML report with its caption."""
    first, *others = fig_paths("{name}")
    return [report(first, caption="../report/figure.rst", category=fig_category), *others]


def fig_job_inputs(name):
    """The cells table, and the study's values for the figures and tables that draw them."""
    files = {"cells": FIG_CELLS}
    if figlib.COMMANDS[name].paper:
        files["paper"] = FIG_PAPER
    return files


def fig_inputs(wildcards):
    return fig_job_inputs(wildcards.name)


def fig_options(wildcards):
    """The figure's own options (typed), nothing else: editing another option does not rerun it."""
    return figlib.command_options(wildcards.name, FIG_OPTIONS)


def fig_table_name(wildcards):
    return FIG_TABLE_JOBS[wildcards.table]


def fig_table_inputs(wildcards):
    """As fig_inputs; the README reads the cells and the findings (and links the figures without needing them,
    so a figure rerun does not rewrite it)."""
    name = fig_table_name(wildcards)
    if name == FIG_README:
        return {"cells": FIG_CELLS, "findings": "results/tables/findings.csv"}
    return fig_job_inputs(name)


def fig_table_options(wildcards):
    """The table's own options; for the README, the figures (first format) and tables it links."""
    name = fig_table_name(wildcards)
    if name == FIG_README:
        tables = [FIG_CELLS, "results/tables/utterances.csv"]
        tables += [f"results/{path}" for path in FIG_TABLE_JOBS if path.startswith("tables/")]
        return {"figures": [fig_paths(n)[0] for n in figlib.FIGURE_NAMES], "tables": tables}
    return figlib.command_options(name, FIG_OPTIONS)


def fig_table_category(wildcards):
    return "Summary" if FIG_TABLE_JOBS[wildcards.table] == FIG_README else "Tables"


# Every output of the figure jobs, for the `all` target of the Snakefile.
FIGURE_TARGETS = [path for name in figlib.FIGURE_NAMES for path in fig_paths(name)]
FIGURE_TARGETS += [f"results/{path}" for path in FIG_TABLE_JOBS]
