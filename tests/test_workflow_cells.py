"""The inference cells end to end with real Whisper tiny.en weights on a few real utterances, a cell
forced to fail, unsupported cells, and dry runs proving incremental reruns."""

import copy
import json

import pandas as pd
import pytest
from conftest import dry_run_jobs, mirror_config, run_snakemake

pytestmark = pytest.mark.slow


def small_config(tmp_path):
    cfg = mirror_config(max_utterances=3)
    cfg["noise"]["conditions"] = [{"kind": "clean"}, {"kind": "white", "snr_db": [10]}]
    broken = tmp_path / "broken-model"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "model.bin").write_bytes(b"\x00" * 64)  # not a CTranslate2 model: its cells must fail, not the run
    (broken / "config.json").write_text("{}")
    cfg["models"]["broken"] = {
        "family": "whisper",
        "format": "ctranslate2",
        "engines": ["faster-whisper"],
        "source": {"local": str(broken)},
    }
    cfg["matrix"] = {
        "models": ["whisper-tiny.en", "broken"],
        "engines": ["faster-whisper", "transformers"],
        "precisions": ["fp32", "fp16", "int8"],
        "conditions": "all",
    }
    cfg["inference"] = {"device": "cpu", "threads": 2}
    cfg["energy"] = {"backend": "none"}
    return cfg


@pytest.fixture(scope="module")
def cells_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf_cells")
    cfg = small_config(wd)
    run_snakemake(wd, cfg, "--cores", "2", "results/tables/cells.csv")
    return wd, cfg


def test_cells_table(cells_run):
    wd, _ = cells_run
    df = pd.read_csv(wd / "results/tables/cells.csv")
    assert len(df) == 2 * 2 * 3 * 2  # models x engines x precisions x conditions, every cell listed
    status = df.groupby(["model", "status"]).size().to_dict()
    assert status == {
        ("whisper-tiny.en", "ok"): 8,
        ("whisper-tiny.en", "unsupported"): 4,
        ("broken", "failed"): 4,
        ("broken", "unsupported"): 8,
    }
    ok = df[df.status == "ok"]
    assert ok["wer_pct"].between(0, 40).all(), ok[["engine", "precision", "condition", "wer_pct"]]
    clean = ok[ok.condition == "clean"]
    assert clean["wer_pct"].max() < 25
    for col in (
        "load_s",
        "transcribe_s",
        "audio_s",
        "rtf",
        "rtfx",
        "peak_rss_mb",
        "param_bytes",
        "disk_bytes",
        "threads",
        "cer_pct",
        "wer_ci_low_pct",
        "wer_ci_high_pct",
        "torch_version",
        "ctranslate2_version",
        "cpu_model",
        "git_commit",
        "config_hash",
        "cell_config_hash",
    ):
        assert ok[col].notna().all(), col
    assert (ok["n_utterances"] == 3).all() and (ok["device"] == "cpu").all()
    assert set(ok["compute_type"]) == {"float32", "int8_float32", "torch-dynamic-qint8"}
    assert (ok["energy_backend"] == "none").all() and ok["energy_j"].isna().all()
    unsup = df[df.status == "unsupported"].set_index(["model", "engine", "precision", "condition"])["status_reason"]
    assert "CTranslate2 float16 needs a CUDA GPU" in unsup[("whisper-tiny.en", "faster-whisper", "fp16", "clean")]
    assert "not enabled for this model" in unsup[("broken", "transformers", "fp32", "clean")]
    failed = df[df.status == "failed"]
    assert failed["status_reason"].str.len().gt(0).all() and failed["wer_pct"].isna().all()
    # int8 weights take fewer bytes than fp32 in both engines
    b = ok[ok.condition == "clean"].set_index(["engine", "precision"])["param_bytes"]
    assert b[("faster-whisper", "int8")] < b[("faster-whisper", "fp32")]
    assert b[("transformers", "int8")] < b[("transformers", "fp32")]


def test_utterance_table_and_unscheduled_cells(cells_run):
    wd, _ = cells_run
    u = pd.read_csv(wd / "results/tables/utterances.csv")
    assert len(u) == 8 * 3
    assert {"hypothesis", "ref_norm", "hyp_norm", "seconds", "errors"} <= set(u.columns)
    assert not (wd / "results/cells/whisper-tiny.en/faster-whisper/fp16").exists(), "unsupported cells never run"
    cell = json.loads((wd / "results/cells/broken/faster-whisper/fp32/clean/cell.json").read_text())
    assert cell["status"] == "failed"


def test_engines_agree_on_clean_audio(cells_run):
    wd, _ = cells_run
    df = pd.read_csv(wd / "results/tables/cells.csv")
    ok = df[(df.status == "ok") & (df.condition == "clean") & (df.precision == "fp32")].set_index("engine")
    assert abs(ok.loc["faster-whisper", "wer_pct"] - ok.loc["transformers", "wer_pct"]) <= 5


def test_adding_a_model_schedules_only_its_cells(cells_run):
    wd, cfg = cells_run
    cfg2 = copy.deepcopy(cfg)
    cfg2["matrix"]["models"].append("whisper-base")
    counts = dry_run_jobs(wd, cfg2, "results/tables/cells.csv")
    assert counts["infer"] == 2 * 2 * 2
    assert counts["fetch_model"] == 1 and counts["convert_ct2_to_transformers"] == 1
    assert counts["aggregate"] == 1 and "add_noise" not in counts


def test_adding_a_precision_schedules_only_new_cells(cells_run):
    wd, cfg = cells_run
    cfg2 = copy.deepcopy(cfg)
    cfg2["matrix"]["precisions"].append("bf16")  # runs in transformers on a CPU; not in CTranslate2
    counts = dry_run_jobs(wd, cfg2, "results/tables/cells.csv")
    assert counts["infer"] == 2 and counts["aggregate"] == 1 and "fetch_model" not in counts


def test_changing_the_scoring_rederives_the_tables_without_rerunning_a_cell(cells_run):
    """Scores and energy are derived from each cell's raw outputs by aggregate: no measurement reruns."""
    wd, cfg = cells_run
    cfg2 = copy.deepcopy(cfg)
    cfg2.setdefault("scoring", {})["bootstrap_samples"] = 500
    counts = dry_run_jobs(wd, cfg2, "results/tables/cells.csv")
    assert counts == {"aggregate": 1}


def test_a_cells_missing_file_reruns_that_cell_when_the_tables_are_rebuilt(cells_run):
    """Every file a cell writes is an input of aggregate: when the tables are rebuilt, a lost transcript
    reruns that cell alone (while the tables stand, Snakemake leaves a missing intermediate alone)."""
    wd, cfg = cells_run
    lost = wd / "results/cells/whisper-tiny.en/faster-whisper/int8/white_snr10/transcripts.csv"
    table = wd / "results/tables/cells.csv"
    moved = [(f, f.with_name(f.name + ".aside")) for f in (lost, table)]
    for f, aside in moved:
        f.rename(aside)  # keeps its mtime: put back as it was
    try:
        counts = dry_run_jobs(wd, cfg, "results/tables/cells.csv")
    finally:
        for f, aside in moved:
            aside.rename(f)
    assert counts == {"infer": 1, "aggregate": 1}


def test_changing_one_models_options_reruns_only_its_cells(cells_run):
    wd, cfg = cells_run
    cfg2 = copy.deepcopy(cfg)
    cfg2["models"]["broken"]["options"] = {"max_new_tokens": 100}
    counts = dry_run_jobs(wd, cfg2, "results/tables/cells.csv")
    assert counts["infer"] == 4  # the broken model's 4 scheduled cells, none of tiny.en's 8


def test_a_quantizer_cell_records_its_decompression_and_changing_it_reruns_only_its_cells(cells_run):
    """A gq cell (real tiny.en weights, data-free 4 bits with group-wise scales) runs through the workflow; how
    the cell holds the packed weights (quantizers.<name>.decompression) is a cell setting: changing it reruns
    the cells, not the quantizer. Runs last in this module: it adds rows to the shared run's tables."""
    wd, cfg = cells_run
    cfg2 = copy.deepcopy(cfg)
    cfg2["quantizers"] = {"gq4g": {"method": "gq", "bits": 4, "group_size": 64, "decompression": "on-forward"}}
    cfg2["matrix"] = {**cfg2["matrix"], "models": ["whisper-tiny.en"], "precisions": ["fp32", "gq4g"]}
    cfg2["matrix"]["conditions"] = ["clean"]
    counts = dry_run_jobs(wd, cfg2, "results/tables/cells.csv")
    assert counts["quantize_model"] == 1 and counts["infer"] == 1  # transformers only: gq is not a ct2 type
    run_snakemake(wd, cfg2, "--cores", "2", "results/tables/cells.csv")
    df = pd.read_csv(wd / "results/tables/cells.csv").set_index(["engine", "precision"])
    row = df.loc[("transformers", "gq4g")]
    assert row["status"] == "ok" and row["decompression"] == "on-forward", row["status_reason"]
    assert row["wer_pct"] < 40 and row["packed_mean_bits"] == 4.0
    assert "on-forward" in row["quantizer"]
    # 4-bit codes + one fp32 scale per 64 weights: 4.5 bits per quantized weight (centroid tables aside)
    assert 4.5 < row["packed_bits_per_weight_effective"] < 4.52
    # the packed layers stay packed in memory: fewer weight bytes than the fp32 cell of the same model
    assert row["param_bytes"] < df.loc[("transformers", "fp32"), "param_bytes"]
    cfg3 = copy.deepcopy(cfg2)
    cfg3["quantizers"]["gq4g"]["decompression"] = "dequant-at-load"
    counts = dry_run_jobs(wd, cfg3, "results/tables/cells.csv")
    assert counts.get("infer") == 1 and "quantize_model" not in counts
