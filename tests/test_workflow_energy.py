"""Energy through the workflow: an emulated tegrastats on PATH (tests/tools/fake_tegrastats prints
Orin-Nano-format lines of a known power), a real small inference cell (Whisper tiny.en, real audio),
the separate parsing rule, and no logger left behind: after success, after a failed cell, and after
the run is killed mid-cell."""

import os
import signal
import subprocess
import time

import pandas as pd
import psutil
import pytest
from conftest import ROOT, mirror_config, run_snakemake, snakemake_cmd

pytestmark = pytest.mark.slow

VDD_IN_W, CPU_GPU_CV_W, SOC_W = 7.0, 2.5, 1.2


@pytest.fixture
def fake_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tegrastats").symlink_to(ROOT / "tests" / "tools" / "fake_tegrastats")
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_TEGRASTATS_VDD_IN_MW=str(VDD_IN_W * 1000),
        FAKE_TEGRASTATS_CPU_GPU_CV_MW=str(CPU_GPU_CV_W * 1000),
        FAKE_TEGRASTATS_SOC_MW=str(SOC_W * 1000),
        FAKE_TEGRASTATS_GPU_LOAD="60",
        FAKE_TEGRASTATS_STATE_DIR=str(tmp_path / "state"),
    )
    return env


def loggers(workdir):
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "tegrastats" in cmd and str(workdir) in cmd:
            out.append(p.pid)
    return out


def energy_config(tmp_path, n=3):
    cfg = mirror_config(max_utterances=n)
    cfg["noise"]["conditions"] = [{"kind": "clean"}]
    broken = tmp_path / "broken-model"
    broken.mkdir(exist_ok=True)
    (broken / "model.bin").write_bytes(b"\x00" * 64)
    cfg["models"]["broken"] = {
        "family": "whisper",
        "format": "ctranslate2",
        "engines": ["faster-whisper"],
        "source": {"local": str(broken)},
    }
    cfg["matrix"] = {"models": ["whisper-tiny.en", "broken"], "engines": ["faster-whisper"], "precisions": ["int8"]}
    cfg["inference"] = {"device": "cpu", "threads": 2, "repeats": 2}
    cfg["energy"] = {"backend": "tegrastats", "interval_ms": 100, "idle_s": 1.0}
    return cfg


def test_energy_columns_match_the_emulated_power(tmp_path, fake_path):
    run_snakemake(tmp_path, energy_config(tmp_path), "--cores", "1", "results/tables/cells.csv", env=fake_path)
    df = pd.read_csv(tmp_path / "results/tables/cells.csv").set_index("model")
    r = df.loc["whisper-tiny.en"]
    assert r["status"] == "ok" and r["energy_backend"] == "tegrastats" and r["energy_rail"] == "VDD_IN"
    # the window is the timed transcription (both repeats)
    assert r["window_s"] == pytest.approx(r["transcribe_s"] * 2, rel=0.1, abs=0.3)
    assert r["energy_j"] == pytest.approx(VDD_IN_W * r["window_s"], rel=0.01)
    assert r["mean_power_w"] == pytest.approx(VDD_IN_W, rel=0.01)
    assert r["idle_power_w"] == pytest.approx(VDD_IN_W, rel=0.01)
    assert abs(r["energy_above_idle_j"]) < 0.02 * r["energy_j"]
    assert r["energy_j__VDD_CPU_GPU_CV"] == pytest.approx(CPU_GPU_CV_W * r["window_s"], rel=0.01)
    assert r["energy_j_per_audio_s"] == pytest.approx(r["energy_j"] / (2 * r["audio_s"]), rel=1e-6)
    assert r["energy_samples"] >= 5
    # the study's figure: GPU load 60 % > 40 %: (2.5 W - 0.515 W) x 1 s per sample in the window
    assert r["paper_style_energy_j"] == pytest.approx((CPU_GPU_CV_W - 0.515) * r["energy_samples"], rel=0.05)
    log = tmp_path / "results/cells/whisper-tiny.en/faster-whisper/int8/clean/power.log"
    assert "VDD_IN 7000mW" in log.read_text()
    # the failed cell has no energy, and no logger outlives any job
    assert df.loc["broken", "status"] == "failed" and pd.isna(df.loc["broken", "energy_j"])
    assert loggers(tmp_path) == []


def test_killing_the_run_mid_cell_leaves_no_logger(tmp_path, fake_path):
    cfg = energy_config(tmp_path, n=70)
    cfg["matrix"]["models"] = ["whisper-tiny.en"]
    cmd = snakemake_cmd(tmp_path, cfg, "--cores", "1", "results/tables/cells.csv")
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=fake_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    cell = tmp_path / "results/cells/whisper-tiny.en/faster-whisper/int8/clean"

    def attempt_log():  # the running attempt writes its own log, moved onto power.log at the end
        return next(iter(cell.glob(".power.log.attempt-*")), None) if cell.exists() else None

    try:
        deadline = time.time() + 300
        while time.time() < deadline and not ((log := attempt_log()) and len(log.read_text().splitlines()) > 15):
            time.sleep(0.5)
        assert attempt_log() is not None, "the cell never started logging"
        assert loggers(tmp_path), "the emulated logger should be running mid-cell"
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.time() + 15
    while loggers(tmp_path) and time.time() < deadline:
        time.sleep(0.5)
    assert loggers(tmp_path) == []
    assert not (cell / "cell.json").exists() and not (cell / "power.log").exists()
    assert attempt_log() is None, "the killed attempt's own log is removed"
