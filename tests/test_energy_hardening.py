"""Energy hardening: counter restarts, wall-clock steps, AGX Orin's rails, the tegrastats path.

Each test names the item it covers: (1) an NVML counter reset, (2) a wall-clock jump,
(3) the rails counted per board, (4) the tegrastats binary run with sudo.
"""

import json
import os
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import pytest
from test_energy_parse import FORMATS  # every known format's line (checked against ../shared)

from edgeasr.energy import EnergyError, EnergyWarning, counter_delta, summarize
from edgeasr.energy.meters import make_meter, resolve_backend
from edgeasr.energy.summarize import choose_rails
from edgeasr.energy.tegrastats import parse_tegrastats_line

T0 = 1.7e9 + 0.3  # wall time the logger starts
M0 = 5000.0  # monotonic time at the same instant
FAKE = Path(__file__).parent / "tools" / "fake_tegrastats"


def write_markers(path, events):
    """events: [(event, mono_rel, wall_minus_mono_step, extra)]: wall = T0 + rel + step."""
    with open(path, "w") as f:
        for ev, rel, step, extra in events:
            f.write(json.dumps({"event": ev, "wall_s": T0 + rel + step, "mono_s": M0 + rel, **extra}) + "\n")
    return path


def tegra_markers(path, step_at, step, idle=(1.0, 3.0), window=(5.0, 15.0), stop=19.0):
    """Markers of a tegrastats run whose wall clock jumps by ``step`` s at ``step_at`` s."""
    s = lambda rel: step if rel >= step_at else 0.0
    ev = [
        ("meter_start", -0.01, 0.0, {"backend": "tegrastats", "interval_ms": 100, "utc_offset_s": 0}),
        ("logger_start", 0.0, 0.0, {}),
        ("logger_ready", 0.15, 0.0, {}),
        ("idle_begin", idle[0], s(idle[0]), {}),
        ("idle_end", idle[1], s(idle[1]), {}),
        ("window_begin", window[0], s(window[0]), {"name": "transcribe"}),
        ("window_end", window[1], s(window[1]), {"name": "transcribe"}),
        ("logger_stop", stop, s(stop), {}),
        ("meter_exit", stop, s(stop), {"status": "ok"}),
    ]
    return write_markers(path, ev)


def tegra_log(path, power_w, step_at=None, step=0.0, n=195, dt=0.1, phase=0.05, dates=True):
    """A tegrastats log (VDD_IN = power_w(t)); the dates jump by ``step`` from ``step_at``."""
    lines = []
    for k in range(n):
        rel = phase + k * dt
        wall = T0 + rel + (step if step_at is not None and rel >= step_at else 0.0)
        d = time.strftime("%m-%d-%Y %H:%M:%S ", time.gmtime(wall)) if dates else ""
        mw = int(round(1000 * power_w(rel)))
        lines.append(
            f"{d}RAM 3645/7620MB (lfb 63x4MB) CPU [1%@729] GR3D_FREQ 0%@[305] "
            f"VDD_IN {mw}mW/{mw}mW VDD_SOC 1000mW/1000mW"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


# ============================================================ (1) NVML counter restarts


def test_counter_delta_refuses_a_decreasing_counter():
    """(1) counter_delta never returns a negative energy from a counter that went down."""
    t = np.arange(0, 10.0001, 0.5)
    e = 7.0 * t + 1000.0
    e[12:] = 7.0 * (t[12:] - 5.8)  # restarted at 5.8 s
    with pytest.raises(EnergyError, match="decreases at sample 12"):
        counter_delta(t, e, 1.0, 9.0)


def test_stitch_restarts_adds_the_pieces_and_estimates_the_gap():
    """(1) Before + after the restart, and the gap between the samples around it at the
    neighbouring intervals' power: exact for constant power."""
    from edgeasr.energy import stitch_restarts

    t = np.arange(0, 10.0001, 0.5)
    e = 7.0 * t + 1000.0
    e[12:] = 7.0 * (t[12:] - 5.8)
    j, restarts = stitch_restarts(t, e)
    assert [k for k, _ in restarts] == [12]
    assert restarts[0][1] == pytest.approx(3.5)  # 0.5 s at 7 W, estimated
    assert np.all(np.diff(j) >= 0)
    assert counter_delta(t, j, 1.0, 9.0) == pytest.approx(56.0)
    # two restarts, one right after the other's gap: each estimated from usable neighbours
    e2 = 2.0 * t
    e2[6:] -= 100.0
    e2[8:] -= 100.0
    j2, r2 = stitch_restarts(t, e2)
    assert [k for k, _ in r2] == [6, 8] and j2[-1] == pytest.approx(20.0)
    with pytest.raises(EnergyError, match="no neighbouring interval"):
        stitch_restarts([0.0, 1.0], [5.0, 1.0])


def nvml_log(path, watts=10.0, reset_at=105.23, start_mj=5_000_000.0, t_start=100.0, n=121):
    """An NVML raw log: `watts` constant, energy counter restarting from 0 at reset_at."""
    rows = []
    for k in range(n):
        tm = t_start + 0.1 * k
        mj = start_mj + watts * 1000 * (tm - t_start) if tm < reset_at else watts * 1000 * (tm - reset_at)
        rows.append(f"{tm + 1e9:.6f},{tm:.6f},{mj:.1f},{watts * 1000:.1f}")
    path.write_text(
        "# "
        + json.dumps(
            {
                "format": "edgeasr-energy-log",
                "version": 1,
                "backend": "nvml",
                "interval_ms": 100,
                "has_energy_counter": True,
            }
        )
        + "\nt_wall_s,t_mono_s,energy_mj__GPU0,power_mw__GPU0\n"
        + "\n".join(rows)
        + "\n"
    )
    return path


def nvml_markers(path, window=(101.0, 111.0), idle=(100.2, 100.8)):
    evs = [
        {"event": "meter_start", "backend": "nvml", "interval_ms": 100},
        {"event": "idle_begin", "t": idle[0]},
        {"event": "idle_end", "t": idle[1]},
        {"event": "window_begin", "name": "transcribe", "t": window[0]},
        {"event": "window_end", "name": "transcribe", "t": window[1]},
    ]
    with open(path, "w") as f:
        for e in evs:
            t = e.pop("t", 100.0)
            f.write(json.dumps({**e, "wall_s": t + 1e9, "mono_s": t}) + "\n")
    return path


def test_nvml_counter_reset_inside_the_window_is_joined_warned_and_counted(tmp_path):
    """(1) 10 W for 10 s with the counter reset (driver reload) inside the window: 100 J,
    not a large negative figure; a warning names the line; energy_counter_resets = 1."""
    log = nvml_log(tmp_path / "nvml.csv")
    mk = nvml_markers(tmp_path / "m.jsonl")
    with pytest.warns(EnergyWarning, match=r"line 56: the GPU0 energy counter went down"):
        r = summarize("nvml", log, mk)
    assert r["energy_rail"] == "GPU0"
    assert r["energy_j"] == pytest.approx(100.0, rel=1e-9)
    assert r["energy_counter_resets"] == 1
    assert r["idle_power_w"] == pytest.approx(10.0, rel=1e-9)
    # a reset outside the window is joined too, and not counted for the window
    log2 = nvml_log(tmp_path / "nvml2.csv", reset_at=111.55)
    with pytest.warns(EnergyWarning, match="went down"):
        r2 = summarize("nvml", log2, mk)
    assert r2["energy_j"] == pytest.approx(100.0, rel=1e-9) and r2["energy_counter_resets"] == 0


def test_counter_resets_column_is_zero_or_empty(tmp_path):
    """(1) 0 for a counter that never reset; empty where no counted rail is a counter."""
    log = nvml_log(tmp_path / "nvml.csv", reset_at=1e9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = summarize("nvml", log, nvml_markers(tmp_path / "m.jsonl"))
    assert r["energy_counter_resets"] == 0 and r["energy_j"] == pytest.approx(100.0)
    tl = tegra_log(tmp_path / "t.log", lambda t: 5.0)
    r = summarize("tegrastats", tl, tegra_markers(tmp_path / "t.jsonl", 99.0, 0.0))
    assert r["energy_counter_resets"] is None
    assert r["energy_clock_step_s"] == pytest.approx(0.0, abs=1e-5)


# ============================================================ (2) wall-clock steps


def test_wall_clock_jump_inside_the_window_is_refused_not_integrated(tmp_path):
    """(2) A Jetson without an RTC battery syncs NTP mid-window: the clock jumps +3600 s.
    5 W for 10 s was 18,050 J over a 3,610 s window; now the window is refused with a
    warning and its energy columns are empty."""
    log = tegra_log(tmp_path / "log", lambda t: 5.0, step_at=10.0, step=3600.0)
    mk = tegra_markers(tmp_path / "m.jsonl", step_at=10.0, step=3600.0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = summarize("tegrastats", log, mk, audio_s=10.0, n_utterances=2)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "stepped by +3600.000 s between markers window_begin" in msgs
    assert "window 'transcribe' #1" in msgs and "3610.000 s by the wall clock" in msgs
    assert r["energy_backend"] == "tegrastats" and r["energy_rail"] == "VDD_IN"
    for k in (
        "energy_j",
        "mean_power_w",
        "energy_above_idle_j",
        "energy_j_per_audio_s",
        "window_s",
        "energy_samples",
        "energy_j__VDD_SOC",
    ):
        assert r[k] is None, k
    assert r["energy_clock_step_s"] == pytest.approx(3600.0)
    assert r["idle_power_w"] == pytest.approx(5.0)  # the idle period saw no step


def test_wall_clock_jump_outside_the_window_leaves_it_exact(tmp_path):
    """(2, guard) A jump between idle and window: both are cut in their own clock epoch,
    which the dates and markers share, so both are right; the jump is warned about."""
    f = lambda t: 3.0 if t < 4.5 else 8.0
    log = tegra_log(tmp_path / "log", f, step_at=4.0, step=3600.0)
    mk = tegra_markers(tmp_path / "m.jsonl", step_at=4.0, step=3600.0, window=(5.0, 9.0))
    with pytest.warns(EnergyWarning, match=r"stepped by \+3600.000 s between markers idle_end"):
        r = summarize("tegrastats", log, mk)
    assert r["energy_j"] == pytest.approx(32.0, rel=1e-6)
    assert r["window_s"] == pytest.approx(4.0, abs=1e-5)
    assert r["idle_power_w"] == pytest.approx(3.0, rel=1e-6)
    assert r["energy_clock_step_s"] == pytest.approx(0.0, abs=1e-5)


def test_wall_clock_step_back_refuses_every_window(tmp_path):
    """(2) A step back makes two stretches of the log carry the same dates: nothing can be
    cut from it; empty columns and a warning, not a traceback or a figure."""
    log = tegra_log(tmp_path / "log", lambda t: 5.0, step_at=4.0, step=-30.0)
    mk = tegra_markers(tmp_path / "m.jsonl", step_at=4.0, step=-30.0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = summarize("tegrastats", log, mk)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "stepped back by 30.000 s while logging" in msgs
    assert r["energy_j"] is None and r["idle_power_w"] is None and r["window_s"] is None


def test_undated_log_is_timed_on_the_monotonic_clock(tmp_path):
    """(2) Lines without dates (JetPack 4) are spread between the logger's start and stop
    markers: on the monotonic clock, a jump between them no longer stretches every line.
    Ramp 2 W + 1 W/s, window 5..9 s (a jump at 4 s): exactly 36 J."""
    f = lambda t: 2.0 + 1.0 * t
    log = tegra_log(tmp_path / "log", f, dates=False, n=120)
    mk = tegra_markers(tmp_path / "m.jsonl", step_at=4.0, step=3600.0, window=(5.0, 9.0), stop=12.0)
    r = summarize("tegrastats", log, mk, interval_ms=100)
    assert r["energy_j"] == pytest.approx(2.0 * 4 + 0.5 * (81 - 25), rel=1e-6)
    assert r["window_s"] == pytest.approx(4.0)
    assert r["idle_power_w"] == pytest.approx(2.0 + 2.0, rel=1e-6)


def test_small_step_below_the_tolerance_is_kept(tmp_path):
    """(2) A step under max(0.1 s, one interval) is within the log's own timing error and
    kept: it costs at most power x step (here 5 W x 0.05 s), and the column records it."""
    log = tegra_log(tmp_path / "log", lambda t: 5.0, step_at=10.0, step=0.05)
    mk = tegra_markers(tmp_path / "m.jsonl", step_at=10.0, step=0.05)
    r = summarize("tegrastats", log, mk)
    assert r["energy_j"] == pytest.approx(5.0 * 10.05, rel=1e-6)
    assert r["energy_clock_step_s"] == pytest.approx(0.05)


# ============================================================ (3) rails counted per board

# board -> rails counted in energy_j (the table in docs/energy.md); None: no rail at all
COUNTED = {
    "orin-nano-jp5": ["VDD_IN"],
    "orin-nano-jp6": ["VDD_IN"],
    "orin-nano-jp6-nosudo": ["VDD_IN"],
    "orin-nx-jp6-load": ["VDD_IN"],
    "agx-orin-jp7": ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"],
    "thor": None,
    "tx2-jp4": ["VDD_IN"],
    "xavier": ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"],
}
# Jetson Nano, JetPack 4 (as in jetson-stats' tests/tegrastats emulator)
NANO = (
    "RAM 1180/3965MB (lfb 1x2MB) SWAP 149/1024MB (cached 7MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [30%@1036,33%@1036,28%@1036,26%@1036] EMC_FREQ 10%@1600 GR3D_FREQ 0%@76 APE 25 "
    "PLL@57C CPU@60.5C PMIC@100C GPU@59C AO@65C thermal@59.75C POM_5V_IN 4520/4680 "
    "POM_5V_GPU 0/0 POM_5V_CPU 1078/1205"
)


@pytest.mark.parametrize("board", list(COUNTED))
def test_default_rails_per_board(board):
    """(3) The input rail where the board has one; else the sum of its rails, warned."""
    rails = list(parse_tegrastats_line(FORMATS[board])["power_mw"])
    want = COUNTED[board]
    if want is None:
        with pytest.raises(EnergyError, match="no power rail"):
            choose_rails(None, rails, "tegrastats")
        return
    if len(want) > 1:
        with pytest.warns(EnergyWarning, match="no board input rail"):
            got = choose_rails(None, rails, "tegrastats")
    else:
        got = choose_rails(None, rails, "tegrastats")
    assert got == want


def test_nano_counts_pom_5v_in():
    """(3) Jetson Nano (JetPack 4) prints POM_5V_IN, its 5 V input: counted alone."""
    assert choose_rails(None, list(parse_tegrastats_line(NANO)["power_mw"]), "tegrastats") == ["POM_5V_IN"]


def test_agx_orin_energy_counts_gpu_and_cpu(tmp_path):
    """(3) AGX Orin's real line (JetPack 7): 5139 + 3268 + 5500 mW over 4 s, not only the
    5 V system rail's 5500 mW."""
    line = FORMATS["agx-orin-jp7"][len("07-25-2026 09:08:28 ") :]
    lines = [time.strftime("%m-%d-%Y %H:%M:%S ", time.gmtime(T0 + 0.05 + 0.1 * k)) + line for k in range(120)]
    (tmp_path / "log").write_text("\n".join(lines) + "\n")
    mk = tegra_markers(tmp_path / "m.jsonl", 99.0, 0.0, window=(5.0, 9.0), stop=12.0)
    with pytest.warns(EnergyWarning, match="as jetson-stats does"):
        r = summarize("tegrastats", tmp_path / "log", mk)
    assert r["energy_rail"] == "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0"
    assert r["energy_j"] == pytest.approx(4.0 * (5.139 + 3.268 + 5.5), rel=1e-6)
    assert r["energy_j__VIN_SYS_5V0"] == pytest.approx(22.0, rel=1e-6)


# ============================================================ (4) the tegrastats binary


@pytest.fixture
def bin_env(tmp_path, monkeypatch):
    """A `tegrastats` on PATH (the emulator: a binary the user can write) and a `sudo` shim
    that runs its command as the user, so the sudo path runs without root."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tegrastats").symlink_to(FAKE)
    (bindir / "sudo").write_text('#!/bin/sh\n[ "$1" = "-n" ] && shift\nexec "$@"\n')
    (bindir / "sudo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TEGRASTATS_STATE_DIR", str(tmp_path / "state"))
    for k in list(os.environ):
        if k.startswith("FAKE_TEGRASTATS_") and k != "FAKE_TEGRASTATS_STATE_DIR":
            monkeypatch.delenv(k)
    yield tmp_path
    for p in psutil.process_iter(["pid", "cmdline"]):
        if p.pid != os.getpid() and str(tmp_path) in " ".join(p.info["cmdline"] or []):
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass


def test_sudo_refuses_a_relative_tegrastats_path(bin_env):
    """(4) With sudo, a name looked up on PATH could run anything as root: refused."""
    with pytest.raises(EnergyError, match="with sudo only an absolute path"):
        make_meter("tegrastats", bin_env / "log", bin_env / "m.jsonl", use_sudo=True, tegrastats_path="tegrastats")
    with pytest.raises(EnergyError, match="with sudo only an absolute path"):
        resolve_backend("auto", tegrastats_path="bin/tegrastats", use_sudo=True)


def test_sudo_never_looks_tegrastats_up_on_path(bin_env):
    """(4) With sudo and no path, /usr/bin/tegrastats (JetPack's) is run, never the
    `tegrastats` found on PATH."""
    if Path("/usr/bin/tegrastats").exists():
        pytest.skip("this machine has /usr/bin/tegrastats")
    with pytest.raises(EnergyError, match="'/usr/bin/tegrastats' not found"):
        with make_meter("tegrastats", bin_env / "log", bin_env / "m.jsonl", interval_ms=50, idle_s=0, use_sudo=True):
            pass
    assert resolve_backend("auto", use_sudo=True) != "tegrastats"
    assert resolve_backend("auto") == "tegrastats"  # without sudo: PATH, as before


def test_sudo_runs_the_absolute_path_given(bin_env, monkeypatch):
    """(4) tegrastats_path is passed through make_meter: `sudo -n <that path>` is run.
    (Undated lines: a log this short has too few second boundaries to fit dates well.)"""
    monkeypatch.setenv("FAKE_TEGRASTATS_VDD_IN_MW", "6000")
    monkeypatch.setenv("FAKE_TEGRASTATS_DATES", "0")
    exe = str(FAKE.resolve())
    assert resolve_backend("tegrastats", tegrastats_path=exe, use_sudo=True) == "tegrastats"
    log, mk = bin_env / "power.log", bin_env / "m.jsonl"
    with make_meter("tegrastats", log, mk, interval_ms=50, idle_s=0.2, use_sudo=True, tegrastats_path=exe) as m:
        m.begin_window("transcribe")
        time.sleep(0.4)
        m.end_window("transcribe")
    ev = {e["event"]: e for e in map(json.loads, mk.read_text().splitlines())}
    assert ev["logger_start"]["cmd"][:3] == ["sudo", "-n", exe]
    assert ev["meter_start"]["tegrastats_path"] == exe and ev["meter_start"]["use_sudo"] is True
    r = summarize("tegrastats", log, mk)
    assert r["energy_j"] == pytest.approx(6.0 * r["window_s"], rel=0.005)


def test_absolute_tegrastats_path_without_sudo(bin_env, monkeypatch):
    """(4) An absolute path is used as given (no PATH search); a missing one is reported."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert resolve_backend("tegrastats", tegrastats_path=str(FAKE.resolve())) == "tegrastats"
    with pytest.raises(EnergyError, match="'/nonexistent/tegrastats' not found"):
        resolve_backend("tegrastats", tegrastats_path="/nonexistent/tegrastats")
    assert resolve_backend("auto", tegrastats_path="/nonexistent/tegrastats") != "tegrastats"
