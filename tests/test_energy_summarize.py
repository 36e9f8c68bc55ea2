"""summarize(): window cutting, idle baseline, rail choice, paper-style figure, errors."""

import json
import time
import warnings

import pytest

from edgeasr.energy import EnergyError, EnergyWarning, summarize
from edgeasr.energy.summarize import KEYS

T0 = 1.7e9 + 0.3  # wall time the logger starts
M0 = 5000.0  # monotonic time at the same instant


def markers(path, events):
    """events: [(event, wall_s, extra)] ; mono follows wall."""
    with open(path, "w") as f:
        for ev, w, extra in events:
            f.write(json.dumps({"event": ev, "wall_s": w, "mono_s": M0 + (w - T0), **extra}) + "\n")
    return path


def std_markers(path, backend="tegrastats", idle=(1.0, 3.0), windows=((5.0, 9.0),), stop=12.0, name="transcribe"):
    ev = [
        ("meter_start", T0 - 0.01, {"backend": backend, "interval_ms": 100, "utc_offset_s": 0}),
        ("logger_start", T0, {}),
        ("logger_ready", T0 + 0.15, {}),
    ]
    if idle:
        ev += [("idle_begin", T0 + idle[0], {}), ("idle_end", T0 + idle[1], {})]
    for a, b in windows:
        ev += [("window_begin", T0 + a, {"name": name}), ("window_end", T0 + b, {"name": name})]
    ev += [("logger_stop", T0 + stop, {}), ("meter_exit", T0 + stop, {"status": "ok"})]
    return markers(path, ev)


def tegra_log(path, power, dt=0.1, n=115, phase=0.05, dates=True, extra=""):
    """power(t_rel) -> dict rail -> mW (and optional 'GPU'=load)."""
    lines = []
    for k in range(n):
        tr = phase + k * dt
        v = dict(power(tr))
        load = v.pop("GPU", 0)
        d = time.strftime("%m-%d-%Y %H:%M:%S ", time.gmtime(T0 + tr)) if dates else ""
        rails = " ".join(f"{r} {int(round(x))}mW/{int(round(x))}mW" for r, x in v.items())
        lines.append(f"{d}RAM 3645/7620MB (lfb 63x4MB) CPU [1%@729] GR3D_FREQ {load}%@[305] {extra}{rails}")
    path.write_text("\n".join(lines) + "\n")
    return path


def orin(vdd_in, cpu_gpu=500.0, soc=1000.0, gpu=0):
    return {"VDD_IN": vdd_in, "VDD_CPU_GPU_CV": cpu_gpu, "VDD_SOC": soc, "GPU": gpu}


def test_keys_and_constant_power(tmp_path):
    log = tegra_log(tmp_path / "log", lambda t: orin(5000.0))
    mk = std_markers(tmp_path / "m.jsonl")
    r = summarize("tegrastats", log, mk, audio_s=8.0, n_utterances=4, interval_ms=100)
    assert list(r)[: len(KEYS)] == list(KEYS)
    assert r["energy_backend"] == "tegrastats" and r["energy_rail"] == "VDD_IN"
    assert r["window_s"] == pytest.approx(4.0)
    assert r["energy_j"] == pytest.approx(20.0, rel=1e-6)
    assert r["mean_power_w"] == pytest.approx(5.0, rel=1e-6)
    assert r["idle_power_w"] == pytest.approx(5.0, rel=1e-6)
    assert r["energy_above_idle_j"] == pytest.approx(0.0, abs=1e-6)
    assert r["energy_j_per_audio_s"] == pytest.approx(2.5, rel=1e-6)
    assert r["energy_j_per_utterance"] == pytest.approx(5.0, rel=1e-6)
    assert r["energy_j__VDD_CPU_GPU_CV"] == pytest.approx(2.0, rel=1e-6)
    assert r["energy_j__VDD_SOC"] == pytest.approx(4.0, rel=1e-6)
    assert "energy_j__VDD_IN" not in r
    assert r["energy_samples"] == 40


def test_idle_baseline_measured_not_assumed(tmp_path):
    # 3 W idle, 8 W while transcribing (from 4.5 s), window 5..9 s
    log = tegra_log(tmp_path / "log", lambda t: orin(3000.0 if t < 4.5 else 8000.0))
    mk = std_markers(tmp_path / "m.jsonl")
    r = summarize("tegrastats", log, mk, audio_s=4.0, n_utterances=2, interval_ms=100)
    assert r["idle_power_w"] == pytest.approx(3.0, rel=1e-6)
    assert r["energy_j"] == pytest.approx(32.0, rel=1e-6)
    assert r["energy_above_idle_j"] == pytest.approx(20.0, rel=1e-6)


def test_window_edges_between_samples_with_a_ramp(tmp_path):
    # power ramps 2 W -> 13.5 W; samples at 0.05 + k*0.1; window 5.013 .. 9.087 (between samples)
    # timestamps come from dates fitted to ~interval/2; a ramp of 1 W/s shifted by <=0.05 s
    # errs by <=0.05 W over the window: < 0.5 % of ~30 J
    f = lambda t: orin(2000.0 + 1000.0 * t)
    log = tegra_log(tmp_path / "log", f)
    mk = std_markers(tmp_path / "m.jsonl", windows=((5.013, 9.087),))
    r = summarize("tegrastats", log, mk, interval_ms=100)
    a, b = 5.013, 9.087
    exact = 2.0 * (b - a) + 0.5 * (b * b - a * a)
    assert r["energy_j"] == pytest.approx(exact, rel=0.005)


def test_window_edges_exact_without_dates(tmp_path):
    # no dates: lines spread over [logger_start, logger_stop], one per period, mid-period
    f = lambda t: orin(2000.0 + 1000.0 * t)
    log = tegra_log(tmp_path / "log", f, dates=False, n=120, phase=0.05)
    mk = std_markers(tmp_path / "m.jsonl", windows=((5.013, 9.087),), stop=12.0)
    r = summarize("tegrastats", log, mk, interval_ms=100)
    a, b = 5.013, 9.087
    assert r["energy_j"] == pytest.approx(2.0 * (b - a) + 0.5 * (b * b - a * a), rel=1e-6)


def test_paper_style_column(tmp_path):
    # VDD_CPU_GPU_CV 3 W at 90 % GPU load from 6 s to 8 s, 10 % otherwise; 100 ms samples:
    # the study's recipe counts each of the 20 busy samples as 1 s of (3000 - 515) mW
    f = lambda t: orin(7000.0, cpu_gpu=3000.0, gpu=90 if 6.0 <= t < 8.0 else 10)
    log = tegra_log(tmp_path / "log", f)
    mk = std_markers(tmp_path / "m.jsonl")
    r = summarize("tegrastats", log, mk, interval_ms=100)
    assert r["paper_style_energy_j"] == pytest.approx(20 * 2.485, rel=1e-9)
    assert r["energy_j__VDD_CPU_GPU_CV"] == pytest.approx(12.0, rel=1e-6)  # the measured one


def test_paper_style_absent_without_its_rail(tmp_path):
    log = tegra_log(tmp_path / "log", lambda t: {"VDD_IN": 1000.0, "VDD_GPU": 200.0, "GPU": 90})
    mk = std_markers(tmp_path / "m.jsonl")
    r = summarize("tegrastats", log, mk, interval_ms=100)
    assert r["paper_style_energy_j"] is None
    assert r["energy_j"] == pytest.approx(4.0, rel=1e-6)


def test_default_rail_per_board_and_explicit_rails(tmp_path):
    mk = std_markers(tmp_path / "m.jsonl")
    agx = tegra_log(tmp_path / "agx", lambda t: {"VDD_GPU_SOC": 5000.0, "VDD_CPU_CV": 3000.0, "VIN_SYS_5V0": 5500.0})
    # AGX Orin has no input rail: VIN_SYS_5V0 is its 5 V system rail, GPU and CPU are apart
    with pytest.warns(EnergyWarning, match="no board input rail"):
        r = summarize("tegrastats", agx, mk, interval_ms=100)
    assert r["energy_rail"] == "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0"
    assert r["energy_j"] == pytest.approx(54.0, rel=1e-6)
    r = summarize("tegrastats", agx, mk, interval_ms=100, rails="VDD_GPU_SOC+VDD_CPU_CV")
    assert r["energy_rail"] == "VDD_GPU_SOC+VDD_CPU_CV"
    assert r["energy_j"] == pytest.approx(32.0, rel=1e-6)
    assert r["energy_j__VDD_GPU_SOC"] == pytest.approx(20.0, rel=1e-6)
    with pytest.raises(EnergyError, match="VDD_NOPE.*rails present"):
        summarize("tegrastats", agx, mk, interval_ms=100, rails=["VDD_NOPE"])


def test_xavier_has_no_input_rail_sum_is_recorded_and_warned(tmp_path):
    mk = std_markers(tmp_path / "m.jsonl")
    xav = tegra_log(
        tmp_path / "xav", lambda t: {"GPU": 0, "CPU": 400.0, "SOC": 2500.0, "SYS5V": 2700.0}, extra="GPU 1100/1100 "
    )
    with pytest.warns(EnergyWarning, match="no board input rail"):
        r = summarize("tegrastats", xav, mk, interval_ms=100)
    assert r["energy_rail"] == "GPU+CPU+SOC+SYS5V"
    assert r["energy_j"] == pytest.approx(4.0 * (1.1 + 0.4 + 2.5 + 2.7), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = summarize("tegrastats", xav, mk, interval_ms=100, rails="GPU")
    assert r["energy_rail"] == "GPU" and r["energy_j"] == pytest.approx(4.4, rel=1e-6)


def test_repeated_windows_give_medians(tmp_path):
    log = tegra_log(tmp_path / "log", lambda t: orin(4000.0 if t < 7.0 else 6000.0))
    mk = std_markers(tmp_path / "m.jsonl", windows=((4.0, 5.0), (5.5, 6.5), (8.0, 9.0)))
    r = summarize("tegrastats", log, mk, interval_ms=100)
    assert r["energy_j"] == pytest.approx(4.0, rel=1e-6)  # median of 4, 4, 6
    assert r["energy_samples"] == 30


def test_none_backend_all_empty(tmp_path):
    r = summarize("none", tmp_path / "nolog", tmp_path / "nomarkers", audio_s=3.0, n_utterances=1)
    assert r["energy_backend"] == "none" and r["energy_rail"] == ""
    assert all(r[k] is None for k in KEYS if k not in ("energy_backend", "energy_rail"))


def test_errors_are_loud(tmp_path):
    log = tegra_log(tmp_path / "log", lambda t: orin(5000.0))
    # a window never ended (job killed)
    mk = markers(
        tmp_path / "a.jsonl",
        [
            ("meter_start", T0, {"backend": "tegrastats"}),
            ("logger_start", T0, {}),
            ("window_begin", T0 + 5, {"name": "transcribe"}),
        ],
    )
    with pytest.raises(EnergyError, match="never ended"):
        summarize("tegrastats", log, mk)
    # no window at all
    mk = markers(tmp_path / "b.jsonl", [("meter_start", T0, {"backend": "tegrastats"})])
    with pytest.raises(EnergyError, match="no window 'transcribe'"):
        summarize("tegrastats", log, mk)
    # window far outside the samples (log stopped early)
    mk = std_markers(tmp_path / "c.jsonl", windows=((5.0, 30.0),))
    with pytest.raises(EnergyError, match="outside the samples"):
        summarize("tegrastats", log, mk, interval_ms=100)
    # backend mismatch
    mk = std_markers(tmp_path / "d.jsonl", backend="nvml")
    with pytest.raises(EnergyError, match="measured with backend 'nvml'"):
        summarize("tegrastats", log, mk)
    # empty log
    (tmp_path / "empty").write_text("")
    with pytest.raises(EnergyError, match="empty"):
        summarize("tegrastats", tmp_path / "empty", std_markers(tmp_path / "e.jsonl"))


def test_stale_lines_from_an_earlier_run_are_dropped(tmp_path):
    log = tegra_log(tmp_path / "log", lambda t: orin(5000.0))
    old = tegra_log(tmp_path / "old", lambda t: orin(99000.0), n=30, phase=-3600.0)
    log.write_text(old.read_text() + log.read_text())
    mk = std_markers(tmp_path / "m.jsonl")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = summarize("tegrastats", log, mk, interval_ms=100)
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1 and "30 line(s) dated before the logger started (first: line 1)" in msgs[0]
    assert r["energy_j"] == pytest.approx(20.0, rel=1e-6)
    assert r["energy_samples"] == 40


def test_log_without_rails_is_an_error_not_zero(tmp_path):
    thor = "RAM 4722/7844MB (lfb 1x512kB) EMC_FREQ 2%@1866 GR3D_FREQ @[1000,1000,1000] APE 150"
    log = tmp_path / "thor.log"
    log.write_text((thor + "\n") * 120)
    with pytest.raises(EnergyError, match="no power rail"):
        summarize("tegrastats", log, std_markers(tmp_path / "m.jsonl"), interval_ms=100)
