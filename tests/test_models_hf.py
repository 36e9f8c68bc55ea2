"""Weights by Hugging Face id (from a cache laid out as huggingface_hub lays it, offline), failure records,
CTC decoding, and the study's matrix planned offline."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, dry_run_jobs
from tiny_models import CTC_VOCAB, build_ctc, hf_cache_layout

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny_ctc(tmp_path_factory):
    """A tiny randomly initialised wav2vec2 (plumbing only)."""
    return build_ctc("wav2vec2", tmp_path_factory.mktemp("w2v") / "model")


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, tiny_ctc):
    hub = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    return hub


def test_snapshot_from_the_offline_cache_gives_the_commit_and_only_needed_files(offline_cache, tiny_ctc):
    from edgeasr.models import hf_snapshot

    snap = hf_cache_layout(tiny_ctc, offline_cache, "org/tiny", COMMIT)
    (snap / "pytorch_model.bin").write_bytes(b"pickled copy of the same weights")  # safetensors preferred
    (snap / "flax_model.msgpack").write_bytes(b"x")
    (snap / "onnx").mkdir()
    (snap / "onnx" / "model.onnx").write_bytes(b"x")
    path, commit, files = hf_snapshot("tiny", "org/tiny", "main", "transformers")
    assert commit == COMMIT and path.name == COMMIT
    names = {f.name for f in files}
    assert "model.safetensors" in names and "config.json" in names and "vocab.json" in names
    assert not names & {"pytorch_model.bin", "flax_model.msgpack", "model.onnx"}


def test_pickled_weights_are_taken_only_when_there_is_no_safetensors(offline_cache, tiny_ctc, tmp_path):
    from edgeasr.models import hf_snapshot

    snap = hf_cache_layout(tiny_ctc, offline_cache, "org/old", COMMIT)
    (snap / "model.safetensors").unlink()
    (snap / "pytorch_model.bin").write_bytes(b"weights")
    _, _, files = hf_snapshot("old", "org/old", "main", "transformers")
    assert "pytorch_model.bin" in {f.name for f in files}


def test_fetch_by_id_writes_provenance_with_the_resolved_commit(offline_cache, tiny_ctc, tmp_path):
    from edgeasr.models import fetch_model, row_provenance

    hf_cache_layout(tiny_ctc, offline_cache, "org/tiny", COMMIT)
    out = tmp_path / "source"
    prov = fetch_model("tiny", {"hf": "org/tiny", "revision": "main"}, out)
    assert prov["hf_commit"] == COMMIT and prov["hf_revision"] == "main"
    assert (out / "model.safetensors").read_bytes() == (tiny_ctc / "model.safetensors").read_bytes()
    row = row_provenance(out)
    assert row["model_source"] == "hf:org/tiny" and row["model_revision"] == COMMIT
    assert len(row["model_files_sha256"]) == 64


def test_an_id_that_cannot_be_had_names_the_model_key_and_the_way_out(offline_cache, tmp_path):
    from edgeasr.models import ModelSourceError, fetch_model

    with pytest.raises(ModelSourceError) as e:
        fetch_model("my-asr", {"hf": "org/not-there"}, tmp_path / "out")
    msg = str(e.value)
    for part in ("models.my-asr", "'org/not-there'", "source to {local:", "HF_HUB_OFFLINE=1", "--forcerun"):
        assert part in msg, part
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_failed_sources_are_recorded_and_passed_on_through_a_conversion(offline_cache, tmp_path):
    from edgeasr.models import convert_model, fetch_model, model_failure

    out = tmp_path / "source"
    prov = fetch_model("my-asr", {"hf": "org/not-there"}, out, on_failure="record")
    assert prov["status"] == "failed" and "org/not-there" in model_failure(out)
    conv = tmp_path / "converted"
    convert_model(out, conv, "ctranslate2")
    assert model_failure(conv) == model_failure(out)
    assert json.loads((conv / "source.json").read_text())["failed_before"] == "conversion to ctranslate2"


def test_an_empty_local_model_folder_is_a_recorded_failure(tmp_path):
    from edgeasr.models import ModelSourceError, fetch_model, model_failure

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelSourceError, match="holds no files"):
        fetch_model("empty", {"local": str(empty)}, tmp_path / "a")
    fetch_model("empty", {"local": str(empty)}, tmp_path / "b", on_failure="record")
    assert "models.empty" in model_failure(tmp_path / "b")


def test_ctc_decoding_keeps_letters_doubled_across_a_blank(tiny_ctc):
    from transformers import AutoProcessor

    from edgeasr.engines.transformers_engine import ctc_decode

    tok = AutoProcessor.from_pretrained(tiny_ctc).tokenizer
    v = {t: i for i, t in enumerate(CTC_VOCAB)}
    frames = [0, v["H"], v["H"], v["E"], 0, v["L"], 0, v["L"], v["O"], v["|"], v["<s>"], v["W"], v["E"], 0]
    assert ctc_decode(tok, frames) == "HELLO WE"
    # the tokenizer's own skip_special_tokens decoding drops the blank before merging repeats
    assert tok.decode(frames, skip_special_tokens=True) != "HELLO WE"


def test_the_study_matrix_plans_offline(tmp_path):
    """config/study-2405.01004.yaml: 12 models x 3 precisions x 2 conditions planned, nothing downloaded."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "study-2405.01004.yaml").read_text())
    counts = dry_run_jobs(tmp_path, cfg)
    # one job per cell: its scores and energy are derived by aggregate, not by jobs of their own
    assert counts["infer"] == 72 and counts["aggregate"] == 1 and set(counts) & {"score_cell", "parse_power"} == set()
    assert counts["fetch_model"] == 12 and counts["convert_transformers_to_ct2"] == 4
    assert counts["add_noise"] == 2 and "convert_ct2_to_transformers" not in counts
    assert not (tmp_path / "resources").exists(), "planning must not download or write anything"


def test_profiles_override_device_and_energy_with_typed_values():
    """A profile's `config:` values reach the workflow as strings (Snakemake's base YAML loader); the
    config check turns them into the schema's types."""
    import copy

    import yaml
    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    from edgeasr.config import validate

    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    study = yaml.safe_load((ROOT / "config" / "study-2405.01004.yaml").read_text())
    for name, device, backend in (("jetson", "jetson", "tegrastats"), ("gpu", "cuda", "nvml")):
        prof = yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())
        cfg = copy.deepcopy(default)
        update_config(cfg, study)
        update_config(cfg, parse_config(prof["config"]))
        validate(cfg)
        assert cfg["inference"]["device"] == device and cfg["energy"]["backend"] == backend
        assert isinstance(cfg["energy"]["idle_s"], float) and isinstance(cfg["energy"]["tegrastats_sudo"], bool)
        assert "accelerator=1" in prof["resources"]
        if name == "jetson":
            assert cfg["inference"]["threads"] == 6 and isinstance(cfg["inference"]["threads"], int)
            assert cfg["energy"]["tegrastats_sudo"] is True


def test_a_model_merged_into_a_default_one_of_the_same_name_is_explained():
    import copy

    import yaml

    from edgeasr.config import ConfigError, validate

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["models"]["whisper-base"]["source"]["hf"] = "openai/whisper-base"  # as a merged --configfile leaves it
    with pytest.raises(ConfigError, match="models.whisper-base.source: has .*give your model another name"):
        validate(cfg)


def test_jetson_rows_record_the_l4t_release_and_power_mode(tmp_path):
    import edgeasr.provenance as prov

    rel = tmp_path / "nv_tegra_release"
    rel.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    status = tmp_path / "status"
    status.write_text("pmode:0000 fmode:quiet\n")
    conf = tmp_path / "nvpmodel.conf"
    conf.write_text("< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n< POWER_MODEL ID=1 NAME=7W >\n")
    out = prov.jetson_state(rel, status, conf)
    assert out["l4t_release"] == "R36 (release), REVISION: 4.3"
    assert out["jetson_power_mode"] == "0 (15W)"
    assert prov.jetson_state(tmp_path / "absent", status) == {"l4t_release": "", "jetson_power_mode": ""}
