# Scoring, power-log parsing and the results tables.


rule score_cell:
    input:
        transcripts=CELL + "/transcripts.csv",
        cell=CELL + "/cell.json",
    output:
        scores=CELL + "/score.json",
        utterances=CELL + "/utterances.csv",
    params:
        bootstrap_samples=config["scoring"]["bootstrap_samples"],
        seed=config["scoring"]["bootstrap_seed"],
        confidence=config["scoring"]["confidence"],
    log:
        "results/logs/" + CELL + "/score.log",
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/score_cell.py"


rule parse_power:
    input:
        power_log=CELL + "/power.log",
        markers=CELL + "/power_markers.jsonl",
        cell=CELL + "/cell.json",
    output:
        CELL + "/energy.json",
    params:
        rails=config["energy"]["rails"],
        interval_ms=config["energy"]["interval_ms"],
    log:
        "results/logs/" + CELL + "/parse_power.log",
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/parse_power.py"


def cell_files(name):
    return [CELL.format(model=c.model, engine=c.engine, precision=c.precision, condition=c.condition) + "/" + name
            for c, _ in RUN_CELLS]


rule aggregate:
    input:
        cells=cell_files("cell.json"),
        scores=cell_files("score.json"),
        energy=cell_files("energy.json"),
        utterances=cell_files("utterances.csv"),
        noise=expand("resources/audio/{condition}/noise.csv", condition=CONDITIONS),
    output:
        cells=report("results/tables/cells.csv", category="Tables", caption="../report/cells_table.rst"),
        utterances=report("results/tables/utterances.csv", category="Tables",
                          caption="../report/utterances_table.rst"),
    params:
        unsupported=[{**c.__dict__, "status": "unsupported", "status_reason": p.reason, "device": DEVICE}
                     for c, p in UNSUPPORTED_CELLS],
        conditions={name: c.as_params() for name, c in CONDITIONS.items()},
        models={name: {"paper_model": m.get("paper_model"), "family": m["family"]}
                for name, m in config["models"].items() if name in config["matrix"]["models"]},
        config_hash=ecfg.stable_hash({k: v for k, v in config.items() if k != "figures"}),
    log:
        "results/logs/aggregate.log",
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/aggregate.py"


ALL_TARGETS += ["results/tables/cells.csv", "results/tables/utterances.csv"]
