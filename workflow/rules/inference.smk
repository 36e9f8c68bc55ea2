# Inference: one job per (model, engine, precision, condition) cell, pinned to the accelerator.
rule infer:
    input:
        unpack(cell_inputs),
    output:
        transcripts=cell_file("transcripts.csv"),
        cell=cell_file("cell.json"),
        power_log=cell_file("power.log"),
        markers=cell_file("power_markers.jsonl"),
    log:
        cell_log("infer.log"),
    benchmark:
        cell_benchmark("infer.tsv")
    conda:
        "../../envs/edgeasr.yaml"
    threads: config["inference"]["threads"]
    resources:
        accelerator=1,
    params:
        cell=cell_params,
        energy={
            "backend": ENERGY_BACKEND,
            "interval_ms": config["energy"]["interval_ms"],
            "idle_s": config["energy"]["idle_s"],
            "sudo": config["energy"]["tegrastats_sudo"],
            "tegrastats_path": config["energy"]["tegrastats_path"],
        },
    script:
        "../scripts/infer.py"
