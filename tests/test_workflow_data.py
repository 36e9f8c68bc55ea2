"""Workflow tests of the data and noise rules on the offline mirror (real LibriSpeech audio)."""

import copy

import pandas as pd
import pytest
from conftest import dry_run_jobs, mirror_config, run_snakemake


@pytest.fixture(scope="module")
def data_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf_data")
    cfg = mirror_config()
    targets = ["resources/dataset/manifest.csv"] + [
        f"resources/audio/{c}/noise.csv" for c in ("clean", "paper-uniform", "white_snr5")
    ]
    run_snakemake(wd, cfg, "--cores", "2", *targets)
    return wd, cfg, targets


def test_manifest_counts(data_run):
    wd, _, _ = data_run
    man = pd.read_csv(wd / "resources/dataset/manifest.csv")
    assert len(man) == 70 and man["n_words"].sum() == 894 and round(man["duration_s"].sum(), 1) == 328.3
    assert pd.read_csv(wd / "resources/dataset/skipped.csv").empty
    log = (wd / "results/logs/dataset/download.log").read_text()
    assert "checksum ok" in log and "100.0%" in log


def test_noise_tables_and_files(data_run):
    wd, _, _ = data_run
    for cond, target in (("white_snr5", 5.0),):
        t = pd.read_csv(wd / f"resources/audio/{cond}/noise.csv")
        assert len(t) == 70 and (t["target_snr_db"] == target).all()
        assert (t["measured_snr_db"] - target).abs().max() <= 0.1
        assert set(t.columns) >= {"target_snr_db", "measured_snr_db", "noise_kind", "seed", "clipped_samples"}
        assert len(list((wd / f"resources/audio/{cond}/files").glob("*.flac"))) == 70
    p = pd.read_csv(wd / "resources/audio/paper-uniform/noise.csv")
    assert p["target_snr_db"].isna().all() and 5.8 < p["measured_snr_db"].median() < 6.4


def test_adding_an_snr_level_schedules_only_the_new_condition(data_run):
    wd, cfg, targets = data_run
    assert dry_run_jobs(wd, cfg, *targets) == {}, "nothing to do after a complete run"
    cfg2 = copy.deepcopy(cfg)
    cfg2["noise"]["conditions"][2]["snr_db"] = [5, 0]
    counts = dry_run_jobs(wd, cfg2, *targets, "resources/audio/white_snr0/noise.csv")
    assert counts == {"add_noise": 1}, counts
    # the default target: the new condition's noise job and its cells, nothing upstream
    counts_all = dry_run_jobs(wd, cfg2)
    assert counts_all.get("add_noise") == 1
    assert "prepare_dataset" not in counts_all and "download_dataset" not in counts_all


def test_changing_the_seed_reruns_every_noise_job(data_run):
    wd, cfg, targets = data_run
    cfg2 = copy.deepcopy(cfg)
    cfg2["noise"]["seed"] = 1
    assert dry_run_jobs(wd, cfg2, *targets) == {"add_noise": 3}


def test_bad_config_stops_before_any_job(tmp_path):
    cfg = mirror_config()
    cfg["noise"]["conditions"].append({"kind": "white", "snr_db": ["loud"]})
    cfg["inference"]["colour"] = "red"
    p = run_snakemake(tmp_path, cfg, "--cores", "1", check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "noise.conditions[3].snr_db[0]: 'loud' has the wrong type; expected number" in out
    assert "unknown key(s) ['colour'] in inference" in out
    assert not (tmp_path / "resources").exists(), "no job may run with a bad config"


def test_offline_error_names_url_and_fix(tmp_path):
    cfg = mirror_config()
    cfg["dataset"]["sources"] = [{"url": "http://127.0.0.1:9/dev-clean-2.tar.gz", "checksum": "none"}]
    p = run_snakemake(tmp_path, cfg, "--cores", "1", "resources/dataset/manifest.csv", check=False)
    log = (tmp_path / "results/logs/dataset/download.log").read_text()
    assert p.returncode != 0
    assert "http://127.0.0.1:9/dev-clean-2.tar.gz" in log and "extracted_dir" in log
    assert not list((tmp_path / "resources").rglob("*.archive*"))
