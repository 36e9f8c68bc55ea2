# Figures, derived tables and results/README.md, built from the results tables only.
#
# Inputs are results/tables/cells.csv (written by the aggregate rule) and the study's reference values,
# never inference outputs: a figure change never reruns a model. Each figure is its own rule whose params
# hold only that figure's own options (from config["figures"]), so editing one plotting option reruns only
# the figure that uses it. All logic lives in edgeasr.figures / edgeasr.report (unit-tested); the rules
# only call them. See docs/figures.md.
#
# Exposes FIGURE_TARGETS (every path below) for the `all` rule.
import shlex
import sys
from pathlib import Path

from edgeasr import figures as _figmod

FIG_OPTIONS = _figmod.resolve_options(config.get("figures"))  # defaults + checks (clear error on a bad value)
FIG_CELLS = "results/tables/cells.csv"
FIG_PAPER = str(Path(workflow.basedir) / "resources" / "reference" / "paper_2405.01004_figures.csv")  # ships with the workflow
FIG_DIR = "results/figures"
FIG_TABLES = "results/tables"
FIG_LOGS = "results/logs/figures"
FIG_CONDA = "../../envs/figures.yaml"  # light env (pandas, matplotlib, seaborn; no torch)


def _fig_python():
    """`python -m edgeasr...` as Snakemake runs a `script:`: the conda env's python under
    --software-deployment-method conda, else the interpreter running Snakemake; edgeasr is importable
    from this checkout either way (it need not be installed in the env)."""
    methods = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", ()) or ()
    python = "python" if any("conda" in str(m).lower() for m in methods) else shlex.quote(sys.executable)
    src = shlex.quote(str(Path(str(workflow.current_basedir)).parent))  # .../workflow, holding edgeasr/
    return f"PYTHONPATH={src}${{{{PYTHONPATH:+:$PYTHONPATH}}}} {python}"


FIG_PYTHON = _fig_python()
FIG_CMD = FIG_PYTHON + " -m edgeasr.figures"
FIG_CAT_STUDY = "Figures of the study (rebuilt)"
FIG_CAT_NEW = "Figures beyond the study"


def fig_paths(name):
    """results/figures/<name>.<ext> for every configured format."""
    return [f"{FIG_DIR}/{name}.{ext}" for ext in FIG_OPTIONS["formats"]]


def fig_options(name):
    """The `--option k=v` arguments of one figure or table: only the keys that figure uses."""
    def text(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (list, tuple)):
            return ",".join(map(str, value))
        return str(value)

    opts = _figmod.command_options(name, FIG_OPTIONS)
    return " ".join("--option " + shlex.quote(f"{k}={text(v)}") for k, v in opts.items())


def fig_outputs(name, category):
    """The figure's files; the first format goes into the HTML report with its caption."""
    paths = fig_paths(name)
    return [report(paths[0], caption=f"../report/{name}.rst", category=category)] + paths[1:]


FIG_TABLE_PATHS = [
    f"{FIG_TABLES}/precision_effect.csv",
    f"{FIG_TABLES}/findings.csv",
    f"{FIG_TABLES}/findings.md",
    f"{FIG_TABLES}/pareto.csv",
]
FIGURE_TARGETS = (
    [p for name in _figmod.FIGURE_NAMES for p in fig_paths(name)]
    + FIG_TABLE_PATHS
    + ["results/README.md"]
)


# ---- the study's figures -------------------------------------------------------------------------
rule fig_fig4_wer_clean_noisy:
    input:
        cells=FIG_CELLS,
        paper=FIG_PAPER,
    output:
        fig_outputs("fig4_wer_clean_noisy", FIG_CAT_STUDY),
    params:
        options=fig_options("fig4_wer_clean_noisy"),
    log:
        f"{FIG_LOGS}/fig4_wer_clean_noisy.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " fig4_wer_clean_noisy --cells {input.cells} --paper {input.paper}"
        " --out {output} {params.options} > {log} 2>&1"


rule fig_fig5_energy:
    input:
        cells=FIG_CELLS,
        paper=FIG_PAPER,
    output:
        fig_outputs("fig5_energy", FIG_CAT_STUDY),
    params:
        options=fig_options("fig5_energy"),
    log:
        f"{FIG_LOGS}/fig5_energy.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " fig5_energy --cells {input.cells} --paper {input.paper}"
        " --out {output} {params.options} > {log} 2>&1"


rule fig_fig7_rtf_memory:
    input:
        cells=FIG_CELLS,
        paper=FIG_PAPER,
    output:
        fig_outputs("fig7_rtf_memory", FIG_CAT_STUDY),
    params:
        options=fig_options("fig7_rtf_memory"),
    log:
        f"{FIG_LOGS}/fig7_rtf_memory.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " fig7_rtf_memory --cells {input.cells} --paper {input.paper}"
        " --out {output} {params.options} > {log} 2>&1"


rule fig_fig8_wer_energy:
    input:
        cells=FIG_CELLS,
        paper=FIG_PAPER,
    output:
        fig_outputs("fig8_wer_energy", FIG_CAT_STUDY),
    params:
        options=fig_options("fig8_wer_energy"),
    log:
        f"{FIG_LOGS}/fig8_wer_energy.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " fig8_wer_energy --cells {input.cells} --paper {input.paper}"
        " --out {output} {params.options} > {log} 2>&1"


# ---- what the study lacked -----------------------------------------------------------------------
rule fig_wer_vs_condition:
    input:
        cells=FIG_CELLS,
    output:
        fig_outputs("wer_vs_condition", FIG_CAT_NEW),
    params:
        options=fig_options("wer_vs_condition"),
    log:
        f"{FIG_LOGS}/wer_vs_condition.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " wer_vs_condition --cells {input.cells} --out {output} {params.options} > {log} 2>&1"


rule fig_wer_vs_snr:
    input:
        cells=FIG_CELLS,
    output:
        fig_outputs("wer_vs_snr", FIG_CAT_NEW),
    params:
        options=fig_options("wer_vs_snr"),
    log:
        f"{FIG_LOGS}/wer_vs_snr.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " wer_vs_snr --cells {input.cells} --out {output} {params.options} > {log} 2>&1"


rule fig_pareto:
    input:
        cells=FIG_CELLS,
        paper=FIG_PAPER,
    output:
        fig_outputs("pareto", FIG_CAT_NEW),
    params:
        options=fig_options("pareto"),
    log:
        f"{FIG_LOGS}/pareto.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " pareto --cells {input.cells} --paper {input.paper}"
        " --out {output} {params.options} > {log} 2>&1"


rule fig_precision_effect:
    input:
        cells=FIG_CELLS,
    output:
        fig_outputs("precision_effect", FIG_CAT_NEW),
    params:
        options=fig_options("precision_effect"),
    log:
        f"{FIG_LOGS}/precision_effect.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " precision_effect --cells {input.cells} --out {output} {params.options} > {log} 2>&1"


# ---- derived tables ------------------------------------------------------------------------------
rule fig_precision_effect_table:
    input:
        cells=FIG_CELLS,
    output:
        report(f"{FIG_TABLES}/precision_effect.csv", caption="../report/precision_effect_table.rst",
               category="Tables"),
    log:
        f"{FIG_LOGS}/precision_effect_table.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " precision_effect_table --cells {input.cells} --out {output} > {log} 2>&1"


rule fig_findings:
    input:
        cells=FIG_CELLS,
        paper=FIG_PAPER,
    output:
        csv=report(f"{FIG_TABLES}/findings.csv", caption="../report/findings.rst", category="Tables"),
        md=f"{FIG_TABLES}/findings.md",
    params:
        options=fig_options("findings"),
    log:
        f"{FIG_LOGS}/findings.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " findings --cells {input.cells} --paper {input.paper}"
        " --out {output.csv} {output.md} {params.options} > {log} 2>&1"


rule fig_pareto_table:
    input:
        cells=FIG_CELLS,
    output:
        report(f"{FIG_TABLES}/pareto.csv", caption="../report/pareto_table.rst", category="Tables"),
    params:
        options=fig_options("pareto_table"),
    log:
        f"{FIG_LOGS}/pareto_table.log",
    conda:
        FIG_CONDA
    shell:
        FIG_CMD + " pareto_table --cells {input.cells} --out {output} {params.options} > {log} 2>&1"


# ---- results/README.md ---------------------------------------------------------------------------
# Links the figures without depending on them: a figure rerun does not rewrite the README.
rule fig_results_readme:
    input:
        cells=FIG_CELLS,
        findings=f"{FIG_TABLES}/findings.csv",
    output:
        report("results/README.md", caption="../report/results_readme.rst", category="Summary"),
    params:
        figures=" ".join(f"--figure {shlex.quote(fig_paths(n)[0])}" for n in _figmod.FIGURE_NAMES),
        tables=" ".join(f"--table {shlex.quote(p)}" for p in
                        [FIG_CELLS, f"{FIG_TABLES}/utterances.csv"] + FIG_TABLE_PATHS),
    log:
        f"{FIG_LOGS}/results_readme.log",
    conda:
        FIG_CONDA
    shell:
        FIG_PYTHON + " -m edgeasr.report --cells {input.cells} --findings {input.findings} --out {output}"
        " {params.figures} {params.tables} > {log} 2>&1"
