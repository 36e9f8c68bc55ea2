# Dataset: download (checksummed), safe extraction, selection of the subset into a manifest.


rule download_dataset:
    output:
        "resources/downloads/{dataset}.archive".format(dataset=config["dataset"]["name"]),
    log:
        "results/logs/dataset/download.log",
    conda:
        "../../envs/edgeasr.yaml"
    params:
        sources=config["dataset"]["sources"],
        timeout_s=config["dataset"]["download_timeout_s"],
    script:
        "../scripts/download_dataset.py"


rule extract_dataset:
    input:
        rules.download_dataset.output,
    output:
        directory("resources/dataset/extracted"),
    log:
        "results/logs/dataset/extract.log",
    conda:
        "../../envs/edgeasr.yaml"
    params:
        max_bytes=config["dataset"]["max_extract_bytes"],
        max_members=config["dataset"]["max_extract_members"],
    script:
        "../scripts/extract_dataset.py"


rule prepare_dataset:
    input:
        dataset_root,
    output:
        manifest="resources/dataset/manifest.csv",
        skipped="resources/dataset/skipped.csv",
        resampled=directory("resources/dataset/resampled"),
    log:
        "results/logs/dataset/prepare.log",
    conda:
        "../../envs/edgeasr.yaml"
    params:
        root=config["dataset"]["extracted_dir"],
        subset=config["dataset"]["subset"],
        on_error=config["dataset"]["on_error"],
    script:
        "../scripts/prepare_dataset.py"
