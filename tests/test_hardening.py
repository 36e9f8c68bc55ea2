"""Bad input, faults and odd situations (issue: hardening): each test failed on the code before it."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import time

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from edgeasr.config import ConfigError, load_config_file, validate
from edgeasr.download import DownloadError, download, safe_extract


@pytest.fixture
def cfg():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def _refused(cfg, *parts):
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    for part in parts:
        assert part in str(e.value), (part, str(e.value))
    return str(e.value)


# --- config: refused before any job ---------------------------------------------------------------


def test_an_absurd_snr_is_refused_with_the_range(cfg):
    cfg["noise"]["conditions"].append({"kind": "white", "snr_db": [1.0e9]})
    _refused(cfg, "noise.conditions[3].snr_db[0]", "out of range", "-50 to 100")


@pytest.mark.parametrize("key,value", [("models", "whisper-base"), ("engines", "transformers"), ("precisions", "int8")])
def test_a_duplicate_matrix_entry_is_refused(cfg, key, value):
    cfg["matrix"][key].append(value)
    _refused(cfg, f"matrix.{key}", f"['{value}'] listed more than once")


def test_a_checksum_of_the_wrong_length_is_refused(cfg):
    cfg["dataset"]["sources"][0]["checksum"] = "sha256:" + "ab" * 16  # an md5-length digest
    _refused(cfg, "dataset.sources[0].checksum", "a sha256 digest is 64 hex digits")


def test_an_empty_speaker_list_is_refused(cfg):
    cfg["dataset"]["subset"]["speakers"] = []
    _refused(cfg, "dataset.subset.speakers", "empty list")


@pytest.mark.parametrize("where", ["local", "package", "extracted_dir", "background"])
def test_missing_folders_and_packages_are_found_before_any_job(cfg, tmp_path, where):
    absent = str(tmp_path / "absent")
    if where == "local":
        cfg["models"]["whisper-base"] = {"family": "whisper", "format": "ctranslate2", "source": {"local": absent}}
        _refused(cfg, "models.whisper-base.source.local", absent, "does not exist")
    elif where == "package":
        cfg["models"]["whisper-base"] = {
            "family": "whisper",
            "format": "ctranslate2",
            "source": {"package": "edgeasr_no_such_models"},
        }
        _refused(cfg, "models.whisper-base.source", "'edgeasr_no_such_models' is not installed")
    elif where == "extracted_dir":
        cfg["dataset"]["extracted_dir"] = absent
        _refused(cfg, "dataset.extracted_dir", absent)
    else:
        cfg["noise"]["conditions"].append({"kind": "background", "snr_db": [5], "folder": absent})
        _refused(cfg, "noise.conditions[3].folder", absent)


def test_a_model_outside_the_matrix_is_not_checked(cfg, tmp_path):
    cfg["models"]["unused"] = {"family": "ctc", "format": "transformers", "source": {"local": str(tmp_path / "x")}}
    validate(cfg)


def test_a_null_checksum_is_refused_and_none_is_an_explicit_opt_out(cfg, tmp_path):
    cfg["dataset"]["sources"][0]["checksum"] = None
    _refused(copy.deepcopy(cfg), "dataset.sources[0].checksum: required", "'none'")
    cfg["dataset"]["sources"][0]["checksum"] = "none"
    validate(cfg)
    src = tmp_path / "a.bin"
    src.write_bytes(b"data")
    log = io.StringIO()
    download(str(src), tmp_path / "out.bin", "none", progress_stream=log)
    assert "NOT VERIFIED" in log.getvalue()


@pytest.mark.parametrize(
    "text,parts",
    [
        ("", ["the config file is empty"]),
        ("- a\n- b\n", ["the top level is a list, not a mapping"]),
        ("matrix:\n  models: [a, b\n", [":3:1: YAML syntax error", "expected ','"]),
        ("dataset:\n  name: x\n\tsubset: {}\n", [":3:1: YAML syntax error"]),
    ],
)
def test_unreadable_config_files_name_the_file_and_line(tmp_path, text, parts):
    f = tmp_path / "my.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config_file(f)
    assert str(e.value).startswith(str(f))
    for part in parts:
        assert part in str(e.value)
    p = subprocess.run([sys.executable, "-m", "edgeasr.config", "check", str(f)], capture_output=True, text=True)
    assert p.returncode == 1 and str(f) in p.stdout


def test_a_broken_default_config_stops_snakemake_naming_file_and_line(tmp_path):
    import shutil

    wf = tmp_path / "wf"
    shutil.copytree(ROOT / "workflow", wf / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "config", wf / "config")
    shutil.copytree(ROOT / "resources", wf / "resources")
    shutil.copy(ROOT / "Snakefile", wf / "Snakefile")
    (wf / "config" / "config.yaml").write_text("dataset:\n  name: [oops\n")
    p = subprocess.run(["snakemake", "-n", "--cores", "1"], cwd=wf, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "config/config.yaml:3:1: YAML syntax error" in p.stdout + p.stderr


# --- data --------------------------------------------------------------------------------------------


def _tar_gz(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_a_truncated_archive_names_the_archive(tmp_path):
    arch = _tar_gz(tmp_path / "a.tar.gz", {f"d/f{i}.bin": os.urandom(20000) for i in range(5)})
    data = arch.read_bytes()
    arch.write_bytes(data[: len(data) // 2])
    with pytest.raises(DownloadError) as e:
        safe_extract(arch, tmp_path / "out")
    assert str(arch) in str(e.value) and "damaged or truncated" in str(e.value)


def test_extraction_limits_refuse_a_bomb_before_writing(tmp_path):
    arch = _tar_gz(tmp_path / "bomb.tar.gz", {"zeros.bin": bytes(4 << 20), "b.txt": b"x"})
    assert arch.stat().st_size < 100_000  # 4 MiB of zeros compress to almost nothing
    with pytest.raises(DownloadError, match="would unpack to 0.00 GB|would unpack to"):
        safe_extract(arch, tmp_path / "o1", max_bytes=1 << 20)
    with pytest.raises(DownloadError, match="holds 2 members, more than the limit 1"):
        safe_extract(arch, tmp_path / "o2", max_members=1)
    assert not any((tmp_path / "o1").iterdir()) and not any((tmp_path / "o2").iterdir())
    assert safe_extract(arch, tmp_path / "o3") == ["zeros.bin", "b.txt"]


def test_outputs_follow_the_umask(tmp_path):
    from edgeasr.atomic import atomic_dir, write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("y")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
        os.umask(0o077)
        write_text(tmp_path / "b.txt", "x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_noise_table_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch, librispeech_dir):
    from edgeasr.dataset import Selection, build_manifest
    from edgeasr.noise import expand_conditions, run_condition

    monkeypatch.chdir(tmp_path)
    man, _ = build_manifest(librispeech_dir.parents[2], Selection(max_utterances=2))
    cond = expand_conditions([{"kind": "white", "snr_db": [10]}])[0]
    t = run_condition(man, cond, "resources/audio/tmp", seed=1, record_dir="resources/audio/white_snr10")
    assert list(t["audio_path"]) == [f"resources/audio/white_snr10/{u}.flac" for u in man["utt_id"]]
    assert os.path.isabs(man["audio_path"].iloc[0])  # outside the working directory: absolute


# --- a second attempt at a cell while the first still runs -------------------------------------


def cell_outputs(cell):
    """The infer rule's outputs for one cell folder."""
    names = {
        "cell": "cell.json",
        "transcripts": "transcripts.csv",
        "power_log": "power.log",
        "markers": "power_markers.jsonl",
    }
    return {k: str(cell / n) for k, n in names.items()}


def test_a_second_attempt_at_a_running_cell_stops_at_once(tmp_path):
    from edgeasr.atomic import HeldElsewhere
    from edgeasr.infer_job import run_infer_job

    cell = tmp_path / "results/cells/m/transformers/fp32/clean"
    cell.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from edgeasr.atomic import exclusive
        with exclusive({str(cell / ".infer.lock")!r}, 'cell'):
            print('held', flush=True)
            time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        outputs = cell_outputs(cell)
        t0 = time.monotonic()
        with pytest.raises(HeldElsewhere, match=f"pid {holder.pid}"):
            run_infer_job({}, {}, outputs, {}, {}, 1)
        assert time.monotonic() - t0 < 5 and not (cell / "power.log").exists()
    finally:
        holder.kill()
        holder.wait()


def test_an_attempt_writes_its_own_power_files(tmp_path, monkeypatch, librispeech_dir):
    """An attempt writes its power log and markers under names of its own and moves them into place at the end
    (a job orphaned by a killed Snakemake appends to its own files, never to the next attempt's)."""
    from tiny_models import build_ctc

    from edgeasr.dataset import Selection, build_manifest
    from edgeasr.infer_job import run_infer_job
    from edgeasr.precision import plan

    monkeypatch.chdir(tmp_path)
    model = build_ctc("wav2vec2", tmp_path / "model")  # random weights: plumbing only
    man, _ = build_manifest(librispeech_dir.parents[2], Selection(max_utterances=2))
    man.to_csv(tmp_path / "manifest.csv", index=False)
    noise = man[["utt_id", "audio_path"]].assign(condition="clean")
    noise.to_csv(tmp_path / "noise.csv", index=False)
    cell = tmp_path / "results/cells/m/transformers/fp32/clean"
    cell.mkdir(parents=True)
    (cell / "power_markers.jsonl").write_text(json.dumps({"event": "window_begin", "name": "transcribe"}) + "\n")
    outputs = cell_outputs(cell)
    p = plan("transformers", "fp32", "cpu", family="ctc")
    params = {
        "plan": p.__dict__,
        "family": "ctc",
        "batch_size": 1,
        "repeats": 1,
        "warmup_utterances": 0,
        "on_failure": "record",
        "settings": {"device": "cpu", "threads": 1, "family": "ctc"},
    }
    row = run_infer_job(
        {"model": "m", "engine": "transformers", "precision": "fp32", "condition": "clean"},
        {"model": str(model), "noise": "noise.csv", "manifest": "manifest.csv"},
        outputs,
        params,
        {"backend": "none", "interval_ms": 100, "idle_s": 0},
        1,
    )
    assert row["status"] == "ok", row["status_reason"]
    events = [json.loads(line)["event"] for line in (cell / "power_markers.jsonl").read_text().splitlines()]
    assert events.count("window_begin") == events.count("window_end") == events.count("meter_start") == 1
    assert not list(cell.glob(".*attempt-*")), "the attempt's own files were moved into place"
    assert pd.read_csv(cell / "transcripts.csv").shape[0] == 2


# --- energy rails: a misspelt rail is refused before any job -------------------------------------

FAKE_TEGRASTATS = ROOT / "tests" / "tools" / "fake_tegrastats"


def test_available_rails_reads_the_sensor_once():
    from edgeasr.energy import available_rails

    t0 = time.monotonic()
    rails = available_rails("tegrastats", tegrastats_path=str(FAKE_TEGRASTATS))
    assert {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"} <= set(rails)
    assert time.monotonic() - t0 < 10
    assert not subprocess.run(["pgrep", "-f", str(FAKE_TEGRASTATS)], capture_output=True).stdout.strip()


def test_an_unknown_rail_stops_the_run_before_any_job(tmp_path):
    from conftest import mirror_config, run_snakemake

    cfg = mirror_config(max_utterances=1)
    cfg["energy"] = {"backend": "tegrastats", "rails": ["VDD_INN"], "tegrastats_path": str(FAKE_TEGRASTATS)}
    cfg["inference"] = {"device": "cpu"}
    p = run_snakemake(tmp_path, cfg, "--cores", "1", "resources/dataset/manifest.csv", check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "energy.rails: ['VDD_INN'] not among the rails" in out and "VDD_IN" in out
    assert not (tmp_path / "resources").exists()
    cfg["energy"]["rails"] = ["VDD_IN"]
    p = run_snakemake(tmp_path, cfg, "-n", "--cores", "1", "resources/dataset/manifest.csv")


def test_sudo_with_a_relative_tegrastats_path_is_refused_before_any_job(tmp_path):
    from conftest import mirror_config, run_snakemake

    cfg = mirror_config(max_utterances=1)
    cfg["energy"] = {"backend": "tegrastats", "tegrastats_sudo": True, "tegrastats_path": "tegrastats"}
    p = run_snakemake(tmp_path, cfg, "--cores", "1", "resources/dataset/manifest.csv", check=False)
    assert p.returncode != 0 and "only an absolute path" in p.stdout + p.stderr


# --- the test helpers themselves: no Snakemake outlives its test ------------------------------------


def test_a_timed_out_run_leaves_no_process_behind(tmp_path):
    """run_snakemake stops Snakemake and every job it started when the test's timeout passes (a hung
    Slurm run once left its Snakemake polling for hours after pytest was killed)."""
    from conftest import mirror_config, run_snakemake

    workdir = tmp_path / "wf"
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):  # the whole study cannot finish in 8 s
        run_snakemake(workdir, mirror_config(max_utterances=2), "--cores", "1", timeout=8)
    assert time.monotonic() - t0 < 80
    assert (workdir / ".snakemake").exists()  # it did start
    left = subprocess.run(["pgrep", "-af", str(workdir)], capture_output=True, text=True).stdout.strip()
    assert not left, left


def test_a_workflow_importing_another_checkouts_package_stops_naming_both(tmp_path):
    # envs/setup.sh installs edgeasr editable: after running it in a second clone, a workflow here would
    # run that clone's code. Snakemake stops before any job and says how to fix it.
    import shutil

    from edgeasr.config import package_checkout_mismatch

    wf = tmp_path / "wf"
    shutil.copytree(ROOT / "workflow", wf / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "config", wf / "config")
    shutil.copy(ROOT / "Snakefile", wf / "Snakefile")
    msg = package_checkout_mismatch(wf, ROOT / "workflow" / "edgeasr")
    assert msg and str(wf) in msg and str(ROOT / "workflow" / "edgeasr") in msg and "envs/setup.sh" in msg
    assert package_checkout_mismatch(ROOT, ROOT / "workflow" / "edgeasr") is None  # its own package
    installed = tmp_path / "site-packages" / "edgeasr"  # a non-editable install is not another checkout
    installed.mkdir(parents=True)
    assert package_checkout_mismatch(wf, installed) is None
    p = subprocess.run(["snakemake", "-n", "--cores", "1"], cwd=wf, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "imports edgeasr from another checkout" in out and str(wf) in out, out[-2000:]
