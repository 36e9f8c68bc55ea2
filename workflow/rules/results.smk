# Scoring, power-log parsing and the results tables.


rule score_cell:
    input:
        transcripts=cell_file("transcripts.csv"),
        cell=cell_file("cell.json"),
    output:
        scores=cell_file("score.json"),
        utterances=cell_file("utterances.csv"),
    log:
        cell_log("score.log"),
    conda:
        "../../envs/edgeasr.yaml"
    params:
        bootstrap_samples=config["scoring"]["bootstrap_samples"],
        seed=config["scoring"]["bootstrap_seed"],
        confidence=config["scoring"]["confidence"],
    script:
        "../scripts/score_cell.py"


rule parse_power:
    input:
        power_log=cell_file("power.log"),
        markers=cell_file("power_markers.jsonl"),
        cell=cell_file("cell.json"),
    output:
        cell_file("energy.json"),
    log:
        cell_log("parse_power.log"),
    conda:
        "../../envs/edgeasr.yaml"
    params:
        rails=config["energy"]["rails"],
        interval_ms=config["energy"]["interval_ms"],
    script:
        "../scripts/parse_power.py"


rule aggregate:
    input:
        cells=cell_files("cell.json"),
        scores=cell_files("score.json"),
        energy=cell_files("energy.json"),
        utterances=cell_files("utterances.csv"),
        noise=expand("resources/audio/{condition}/noise.csv", condition=CONDITIONS),
    output:
        cells=report("results/tables/cells.csv", category="Tables", caption="../report/cells_table.rst"),
        utterances=report("results/tables/utterances.csv", category="Tables", caption="../report/utterances_table.rst"),
    log:
        "results/logs/aggregate.log",
    conda:
        "../../envs/edgeasr.yaml"
    params:
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
