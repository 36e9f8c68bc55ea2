"""The tegrastats meter (Jetson): runs NVIDIA's tegrastats around the measurement, in its own session,
watched by a watchdog that stops it if the meter's process dies; which binary runs, and how under sudo."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import _watchdog
from .errors import EnergyError
from .meters import TEGRASTATS_PATH, Meter


def find_tegrastats(path=None, use_sudo: bool = False) -> str:
    """The absolute path of the tegrastats to run; raises EnergyError when there is none.

    ``path``: an absolute path, or (without sudo only) a command name looked up on PATH.
    None: TEGRASTATS_PATH (/usr/bin/tegrastats) with sudo, ``tegrastats`` on PATH without.
    With sudo a relative path is refused and PATH is never searched: whoever can write to
    a directory on PATH would otherwise choose what runs as root.
    """
    _refuse_relative_with_sudo(path, use_sudo)
    if path is None:
        path = TEGRASTATS_PATH if use_sudo else "tegrastats"
    path = os.fspath(path)
    if os.path.isabs(path):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.normpath(path)
        raise EnergyError(f"tegrastats: {path!r} not found (no executable file there)")
    found = shutil.which(path)
    if found is None:
        raise EnergyError(f"tegrastats: {path!r} not found: not on PATH ({os.environ.get('PATH', '')})")
    return os.path.abspath(found)


def _refuse_relative_with_sudo(path, use_sudo: bool) -> None:
    if use_sudo and path is not None and not os.path.isabs(os.fspath(path)):
        raise EnergyError(
            f"tegrastats_path {os.fspath(path)!r}: with sudo only an absolute path "
            f"is accepted (e.g. {TEGRASTATS_PATH}); it is never looked up on PATH"
        )


class TegrastatsMeter(Meter):
    """Runs ``tegrastats --interval MS --logfile FILE`` around the measurement.

    The logger runs in its own session (so a terminal's Ctrl-C or Snakemake's group
    signal cannot leave it half-stopped: the meter stops it); stopping sends SIGTERM to
    its process group and to every process with ``--logfile FILE`` in its command line
    (found again, in case tegrastats daemonised), runs ``tegrastats --stop`` (always with
    sudo, where the user cannot signal root's process; otherwise when something
    survived), then SIGKILL, and finally checks that no such process remains.
    ``tegrastats_path``: see find_tegrastats (with sudo: an absolute path, default
    /usr/bin/tegrastats; without: also a name on PATH, default ``tegrastats``).
    """

    backend = "tegrastats"

    def __init__(self, *a, tegrastats_path=None, use_sudo: bool = False, stop_grace_s: float = 2.0, **kw):
        super().__init__(*a, **kw)
        self.use_sudo = bool(use_sudo)
        _refuse_relative_with_sudo(tegrastats_path, self.use_sudo)  # now, not once the job runs
        self.tegrastats_path = tegrastats_path
        self.stop_grace_s = float(stop_grace_s)
        self._proc = None
        self._wd = None
        self._out = None
        self._exe = None

    def _meta(self):
        return {"tegrastats_path": self.tegrastats_path, "use_sudo": self.use_sudo}

    def _cmd(self, *args) -> list[str]:
        return (["sudo", "-n"] if self.use_sudo else []) + [self._exe] + list(args)

    def _start(self) -> None:
        self._exe = find_tegrastats(self.tegrastats_path, self.use_sudo)
        # tegrastats appends to its log file: start from an empty one
        self.log_path.write_text("")
        log = str(self.log_path)
        stop_cmd = self._cmd("--stop")
        # the watchdog first, so that no instant exists where the logger runs unwatched
        self._wd = subprocess.Popen(
            [sys.executable, _watchdog.__file__, log, str(os.getpid()), json.dumps(stop_cmd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        cmd = self._cmd("--interval", str(int(round(self.interval_ms))), "--logfile", log)
        self._out = tempfile.TemporaryFile()
        self._marker("logger_start", cmd=cmd)
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        try:
            self._wd.stdin.write(f"pgid {self._proc.pid}\n".encode())
            self._wd.stdin.flush()
        except OSError:
            pass
        self._wait_ready()

    def _output(self) -> str:
        try:
            self._out.seek(0)
            return self._out.read().decode(errors="replace").strip()[-2000:]
        except Exception:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            try:
                with open(self.log_path, "rb") as f:
                    head = f.read(1 << 16)
            except OSError:
                head = b""
            # two lines: the first line's fitted time may err by up to an interval, so the
            # idle window (which starts now) is bracketed by samples with margin
            if head.count(b"\n") >= 2:
                self._marker("logger_ready")
                return
            rc = self._proc.poll()
            if rc not in (None, 0):
                raise EnergyError(
                    f"tegrastats exited with status {rc} before writing a sample: "
                    f"{self._output() or '(no output)'}"
                    + (" (sudo -n needs a NOPASSWD rule or a fresh `sudo -v`)" if self.use_sudo else "")
                )
            if time.monotonic() > deadline:
                raise EnergyError(
                    f"tegrastats wrote no sample to {self.log_path} within "
                    f"{self.ready_timeout_s:.1f} s; output: "
                    f"{self._output() or '(none)'}"
                )
            time.sleep(0.01)

    def _wait_final(self) -> None:
        """Wait until a line sampled after now is in the log, so the window end is bracketed."""
        try:
            s0 = self.log_path.stat().st_size
        except OSError:
            return
        deadline = time.monotonic() + 3 * self.interval_ms / 1000.0 + 1.0
        while time.monotonic() < deadline:
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(s0)
                    if f.read().count(b"\n") >= 2:
                        return
            except OSError:
                return
            if self._proc is not None and self._proc.poll() not in (None, 0):
                return
            time.sleep(0.01)

    def _alive(self) -> list[int]:
        pids = set(_watchdog.logger_pids(str(self.log_path), exclude=(os.getpid(),)))
        if self._proc is not None and self._proc.poll() is None:
            pids.add(self._proc.pid)
        return sorted(pids)

    def _signal(self, sig) -> None:
        if self._proc is not None and self._proc.returncode is None:
            # not reaped yet, so its pid (= the group id) cannot belong to anyone else
            try:
                os.killpg(self._proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in _watchdog.logger_pids(str(self.log_path), exclude=(os.getpid(),)):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _wait_gone(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        alive = self._alive()
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = self._alive()
        return alive

    def _stop(self) -> list[int]:
        if self._proc is None:
            self._close_watchdog()
            return []
        self._signal(signal.SIGTERM)
        alive = self._wait_gone(self.stop_grace_s)
        if self.use_sudo or alive:
            try:
                subprocess.run(
                    self._cmd("--stop"),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=10,
                )
            except Exception:
                pass
            alive = self._wait_gone(0.5)
        if alive:
            self._signal(signal.SIGKILL)
            alive = self._wait_gone(self.stop_grace_s)
        try:
            self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        self._close_watchdog()
        if self._out is not None:
            self._out.close()
        return self._alive()

    def _close_watchdog(self) -> None:
        if self._wd is None:
            return
        try:
            self._wd.stdin.close()  # end-of-file: it checks once more and exits
        except OSError:
            pass
        try:
            self._wd.wait(timeout=self.stop_grace_s * 2 + 2)
        except subprocess.TimeoutExpired:
            self._wd.kill()
            self._wd.wait()
        self._wd = None


# ====================================================================== in-process samplers
