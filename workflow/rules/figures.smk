# Figures, derived tables and results/README.md, built from the results tables only.
#
# Inputs are results/tables/cells.csv (written by the aggregate step) and the study's reference values,
# never inference outputs: a figure change never reruns a model. One job per figure (`figure`) and one
# per table file or README (`figure_table`); each job's params hold only its own options from
# config["figures"], typed, so editing one plotting option reruns only the figures that use it. All logic
# lives in edgeasr.figures / edgeasr.report (unit-tested); workflow/scripts/figure.py only calls
# edgeasr.figures.job.run_job. Names, paths and helpers: figures_common.smk. See docs/figures.md.
#
# Exposes FIGURE_TARGETS (every output below) for the `all` target.


include: "figures_common.smk"


# results/figures/<name>.<format>, one job per figure (edgeasr.figures.FIGURE_NAMES)
rule figure:
    input:
        unpack(fig_inputs),
    output:
        fig_outputs(),
    log:
        "results/logs/figures/{name}.log",
    wildcard_constraints:
        name=FIG_NAME_PATTERN,
    conda:
        FIG_CONDA
    params:
        name="{name}",
        options=fig_options,
    script:
        "../scripts/figure.py"


# results/tables/{precision_effect,findings,pareto}.csv, findings.md and results/README.md, one job each
rule figure_table:
    input:
        unpack(fig_table_inputs),
    output:
        report("results/{table}", caption="../report/table.rst", category=fig_table_category),
    log:
        "results/logs/figures/{table}.log",
    wildcard_constraints:
        table=FIG_TABLE_PATTERN,
    conda:
        FIG_CONDA
    params:
        name=fig_table_name,
        options=fig_table_options,
    script:
        "../scripts/figure.py"
