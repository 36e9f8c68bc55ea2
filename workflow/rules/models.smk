# Models: fetch each model's source once, convert it to the other engine's format when needed.


def model_cfg(model):
    return config["models"][model]


ENGINE_FORMAT = {"faster-whisper": "ctranslate2", "transformers": "transformers"}


def model_dir(model, engine):
    """The folder an engine loads: the source itself, or its conversion to the engine's format."""
    need = ENGINE_FORMAT[engine]
    if model_cfg(model)["format"] == need:
        return f"resources/models/{model}/source"
    return f"resources/models/{model}/converted-{need}"


rule fetch_model:
    output:
        directory("resources/models/{model}/source"),
    params:
        source=lambda wc: model_cfg(wc.model)["source"],
        format=lambda wc: model_cfg(wc.model)["format"],
        on_failure=config["inference"]["on_failure"],
    log:
        "results/logs/models/{model}/fetch.log",
    conda:
        "../../envs/edgeasr.yaml"
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
    wildcard_constraints:
        precision="|".join(map(re.escape, QUANTIZERS)) or "(?!)",
    params:
        quantizer=lambda wc: QUANTIZERS[wc.precision],
        family=lambda wc: model_cfg(wc.model)["family"],
    threads: config["inference"]["threads"]
    log:
        "results/logs/models/{model}/quantize-{precision}.log",
    benchmark:
        "results/benchmarks/models/{model}/quantize-{precision}.tsv"
    conda:
        "../../envs/edgeasr.yaml"
    script:
        "../scripts/quantize_model.py"
