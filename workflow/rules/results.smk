# The results tables. Each cell's scores (from its transcripts) and energy (from its power log) are
# derived here from the cell's raw outputs: the measurement job only measures, and a change of the
# scoring or energy settings re-derives the tables without rerunning any measurement. One job per cell
# keeps planning cheap (docs/benchmarks.md: Snakemake's own cost is about 1 ms per job).


rule aggregate:
    input:
        cells=cell_files("cell.json"),
        transcripts=cell_files("transcripts.csv"),
        power_logs=cell_files("power.log"),
        markers=cell_files("power_markers.jsonl"),
        noise=expand("resources/audio/{condition}/noise.csv", condition=CONDITIONS),
    output:
        cells=report("results/tables/cells.csv", category="Tables", caption="../report/cells_table.rst"),
        utterances=report("results/tables/utterances.csv", category="Tables", caption="../report/utterances_table.rst"),
    log:
        "results/logs/aggregate.log",
    conda:
        "../../envs/edgeasr.yaml"
    threads: 8  # capped at --cores on one machine; processes that derive the cells
    params:
        scoring={
            "samples": config["scoring"]["bootstrap_samples"],
            "seed": config["scoring"]["bootstrap_seed"],
            "confidence": config["scoring"]["confidence"],
        },
        energy={"rails": config["energy"]["rails"], "interval_ms": config["energy"]["interval_ms"]},
        unsupported=[
            {**c.__dict__, "status": "unsupported", "status_reason": p.reason, "device": DEVICE}
            for c, p in UNSUPPORTED_CELLS
        ],
        conditions={name: c.as_params() for name, c in CONDITIONS.items()},
        models={
            name: {"paper_model": m.get("paper_model"), "family": m["family"]}
            for name, m in config["models"].items()
            if name in config["matrix"]["models"]
        },
        config_hash=ecfg.stable_hash({k: v for k, v in config.items() if k != "figures"}),
    script:
        "../scripts/aggregate.py"


ALL_TARGETS += ["results/tables/cells.csv", "results/tables/utterances.csv"]
