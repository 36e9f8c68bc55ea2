"""nvml, rapl and ina3221 backends against fakes; backend resolution on this machine."""

import json
import shutil
import time
from pathlib import Path

import pytest

from edgeasr.energy import EnergyError, make_meter, resolve_backend, sensors, summarize
from edgeasr.energy.rawlog import read_csv_log

INTERVAL_MS = 20


# ------------------------------------------------------------------ this machine


def test_resolve_backend_on_this_machine(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no tegrastats
    b = resolve_backend("auto")
    assert b in ("none", "nvml", "rapl")
    if shutil.which("nvidia-smi") is None and not Path("/dev/nvidia0").exists():
        assert b != "nvml"
    if b == "none":
        assert not sensors.rapl_available()[0]
    if b == "rapl":  # only where the counters are really readable
        assert sensors.rapl_available()[0]
    assert resolve_backend("none") == "none"
    with pytest.raises(EnergyError, match="unknown energy backend"):
        resolve_backend("watts")


def test_explicit_unavailable_backend_says_why(tmp_path, monkeypatch):
    with pytest.raises(EnergyError, match="not available.*no energy counter"):
        resolve_backend("rapl", powercap_root=tmp_path / "nothing")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnergyError, match="tegrastats.*not on PATH"):
        resolve_backend("tegrastats")


def test_none_meter_writes_markers_and_an_empty_log(tmp_path):
    log, mk = tmp_path / "a" / "log", tmp_path / "a" / "m.jsonl"
    with make_meter("none", log, mk, idle_s=0.05) as m:
        m.begin_window("transcribe")
        m.end_window("transcribe")
    assert log.exists() and log.read_text() == ""
    ev = [json.loads(x)["event"] for x in mk.read_text().splitlines()]
    assert "window_begin" in ev and ev[-1] == "meter_exit"
    r = summarize("none", log, mk, audio_s=1.0, n_utterances=1)
    assert r["energy_backend"] == "none" and r["energy_j"] is None and r["energy_rail"] == ""


def test_window_misuse_is_an_error(tmp_path):
    m = make_meter("none", tmp_path / "log", tmp_path / "m", idle_s=0)
    with pytest.raises(EnergyError):
        m.begin_window("x")  # outside the with-block
    with pytest.raises(EnergyError, match="was not begun"):
        with m:
            m.end_window("transcribe")


# ------------------------------------------------------------------ NVML (faked)


class FakeNvml:
    """Stands in for pynvml: a GPU drawing `watts`, with or without the energy counter."""

    def __init__(self, watts, counter=True):
        import pynvml

        self.pynvml, self.watts, self.counter = pynvml, watts, counter
        self.t0 = time.monotonic()
        self.inits = 0

    def install(self, mp):
        nv = self.pynvml
        mp.setattr(nv, "nvmlInit", lambda: setattr(self, "inits", self.inits + 1))
        mp.setattr(nv, "nvmlShutdown", lambda: None)
        mp.setattr(nv, "nvmlDeviceGetCount", lambda: 1)
        mp.setattr(nv, "nvmlDeviceGetHandleByIndex", lambda i: ("gpu", i))
        mp.setattr(nv, "nvmlDeviceGetName", lambda h: "Fake GPU")

        def energy(h):
            if not self.counter:
                raise nv.NVMLError(nv.NVML_ERROR_NOT_SUPPORTED)
            return int(123456 + self.watts * 1000.0 * (time.monotonic() - self.t0))  # mJ

        mp.setattr(nv, "nvmlDeviceGetTotalEnergyConsumption", energy)
        mp.setattr(nv, "nvmlDeviceGetPowerUsage", lambda h: int(self.watts * 1000))  # mW


def run_meter(backend, tmp_path, window_s=0.4, **kw):
    log, mk = tmp_path / "log.csv", tmp_path / "m.jsonl"
    with make_meter(backend, log, mk, interval_ms=INTERVAL_MS, idle_s=0.2, **kw) as m:
        m.begin_window("transcribe")
        time.sleep(window_s)
        m.end_window("transcribe")
    return log, mk


@pytest.mark.parametrize("counter", [True, False], ids=["energy-counter", "power-samples"])
def test_nvml_meter_and_summary(tmp_path, monkeypatch, counter):
    fake = FakeNvml(watts=42.0, counter=counter)
    fake.install(monkeypatch)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no tegrastats: auto falls to nvml
    assert resolve_backend("auto") == "nvml"
    log, mk = run_meter("nvml", tmp_path)
    meta, df = read_csv_log(log)
    assert meta["backend"] == "nvml" and meta["has_energy_counter"] is counter
    assert ("energy_mj__GPU0" in df.columns) is counter and "power_mw__GPU0" in df.columns
    r = summarize("nvml", log, mk, audio_s=2.0, n_utterances=2)
    assert r["energy_rail"] == "GPU0"
    # counter: linear in time, interpolated at the edges -> exact up to mJ rounding;
    # power: constant -> exact
    assert r["energy_j"] == pytest.approx(42.0 * r["window_s"], rel=0.005)
    assert r["idle_power_w"] == pytest.approx(42.0, rel=0.005)
    assert r["energy_samples"] >= 0.4 / (INTERVAL_MS / 1000) * 0.5
    assert r["paper_style_energy_j"] is None


def test_nvml_without_driver_is_unavailable():
    import pynvml

    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    except pynvml.NVMLError:
        pass
    ok, why = sensors.nvml_available()
    assert not ok and "NVML" in why


# ------------------------------------------------------------------ RAPL (fake powercap tree)

MAX_RANGE = 2_000_000  # µJ: wraps every 0.2 s at 10 W, i.e. several times in the test


def fake_powercap(root: Path):
    zones = {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core", "intel-rapl:0:1": "uncore"}
    for d, name in zones.items():
        (root / d).mkdir(parents=True)
        (root / d / "name").write_text(name + "\n")
        (root / d / "max_energy_range_uj").write_text(f"{MAX_RANGE}\n")
        (root / d / "energy_uj").write_text("0\n")
    return root


class LiveCounters:
    """The hardware's counters: package 10 W, core 6 W, uncore 1 W, wrapping at MAX_RANGE.
    Reads of <zone>/energy_uj in the fake tree return the value at the instant of the read
    (the tree's files give the names and ranges)."""

    W = {"intel-rapl:0": 10.0, "intel-rapl:0:0": 6.0, "intel-rapl:0:1": 1.0}

    def __init__(self, monkeypatch):
        import io

        self.t0 = time.monotonic()
        real_open = open

        def fake_open(path, *a, **k):
            p = Path(path)
            if p.name == "energy_uj" and p.parent.name in self.W:
                t = time.monotonic() - self.t0
                v = int(1_500_000 + self.W[p.parent.name] * 1e6 * t) % MAX_RANGE
                return io.StringIO(f"{v}\n")
            return real_open(path, *a, **k)

        monkeypatch.setattr(sensors, "open", fake_open, raising=False)


def test_rapl_meter_with_wrap_around(tmp_path, monkeypatch):
    root = fake_powercap(tmp_path / "powercap")
    LiveCounters(monkeypatch)
    assert resolve_backend("rapl", powercap_root=root) == "rapl"
    log, mk = run_meter("rapl", tmp_path, window_s=0.5, powercap_root=root)
    meta, df = read_csv_log(log)
    assert meta["max_energy_range_uj"]["package-0"] == MAX_RANGE
    assert (df["energy_uj__package-0"].diff() < 0).sum() >= 2  # the counter did wrap
    r = summarize("rapl", log, mk)
    assert r["energy_rail"] == "package-0"
    # each sample is stamped at the middle of its read, the counters are linear in time:
    # exact but for the µs between the clock reads; 0.5 % covers that
    assert r["energy_j"] == pytest.approx(10.0 * r["window_s"], rel=0.005)
    assert r["energy_j__core"] == pytest.approx(6.0 * r["window_s"], rel=0.005)
    assert r["energy_j__uncore"] == pytest.approx(1.0 * r["window_s"], rel=0.005)
    assert r["idle_power_w"] == pytest.approx(10.0, rel=0.005)


def test_rapl_log_parsing_unwraps_exactly(tmp_path):
    log = tmp_path / "rapl.csv"
    rng = 1_000_000
    rows = []
    for k in range(11):  # 5 W for 1 s, sampled each 0.1 s, starting near the top of the range
        rows.append(f"{1000 + 0.1 * k:.6f},{100 + 0.1 * k:.6f},{(900_000 + 500_000 * k) % rng}")
    log.write_text(
        "# "
        + json.dumps(
            {"format": "edgeasr-energy-log", "version": 1, "backend": "rapl", "max_energy_range_uj": {"package-0": rng}}
        )
        + "\nt_wall_s,t_mono_s,energy_uj__package-0\n"
        + "\n".join(rows)
        + "\n"
    )
    mk = tmp_path / "m.jsonl"
    mk.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {"event": "meter_start", "wall_s": 1000, "mono_s": 100, "backend": "rapl"},
                {"event": "window_begin", "name": "transcribe", "wall_s": 1000.15, "mono_s": 100.15},
                {"event": "window_end", "name": "transcribe", "wall_s": 1000.95, "mono_s": 100.95},
            ]
        )
        + "\n"
    )
    r = summarize("rapl", log, mk)
    assert r["energy_j"] == pytest.approx(5.0 * 0.8, rel=1e-9)
    assert r["idle_power_w"] is None and r["energy_above_idle_j"] is None


def test_rapl_not_readable_gives_a_clear_message(tmp_path, monkeypatch):
    root = fake_powercap(tmp_path / "powercap")
    real_open = open

    def deny(path, *a, **k):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(sensors, "open", deny, raising=False)
    ok, why = sensors.rapl_available(root)
    assert not ok and "permission denied" in why and "chmod" in why
    with pytest.raises(EnergyError, match="permission denied"):
        with make_meter("rapl", tmp_path / "log", tmp_path / "m", powercap_root=root, idle_s=0):
            pass
    assert (tmp_path / "log").exists()


# ------------------------------------------------------------------ INA3221 sysfs (fake tree)


def fake_ina3221(root: Path):
    d = root / "1-0040" / "hwmon" / "hwmon3"
    d.mkdir(parents=True)
    chans = {
        1: ("VDD_IN", 5000, 1000),
        2: ("VDD_CPU_GPU_CV", 5000, 100),
        3: ("NC", 0, 0),
        7: ("sum of shunt voltages", 1, 1),
    }
    for n, (label, mv, ma) in chans.items():
        (d / f"in{n}_label").write_text(label + "\n")
        (d / f"in{n}_input").write_text(f"{mv}\n")
        (d / f"curr{n}_input").write_text(f"{ma}\n")
    return root


def test_ina3221_rails_and_meter(tmp_path):
    root = fake_ina3221(tmp_path / "ina3221")
    rails = sensors.Ina3221Rails(root)
    assert list(rails.rails) == ["VDD_IN", "VDD_CPU_GPU_CV"]  # NC and sum skipped
    assert rails.read() == [5000.0, 500.0]  # mV * mA / 1000 = mW
    log, mk = run_meter("ina3221", tmp_path, ina3221_root=root)
    r = summarize("ina3221", log, mk)
    assert r["energy_rail"] == "VDD_IN"
    assert r["energy_j"] == pytest.approx(5.0 * r["window_s"], rel=1e-6)
    assert r["energy_j__VDD_CPU_GPU_CV"] == pytest.approx(0.5 * r["window_s"], rel=1e-6)
    with pytest.raises(EnergyError, match="no labelled rail"):
        sensors.Ina3221Rails(tmp_path / "empty")
