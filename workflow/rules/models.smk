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


# Training speech for quantization-aware training: English text spoken by espeak-ng (never the test text).
rule synthesize_training_speech:
    input:
        text=lambda wc: str(training_text(wc.speech)),
        test_manifest="resources/dataset/manifest.csv",
    output:
        manifest="resources/training/{speech}/manifest.csv",
        audio=directory("resources/training/{speech}/audio"),
        report="resources/training/{speech}/report.json",
    log:
        "results/logs/training/{speech}/synthesize.log",
    conda:
        "../../envs/edgeasr.yaml"
    params:
        settings=lambda wc: config["training_speech"][wc.speech],
    script:
        "../scripts/synthesize_training_speech.py"


# The fp32 model's decoding of the training speech: the distillation targets.
rule teacher_targets:
    input:
        model=lambda wc: model_dir(wc.model, "transformers"),
        manifest="resources/training/{speech}/manifest.csv",
        audio="resources/training/{speech}/audio",
    output:
        "resources/training/{speech}/teacher-{model}.csv",
    log:
        "results/logs/training/{speech}/teacher-{model}.log",
    benchmark:
        "results/benchmarks/training/{speech}/teacher-{model}.tsv"
    conda:
        "../../envs/edgeasr.yaml"
    threads: config["inference"]["threads"]
    params:
        language=lambda wc: model_cfg(wc.model).get("language") or config["inference"]["language"],
    script:
        "../scripts/teacher_targets.py"


rule quantize_model:
    input:
        unpack(quantize_inputs),
    output:
        packed="resources/models/{model}/quantized/{precision}.gq",
        report="resources/models/{model}/quantized/{precision}.json",
        curve="resources/models/{model}/quantized/{precision}.loss.csv",
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
        quantizer=quantize_params,
        family=lambda wc: model_cfg(wc.model)["family"],
    script:
        "../scripts/quantize_model.py"
