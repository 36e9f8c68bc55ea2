"""Meters: start a power logger/sampler, mark idle and measurement windows, always stop.

    meter = make_meter("tegrastats", log_path=..., markers_path=..., interval_ms=100, idle_s=2)
    with meter:                        # start logger, wait for its first sample, idle_s of idle
        load_model(); warm_up()
        meter.begin_window("transcribe")
        transcribe()
        meter.end_window("transcribe")
    # logger stopped here: on success, on exception, on Ctrl-C, on SIGTERM/SIGHUP

Signals: while the meter runs, SIGTERM, SIGINT and SIGHUP are caught (in the main thread
only; Python allows no other). The handler stops the logger first, writes a ``signal``
marker, restores the previous handlers, then hands the signal on: a previous Python
handler is called; with the default disposition SIGINT raises KeyboardInterrupt and
SIGTERM/SIGHUP raise ``SystemExit(128 + signum)`` (exit status 143 for SIGTERM), so the
job still fails as killed while ``finally`` blocks and context managers run.
The tegrastats process is started in its own session and watched by a small watchdog
process that stops it if the meter's process dies without cleaning up (SIGKILL, crash).
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

from .errors import EnergyError, EnergyWarning
from .markers import write_marker
from .rawlog import CsvLogWriter
from .sensors import (
    INA3221_ROOT,
    POWERCAP_ROOT,
    Ina3221Rails,
    NvmlDevice,
    RaplZones,
)

__all__ = [
    "BACKENDS",
    "Meter",
    "NoneMeter",
    "TegrastatsMeter",
    "NvmlMeter",
    "RaplMeter",
    "Ina3221Meter",
    "make_meter",
    "resolve_backend",
    "describe_backends",
    "find_tegrastats",
    "TEGRASTATS_PATH",
]

BACKENDS = ("tegrastats", "nvml", "rapl", "ina3221", "none")
TEGRASTATS_PATH = "/usr/bin/tegrastats"  # where JetPack installs it
_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGINT", "SIGHUP")) if s is not None)


class Meter:
    """Base meter (also the ``none`` backend's behaviour): markers only, empty log."""

    backend = "none"

    def __init__(
        self,
        log_path,
        markers_path,
        interval_ms: float = 100,
        idle_s: float = 2.0,
        device_index: int = 0,
        ready_timeout_s: float | None = None,
    ):
        self.log_path = Path(log_path).absolute()
        self.markers_path = Path(markers_path).absolute()
        self.interval_ms = float(interval_ms)
        if not self.interval_ms > 0:
            raise EnergyError(f"interval_ms must be > 0, got {interval_ms}")
        self.idle_s = float(idle_s or 0.0)
        self.device_index = int(device_index)
        self.ready_timeout_s = (
            float(ready_timeout_s) if ready_timeout_s is not None else max(10.0, 5 * self.interval_ms / 1000.0)
        )
        self._entered = False
        self._owner_pid = os.getpid()
        self._stopped = False
        self._in_shutdown = False
        self._pending_signal = None
        self._prev_handlers: dict = {}
        self._open_windows: dict[str, float] = {}
        self._errors: list[str] = []
        self.orphans: list[int] = []
        self.exit_status: str | None = None

    # ------------------------------------------------------------ public API
    def __enter__(self):
        if self._entered:
            raise EnergyError("a meter can be entered only once; make a new one")
        self._entered = True
        self._owner_pid = os.getpid()
        self.markers_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.markers_path.write_text("")
        self.log_path.write_text("")  # exists whatever happens next
        self._install_signals()
        atexit.register(self._atexit)
        try:
            self._marker(
                "meter_start",
                backend=self.backend,
                interval_ms=self.interval_ms,
                idle_s=self.idle_s,
                log_path=str(self.log_path),
                utc_offset_s=time.localtime().tm_gmtoff,
                pid=os.getpid(),
                host=socket.gethostname(),
                **self._meta(),
            )
            self._start()
            if self.idle_s > 0:
                self._marker("idle_begin")
                time.sleep(self.idle_s)
                self._marker("idle_end")
        except BaseException:
            self._shutdown("error")
            raise
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            status = "ok"
        elif issubclass(et, (KeyboardInterrupt, SystemExit)):
            status = "interrupted"
        else:
            status = "exception"
        self._shutdown(status, wait_final=(et is None))
        problems = list(self._errors)
        if self.orphans:
            problems.append(
                f"logger process(es) {self.orphans} still running after stop; "
                f"stop them by hand (sudo tegrastats --stop / kill)"
            )
        if problems:
            msg = f"energy meter ({self.backend}): " + "; ".join(problems)
            if et is None:
                raise EnergyError(msg)
            warnings.warn(msg, EnergyWarning, stacklevel=2)
        return False

    def begin_window(self, name: str = "transcribe") -> None:
        self._check_running("begin_window")
        if name in self._open_windows:
            raise EnergyError(f"window {name!r} is already open")
        rec = self._marker("window_begin", name=name)
        self._open_windows[name] = rec["mono_s"]

    def end_window(self, name: str = "transcribe") -> None:
        self._check_running("end_window")
        if name not in self._open_windows:
            raise EnergyError(f"window {name!r} was not begun")
        self._marker("window_end", name=name)
        del self._open_windows[name]

    def stop(self) -> None:
        """Stop the logger now (idempotent); __exit__ calls it anyway."""
        self._shutdown("stopped")

    @property
    def running(self) -> bool:
        return self._entered and not self._stopped

    # ------------------------------------------------------------ backend hooks
    def _meta(self) -> dict:
        return {}

    def _start(self) -> None:
        pass

    def _wait_final(self) -> None:
        pass

    def _stop(self) -> list[int]:
        return []

    # ------------------------------------------------------------ machinery
    def _marker(self, event: str, **fields) -> dict:
        return write_marker(self.markers_path, event, **fields)

    def _check_running(self, what: str) -> None:
        if not self._entered:
            raise EnergyError(f"{what}() outside the meter's with-block")
        if self._stopped:
            raise EnergyError(f"{what}() after the meter was stopped")

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only; the watchdog remains
        for s in _SIGNALS:
            try:
                prev = signal.getsignal(s)
                if prev is signal.SIG_IGN:
                    continue
                signal.signal(s, self._on_signal)
                self._prev_handlers[s] = prev
            except (ValueError, OSError):
                pass

    def _restore_signals(self) -> dict:
        prev_all = dict(self._prev_handlers)
        for s, prev in prev_all.items():
            try:
                if signal.getsignal(s) == self._on_signal:
                    signal.signal(s, prev if prev is not None else signal.SIG_DFL)
            except (ValueError, OSError):
                pass
        self._prev_handlers = {}
        return prev_all

    def _on_signal(self, signum, frame):
        prev = self._prev_handlers.get(signum, signal.SIG_DFL)
        if os.getpid() != self._owner_pid:
            # a process forked by the owner (e.g. a data-loader worker) inherited this
            # handler: the logger is not its to stop
            self._deliver(signum, prev, frame)
            return
        if self._in_shutdown:
            self._pending_signal = signum
            return
        try:
            self._marker("signal", signum=int(signum))
        except Exception:
            pass
        self._shutdown("signal")
        self._deliver(signum, prev, frame)

    @staticmethod
    def _deliver(signum, prev, frame):
        if callable(prev):
            prev(signum, frame)
            return
        if prev is signal.SIG_IGN:
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + int(signum))

    def _atexit(self) -> None:
        if self._entered and not self._stopped and os.getpid() == self._owner_pid:
            self._shutdown("atexit")

    def _shutdown(self, status: str, wait_final: bool = False) -> None:
        if self._stopped or self._in_shutdown or os.getpid() != self._owner_pid:
            return
        self._in_shutdown = True
        prev_all = {}
        try:
            if wait_final:
                try:
                    self._wait_final()
                except Exception as e:  # noqa: BLE001 - never let this skip the stop
                    self._errors.append(f"waiting for the last sample failed: {e}")
            try:
                self.orphans = list(self._stop() or [])
            except Exception as e:  # noqa: BLE001
                self._errors.append(f"stopping the logger failed: {e}")
            if self._open_windows and status == "ok":
                self._errors.append(f"window(s) {sorted(self._open_windows)} never ended")
            for ev, kw in (
                ("logger_stop", {}),
                ("meter_exit", {"status": status, "orphans": self.orphans, "errors": self._errors}),
            ):
                try:
                    self._marker(ev, **kw)
                except Exception:
                    pass
        finally:
            self._stopped = True
            self._in_shutdown = False
            self.exit_status = status
            prev_all = self._restore_signals()
            try:
                atexit.unregister(self._atexit)
            except Exception:
                pass
        if self.orphans and status in ("signal", "atexit"):
            print(f"edgeasr.energy: logger process(es) {self.orphans} survived the stop", file=sys.stderr)
        pending, self._pending_signal = self._pending_signal, None
        if pending is not None:
            self._deliver(pending, prev_all.get(pending, signal.SIG_DFL), None)


class NoneMeter(Meter):
    backend = "none"


# ====================================================================== tegrastats


class _ThreadMeter(Meter):
    """Samples a sensor in a background thread at the interval into a CSV raw log."""

    max_consecutive_errors = 10

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._sensor = None
        self._writer = None
        self._thread = None
        self._stop_evt = threading.Event()
        self._first = threading.Event()
        self._failure = None
        self.n_samples = 0

    def _open(self):
        """-> (columns, read() -> list, close(), metadata)"""
        raise NotImplementedError

    def _start(self) -> None:
        cols, self._read, self._close, meta = self._open()
        self._writer = CsvLogWriter(self.log_path, self.backend, cols, interval_ms=self.interval_ms, **meta)
        self._marker("logger_start", columns=cols)
        self._thread = threading.Thread(target=self._run, name=f"edgeasr-energy-{self.backend}", daemon=True)
        self._thread.start()
        if not self._first.wait(self.ready_timeout_s) or self._failure is not None:
            raise EnergyError(
                f"{self.backend}: no sample within {self.ready_timeout_s:.1f} s"
                + (f": {self._failure}" if self._failure else "")
            )
        self._marker("logger_ready")

    def _sample(self) -> None:
        m0 = time.monotonic()
        w0 = time.time()
        vals = self._read()
        m1 = time.monotonic()
        half = (m1 - m0) / 2.0
        self._writer.write(w0 + half, m0 + half, vals)
        self.n_samples += 1

    def _run(self) -> None:
        dt = self.interval_ms / 1000.0
        errors = 0
        nxt = time.monotonic()
        while True:
            try:
                self._sample()
                errors = 0
                self._first.set()
            except Exception as e:  # noqa: BLE001
                errors += 1
                if errors >= self.max_consecutive_errors:
                    self._failure = f"{errors} consecutive read errors, last: {e}"
                    self._first.set()
                    return
            nxt += dt
            now = time.monotonic()
            if nxt < now:
                nxt = now
            if self._stop_evt.wait(nxt - now):
                break
        try:  # a last sample after the window end
            self._sample()
        except Exception:
            pass

    def _stop(self) -> list[int]:
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 3 * self.interval_ms / 1000.0))
            if self._thread.is_alive():
                self._errors.append("sampler thread did not stop (sensor read hung?)")
        if self._writer is not None and not (self._thread and self._thread.is_alive()):
            self._writer.close()
        if self._sensor is not None:
            try:
                self._close()
            except Exception:
                pass
        if self._failure:
            self._errors.append(f"sampling failed: {self._failure}")
        return []


class NvmlMeter(_ThreadMeter):
    """NVIDIA GPU via NVML: the total-energy counter (mJ, Volta and newer) when the GPU
    has one, and power usage (mW) in every case (the parser prefers the counter)."""

    backend = "nvml"

    def _open(self):
        dev = NvmlDevice(self.device_index)
        self._sensor = dev
        return (
            dev.columns(),
            dev.read,
            dev.close,
            {"gpu_name": dev.name, "device_index": self.device_index, "has_energy_counter": dev.has_counter},
        )


class RaplMeter(_ThreadMeter):
    """x86 RAPL powercap counters (µJ, wrapping at max_energy_range_uj)."""

    backend = "rapl"

    def __init__(self, *a, powercap_root=POWERCAP_ROOT, **kw):
        super().__init__(*a, **kw)
        self.powercap_root = powercap_root

    def _open(self):
        z = RaplZones(self.powercap_root)
        self._sensor = z
        return (
            [f"energy_uj__{r}" for r in z.rails],
            z.read,
            lambda: None,
            {"max_energy_range_uj": {r: v[1] for r, v in z.rails.items()}, "powercap_root": str(self.powercap_root)},
        )


class Ina3221Meter(_ThreadMeter):
    """Jetson INA3221 rails read from sysfs (faster than tegrastats allows)."""

    backend = "ina3221"

    def __init__(self, *a, ina3221_root=INA3221_ROOT, **kw):
        super().__init__(*a, **kw)
        self.ina3221_root = ina3221_root

    def _open(self):
        r = Ina3221Rails(self.ina3221_root)
        self._sensor = r
        return r.columns(), r.read, lambda: None, {"ina3221_root": str(self.ina3221_root)}


# ====================================================================== selection


def make_meter(
    backend: str,
    log_path,
    markers_path,
    interval_ms: float = 100,
    idle_s: float = 2.0,
    device_index: int = 0,
    *,
    tegrastats_path=None,
    use_sudo: bool = False,
    powercap_root=POWERCAP_ROOT,
    ina3221_root=INA3221_ROOT,
    ready_timeout_s: float | None = None,
) -> Meter:
    """A meter for ``backend`` (``auto`` is resolved here; prefer resolving it yourself
    with resolve_backend and recording the result). ``tegrastats_path``: the tegrastats
    binary, an absolute path (required with ``use_sudo``; default /usr/bin/tegrastats
    there) or, without sudo, a name on PATH (default ``tegrastats``); see find_tegrastats."""
    b = (backend or "auto").strip().lower()
    if b == "auto":
        b = resolve_backend(
            "auto",
            tegrastats_path=tegrastats_path,
            use_sudo=use_sudo,
            device_index=device_index,
            powercap_root=powercap_root,
            ina3221_root=ina3221_root,
        )
    common = dict(interval_ms=interval_ms, idle_s=idle_s, device_index=device_index, ready_timeout_s=ready_timeout_s)
    if b == "tegrastats":
        return TegrastatsMeter(log_path, markers_path, tegrastats_path=tegrastats_path, use_sudo=use_sudo, **common)
    if b == "nvml":
        return NvmlMeter(log_path, markers_path, **common)
    if b == "rapl":
        return RaplMeter(log_path, markers_path, powercap_root=powercap_root, **common)
    if b == "ina3221":
        return Ina3221Meter(log_path, markers_path, ina3221_root=ina3221_root, **common)
    if b == "none":
        return NoneMeter(log_path, markers_path, **common)
    raise EnergyError(f"unknown energy backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")


# The tegrastats meter and the backend choice live in their own modules; imported here (after Meter
# exists) so that `from edgeasr.energy.meters import TegrastatsMeter, resolve_backend` keeps working.
from .backends import available_rails, describe_backends, resolve_backend  # noqa: E402, F401
from .tegrastats_meter import TegrastatsMeter, find_tegrastats  # noqa: E402
