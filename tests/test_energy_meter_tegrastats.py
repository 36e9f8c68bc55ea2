"""The tegrastats meter end to end against tests/tools/fake_tegrastats; no orphan, ever."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from edgeasr.energy import EnergyError, make_meter, parse_tegrastats, resolve_backend, summarize
from edgeasr.energy.meters import TegrastatsMeter

FAKE = Path(__file__).parent / "tools" / "fake_tegrastats"
INTERVAL_MS = 50


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    """`tegrastats` on PATH is the emulator; its --stop registry is private to this test."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tegrastats").symlink_to(FAKE)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TEGRASTATS_STATE_DIR", str(tmp_path / "state"))
    for k in list(os.environ):
        if k.startswith("FAKE_TEGRASTATS_") and k != "FAKE_TEGRASTATS_STATE_DIR":
            monkeypatch.delenv(k)
    yield tmp_path
    # a failing test must not leave its emulator behind: kill what names this test's files
    for pid in procs_for(tmp_path):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def procs_for(log: Path) -> list:
    """Live processes (logger, helpers, watchdog) whose command line names this log."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
            continue
        if str(log) in " ".join(p.info["cmdline"] or []):
            out.append(p.pid)
    return out


def wait_no_procs(log: Path, timeout=5.0) -> list:
    deadline = time.monotonic() + timeout
    left = procs_for(log)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = procs_for(log)
    return left


def test_resolve_backend_finds_tegrastats_on_path(fake_env):
    assert resolve_backend("auto") == "tegrastats"
    assert resolve_backend("tegrastats") == "tegrastats"


def test_pipeline_idle_and_window_energy(fake_env, monkeypatch):
    """Idle 3 W, then 8 W from 0.3 s before the window: with 50 ms samples and constant
    power on each side of the switch, every sample near the window is 8 W, so energy_j must
    equal 8 W x window_s to within rounding; idle must be 3 W. Tolerance 1 %: the only
    error sources are timestamp fitting (< 50 ms, far from the 0.3 s guard) and float
    rounding."""
    tmp = fake_env
    pf = tmp / "power"
    pf.write_text("VDD_IN=3000 VDD_CPU_GPU_CV=400 GPU_LOAD=5")
    monkeypatch.setenv("FAKE_TEGRASTATS_POWER_FILE", str(pf))
    monkeypatch.setenv("FAKE_TEGRASTATS_TRUTH", str(tmp / "truth"))
    log, mk = tmp / "out" / "power.log", tmp / "out" / "markers.jsonl"
    meter = make_meter("tegrastats", log_path=log, markers_path=mk, interval_ms=INTERVAL_MS, idle_s=0.6)
    with meter:
        assert procs_for(log)  # the logger runs
        time.sleep(0.3)
        pf.write_text("VDD_IN=8000 VDD_CPU_GPU_CV=3000 GPU_LOAD=90")
        time.sleep(0.3)
        meter.begin_window("transcribe")
        time.sleep(1.0)
        meter.end_window("transcribe")
    assert wait_no_procs(log, timeout=0.5) == []
    r = summarize("tegrastats", log, mk, audio_s=10.0, n_utterances=4, interval_ms=INTERVAL_MS)
    assert r["window_s"] == pytest.approx(1.0, abs=0.05)
    assert r["energy_j"] == pytest.approx(8.0 * r["window_s"], rel=0.01)
    assert r["idle_power_w"] == pytest.approx(3.0, rel=0.01)
    assert r["energy_above_idle_j"] == pytest.approx(5.0 * r["window_s"], rel=0.02)
    assert r["energy_j__VDD_CPU_GPU_CV"] == pytest.approx(3.0 * r["window_s"], rel=0.01)
    # ~20 lines in 1 s; fewer when the machine is loaded (the emulator, like tegrastats,
    # sleeps an interval after each line)
    assert 10 <= r["energy_samples"] <= 1000 / INTERVAL_MS + 1
    # the study's recipe: every busy 50 ms sample counted as 1 s: ~20x the measured value
    assert r["paper_style_energy_j"] > 10 * r["energy_j__VDD_CPU_GPU_CV"]
    # fitted sub-second times agree with the emulator's true print times
    import numpy as np

    df = parse_tegrastats(log, INTERVAL_MS, utc_offset_s=time.localtime().tm_gmtoff)
    truth = np.loadtxt(tmp / "truth")
    assert len(truth) == len(df)
    # (half an interval when the logger is regular; two intervals of slack for a busy machine)
    assert np.abs(df["t_s"].to_numpy() - truth).max() < 2 * INTERVAL_MS / 1000.0
    ev = [json.loads(x)["event"] for x in mk.read_text().splitlines()]
    assert ev[:5] == ["meter_start", "logger_start", "logger_ready", "idle_begin", "idle_end"]
    assert ev[-2:] == ["logger_stop", "meter_exit"]


def test_pipeline_logger_without_dates(fake_env, monkeypatch):
    """JetPack-4-style lines without a date: times come from the start/stop markers.
    Constant 6 W: any timing error cancels, so 0.5 % is only float and edge rounding."""
    monkeypatch.setenv("FAKE_TEGRASTATS_DATES", "0")
    monkeypatch.setenv("FAKE_TEGRASTATS_VDD_IN_MW", "6000")
    log, mk = fake_env / "power.log", fake_env / "m.jsonl"
    with make_meter("tegrastats", log, mk, interval_ms=INTERVAL_MS, idle_s=0.2) as m:
        m.begin_window("transcribe")
        time.sleep(0.5)
        m.end_window("transcribe")
    assert not log.read_text()[:1].isdigit()
    r = summarize("tegrastats", log, mk)
    assert r["energy_j"] == pytest.approx(6.0 * r["window_s"], rel=0.005)
    assert r["idle_power_w"] == pytest.approx(6.0, rel=0.005)
    assert parse_tegrastats(log, INTERVAL_MS).shape[0] >= 10


def test_no_orphan_after_an_exception_and_handlers_restored(fake_env):
    log = fake_env / "power.log"
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with pytest.raises(RuntimeError, match="model failed"):
        with make_meter("tegrastats", log, fake_env / "m.jsonl", interval_ms=INTERVAL_MS, idle_s=0.1) as m:
            m.begin_window("transcribe")
            assert procs_for(log)
            raise RuntimeError("model failed")
    assert wait_no_procs(log, timeout=0.5) == []
    assert {s: signal.getsignal(s) for s in before} == before
    last = json.loads((fake_env / "m.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "meter_exit" and last["status"] == "exception"
    assert log.exists() and log.stat().st_size > 0


def test_logger_that_daemonizes_is_still_stopped(fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_TEGRASTATS_DAEMONIZE", "1")
    log = fake_env / "power.log"
    with make_meter("tegrastats", log, fake_env / "m.jsonl", interval_ms=INTERVAL_MS, idle_s=0.1) as m:
        time.sleep(0.2)
        # the process we started has already returned; the logger lives on elsewhere
        assert m._proc.poll() == 0 and procs_for(log)
    assert wait_no_procs(log, timeout=0.5) == []


def test_logger_that_ignores_sigterm_is_stopped_by_stop_then_kill(fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_TEGRASTATS_IGNORE_SIGTERM", "1")
    log = fake_env / "power.log"
    m = TegrastatsMeter(log, fake_env / "m.jsonl", interval_ms=INTERVAL_MS, idle_s=0.0, stop_grace_s=0.3)
    with m:
        assert procs_for(log)
    assert wait_no_procs(log, timeout=0.5) == []


def test_failing_logger_is_a_clear_error_and_leaves_nothing(fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_TEGRASTATS_FAIL", "sudo: a password is required")
    log = fake_env / "power.log"
    with pytest.raises(EnergyError, match="a password is required"):
        with make_meter("tegrastats", log, fake_env / "m.jsonl", interval_ms=INTERVAL_MS, idle_s=0.1):
            pass
    assert log.exists()
    assert wait_no_procs(log, timeout=2.0) == []
    with pytest.raises(EnergyError, match="not found"):
        with make_meter("tegrastats", log, fake_env / "m2.jsonl", tegrastats_path="no-such-tegrastats"):
            pass


CHILD = textwrap.dedent("""
    import signal, sys, time
    from pathlib import Path
    from edgeasr.energy import make_meter
    # a foreground job's SIGINT disposition, whatever pytest inherited: started with `&`
    # from a non-interactive shell, SIGINT is SIG_IGN, inherited across fork/exec, and the
    # meter (rightly) leaves an ignored signal ignored, so SIGINT would do nothing
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log, mk = Path(sys.argv[1]), Path(sys.argv[2])
    with make_meter("tegrastats", log, mk, interval_ms=50, idle_s=0.1) as m:
        m.begin_window("transcribe")
        time.sleep(60)
        m.end_window("transcribe")
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_killed_job_leaves_no_logger(fake_env, sig):
    """A child process owns the meter (as the Snakemake job does); it is signalled in the
    middle of the window. SIGTERM/SIGINT: its handler stops the logger; SIGKILL: the
    watchdog sees the pipe close and stops it."""
    script = fake_env / "job.py"
    script.write_text(CHILD)
    log, mk = fake_env / "power.log", fake_env / "m.jsonl"
    child = subprocess.Popen(
        [sys.executable, str(script), str(log), str(mk)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if mk.exists() and "window_begin" in mk.read_text():
            break
        assert child.poll() is None, child.stdout.read().decode()
        time.sleep(0.02)
    else:
        child.kill()
        pytest.fail("the child never opened its window")
    assert procs_for(log)
    child.send_signal(sig)
    rc = child.wait(timeout=15)
    out = child.stdout.read().decode()
    assert rc != 0
    if sig == signal.SIGTERM:
        assert rc == 128 + signal.SIGTERM, out  # SystemExit(143): still a killed job
    assert wait_no_procs(log, timeout=5.0) == [], out
    events = [json.loads(x) for x in mk.read_text().splitlines() if x.strip()]
    if sig != signal.SIGKILL:
        assert any(e["event"] == "signal" and e["signum"] == sig for e in events)
        assert events[-1]["event"] == "meter_exit" and events[-1]["status"] == "signal"
        assert events[-1]["orphans"] == []
    with pytest.raises(EnergyError, match="never ended"):
        summarize("tegrastats", log, mk, interval_ms=50)


FORKING_CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from edgeasr.energy import make_meter
    log, mk, pids = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    with make_meter("tegrastats", log, mk, interval_ms=50, idle_s=0.1) as m:
        m.begin_window("transcribe")
        holders = []
        for _ in range(2):   # like data-loader workers: forked, inheriting handlers and fds
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            holders.append(pid)
        pids.write_text(" ".join(map(str, holders)))
        time.sleep(60)
""")


def test_forked_children_of_the_job_neither_stop_nor_pin_the_logger(fake_env):
    from edgeasr.energy._watchdog import logger_pids

    script = fake_env / "job.py"
    script.write_text(FORKING_CHILD)
    log, mk, pidfile = fake_env / "power.log", fake_env / "m.jsonl", fake_env / "pids"
    child = subprocess.Popen(
        [sys.executable, str(script), str(log), str(mk), str(pidfile)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert child.poll() is None and time.monotonic() < deadline, child.stdout.read()
            time.sleep(0.02)
        a, b = map(int, pidfile.read_text().split())
        # a worker gets SIGTERM: it exits, the logger must go on
        os.kill(a, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while a in procs_for(log):  # exited (a zombie until the job reaps it)
            assert time.monotonic() < deadline, "the worker ignored SIGTERM"
            time.sleep(0.02)
        time.sleep(0.2)
        assert logger_pids(str(log)), "a forked worker's SIGTERM stopped the job's logger"
        assert "meter_exit" not in mk.read_text()
        # the job is SIGKILLed while worker b still holds the watchdog's pipe open
        child.kill()
        child.wait(timeout=10)
        deadline = time.monotonic() + 5.0
        left = procs_for(log)
        while left != [b] and time.monotonic() < deadline:
            time.sleep(0.05)
            left = procs_for(log)
        assert left == [b], left  # only the sleeping worker: logger and watchdog are gone
    finally:
        child.kill()
        for pid in procs_for(fake_env):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
