# Dataset: download (checksummed), safe extraction, selection of the subset into a manifest.


rule download_dataset:
    output:
        "resources/downloads/{dataset}.archive".format(dataset=config["dataset"]["name"]),
    params:
        sources=config["dataset"]["sources"],
        timeout_s=config["dataset"]["download_timeout_s"],
    log:
        "results/logs/dataset/download.log",
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/download_dataset.py"


rule extract_dataset:
    input:
        rules.download_dataset.output,
    output:
        directory("resources/dataset/extracted"),
    params:
        max_bytes=config["dataset"]["max_extract_bytes"],
        max_members=config["dataset"]["max_extract_members"],
    log:
        "results/logs/dataset/extract.log",
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/extract_dataset.py"


def dataset_root(wildcards):
    return [] if config["dataset"]["extracted_dir"] else rules.extract_dataset.output


rule prepare_dataset:
    input:
        dataset_root,
    output:
        manifest="resources/dataset/manifest.csv",
        skipped="resources/dataset/skipped.csv",
        resampled=directory("resources/dataset/resampled"),
    params:
        root=config["dataset"]["extracted_dir"],
        subset=config["dataset"]["subset"],
        on_error=config["dataset"]["on_error"],
    log:
        "results/logs/dataset/prepare.log",
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/prepare_dataset.py"
