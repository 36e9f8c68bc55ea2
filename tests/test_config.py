"""Config validation: the default config, and bad configs stopped with messages naming key and values."""

import copy
import json

import pytest

from edgeasr.config import ConfigError, conditions, matrix_cells, validate


def test_default_config_is_valid_and_gets_defaults(default_config):
    cfg = validate(copy.deepcopy(default_config))
    assert cfg["noise"]["max_snr_error_db"] == 0.1
    assert cfg["models"]["whisper-base"]["options"] == {"frontend": "native"}
    assert [c.name for c in conditions(cfg)] == ["clean", "paper-uniform", "white_snr5"]
    assert len(matrix_cells(cfg)) == 2 * 2 * 3 * 3


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda c: c.update(colour="red"),
            "unknown key(s) ['colour'] in the top level; allowed keys: ['dataset', 'energy'",
        ),
        (lambda c: c["noise"].update(sed=1), "unknown key(s) ['sed'] in noise; allowed keys: ['conditions', 'format'"),
        (
            lambda c: c["inference"].update(threads="two"),
            "inference.threads: 'two' has the wrong type; expected integer",
        ),
        (
            lambda c: c["noise"]["conditions"].append({"kind": "white", "snr_db": [10, "loud"]}),
            "noise.conditions[3].snr_db[1]: 'loud' has the wrong type; expected number",
        ),
        (
            lambda c: c["noise"]["conditions"].append({"kind": "purple", "snr_db": [10]}),
            "noise.conditions[3].kind: 'purple' is not allowed; allowed values: "
            "['clean', 'white', 'pink', 'brown', 'blue', 'violet', 'background', 'uniform']",
        ),
        (
            lambda c: c["energy"].update(backend="watts"),
            "energy.backend: 'watts' is not allowed; allowed values: ['auto', 'tegrastats', 'nvml', 'rapl', 'none']",
        ),
        (
            lambda c: c["matrix"].update(precisions=["fp32", "int4"]),
            "matrix.precisions[1]: 'int4' unknown; allowed: ['bf16', 'fp16', 'fp32', 'int8']",
        ),
        (
            lambda c: c["matrix"].update(models=["whisper-huge"]),
            "matrix.models[0]: 'whisper-huge' is not in the model registry",
        ),
        (
            lambda c: c["matrix"].update(conditions=["white_snr3"]),
            "matrix.conditions[0]: 'white_snr3' is not a noise condition",
        ),
        (
            lambda c: c["dataset"].update(on_error="ignore"),
            "dataset.on_error: 'ignore' is not allowed; allowed values: ['error', 'skip']",
        ),
        (
            lambda c: c["models"]["whisper-base"].update(format="onnx"),
            "models.whisper-base.format: 'onnx' is not allowed",
        ),
        (
            lambda c: c.update(
                quantizers={"q4": {"method": "gq", "bits": 4, "mode": "qat", "training": {"speech": "x"}}}
            ),
            "quantizers.q4.training.speech: 'x' is not a training_speech entry (none defined)",
        ),
        (
            lambda c: c.update(
                training_speech={"s": {"text": "edgeasr:python-docs-sentences.txt", "noise": [{"kind": "red"}]}}
            ),
            "training_speech.s.noise: noise.conditions[0].kind: unknown noise kind 'red'",
        ),
        (
            lambda c: c.update(
                training_speech={"s": {"text": "edgeasr:python-docs-sentences.txt", "rates_wpm": [190, 130]}}
            ),
            "training_speech.s.rates_wpm: [190, 130] is not [low, high]",
        ),
        (
            lambda c: c.update(training_speech={"s": {"text": "no/such/text.txt"}}),
            "training_speech.s.text: file no/such/text.txt does not exist",
        ),
        (
            lambda c: c.update(
                quantizers={
                    "q4": {"method": "gq", "bits": 4, "mode": "qat", "training": {"extracted_dir": ".", "loss": "kd"}}
                }
            ),
            "quantizers.q4.training.loss: 'kd' distils from the fp32 model and needs speech",
        ),
        (
            lambda c: c.update(
                quantizers={"q4": {"method": "gq", "bits": 4, "group_size": 64, "decompression": "int4pack"}}
            ),
            "quantizers.q4.decompression: int4pack runs torch's int4 kernel, which takes the uniform quantizer",
        ),
        (
            lambda c: c.update(
                quantizers={"q4": {"method": "gq", "bits": 4, "mode": "qat", "training": {"speech": "s", "loss": "kl"}}}
            ),
            "quantizers.q4.training.loss: 'kl' is not allowed; allowed values: ['ce', 'kd']",
        ),
    ],
)
def test_bad_config_messages(default_config, mutate, expected):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert expected in str(e.value), str(e.value)


def test_schema_documents_every_key():
    """Every property in the schema has a description, and config/README.md names every key."""
    from conftest import ROOT

    from edgeasr.config import load_schema

    readme = (ROOT / "config" / "README.md").read_text()
    missing_desc, missing_doc = [], []

    def walk(schema, path):
        for k, sub in schema.get("properties", {}).items():
            p = f"{path}.{k}" if path else k
            if "description" not in sub:
                missing_desc.append(p)
            if f"`{p}`" not in readme:
                missing_doc.append(p)
            walk(sub, p)
            if isinstance(sub.get("items"), dict):
                walk(sub["items"], p + "[]")
        ap = schema.get("additionalProperties")
        if isinstance(ap, dict):
            walk(ap, path + ".<name>")

    walk(load_schema(), "")
    assert not missing_desc, f"schema keys without a description: {missing_desc}"
    assert not missing_doc, f"keys not documented in config/README.md: {missing_doc}"


def test_the_sub_8_bit_study_plans_offline(tmp_path, default_config):
    """config/gq-study.yaml merged over the default config (as --configfile does): it validates and plans each
    training speech once, one teacher per (model, speech), one quantizer job per (model, checkpoint), one cell
    each; quantizers that differ only in decompression share one checkpoint."""
    import yaml
    from conftest import ROOT, dry_run_jobs

    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return out

    study = yaml.safe_load((ROOT / "config" / "gq-study.yaml").read_text())
    cfg = merge(copy.deepcopy(default_config), study)
    validate(copy.deepcopy(cfg))
    counts = dry_run_jobs(tmp_path, cfg, "results/tables/cells.csv")
    models, precisions = study["matrix"]["models"], study["matrix"]["precisions"]
    quantizers = {p: study["quantizers"][p] for p in precisions if p in study["quantizers"]}
    settings = [{k: v for k, v in q.items() if k != "decompression"} for q in quantizers.values()]
    weights = {json.dumps(w, sort_keys=True) for w in settings}
    assert len(weights) < len(quantizers)  # on-forward variants of trained checkpoints: no second training
    assert counts["quantize_model"] == len(models) * len(weights)
    speeches = {q["training"]["speech"] for q in quantizers.values() if q.get("mode") == "qat"}
    assert counts["synthesize_training_speech"] == len(speeches) == 2
    assert counts["teacher_targets"] == len(models) * len(speeches)
    # every precision in transformers, fp32 and int8 in faster-whisper too (the quantizers are not ct2 types)
    engines = study["matrix"]["engines"]
    per_model = len(precisions) + len([p for p in ("fp32", "int8") if p in precisions]) * (len(engines) - 1)
    assert counts["infer"] == len(models) * per_model * len(study["matrix"]["conditions"])
    assert not (tmp_path / "resources").exists(), "planning must not download or write anything"
