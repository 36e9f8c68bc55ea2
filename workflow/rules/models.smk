# Models: fetch each model's source once, convert it to the other engine's format when needed.


rule fetch_model:
    output:
        directory("resources/models/{model}/source"),
    log:
        "results/logs/models/{model}/fetch.log",
    conda:
        "../../envs/edgeasr.yaml"
    params:
        source=lambda wc: model_cfg(wc.model)["source"],
        format=lambda wc: model_cfg(wc.model)["format"],
        on_failure=config["inference"]["on_failure"],
    script:
        "../scripts/fetch_model.py"


rule convert_ct2_to_transformers:
    input:
        "resources/models/{model}/source",
    output:
        directory("resources/models/{model}/converted-transformers"),
    log:
        "results/logs/models/{model}/convert-transformers.log",
    benchmark:
        "results/benchmarks/models/{model}/convert-transformers.tsv"
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/convert_model.py"


rule convert_transformers_to_ct2:
    input:
        "resources/models/{model}/source",
    output:
        directory("resources/models/{model}/converted-ctranslate2"),
    log:
        "results/logs/models/{model}/convert-ctranslate2.log",
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/convert_model.py"


rule quantize_model:
    input:
        model=lambda wc: model_dir(wc.model, "transformers"),
        manifest="resources/dataset/manifest.csv",
    output:
        packed="resources/models/{model}/quantized/{precision}.gq",
        report="resources/models/{model}/quantized/{precision}.json",
    log:
        "results/logs/models/{model}/quantize-{precision}.log",
    benchmark:
        "results/benchmarks/models/{model}/quantize-{precision}.tsv"
    wildcard_constraints:
        precision="|".join(map(re.escape, QUANTIZERS)) or "(?!)",
    conda:
        "../../envs/edgeasr.yaml"
    threads: config["inference"]["threads"]
    params:
        quantizer=lambda wc: QUANTIZERS[wc.precision],
        family=lambda wc: model_cfg(wc.model)["family"],
    script:
        "../scripts/quantize_model.py"
