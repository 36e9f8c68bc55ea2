# Noise: one job per noise condition writes the noisy copy of every utterance and a per-utterance table.


rule add_noise:
    input:
        manifest="resources/dataset/manifest.csv",
    output:
        audio=directory("resources/audio/{condition}/files"),
        table="resources/audio/{condition}/noise.csv",
    log:
        "results/logs/noise/{condition}.log",
    benchmark:
        "results/benchmarks/noise/{condition}.tsv"
    conda:
        "../../envs/edgeasr.yaml"
    params:
        condition=lambda wc: noise_params(wc.condition),
        seed=config["noise"]["seed"],
        format=config["noise"]["format"],
        max_snr_error_db=config["noise"]["max_snr_error_db"],
    script:
        "../scripts/add_noise.py"
