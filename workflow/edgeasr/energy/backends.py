"""Which energy backend a machine has (``auto``), whether a named one is available, and the rails it
reports (read once, before any job, to check ``energy.rails``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .errors import EnergyError
from .meters import BACKENDS
from .sensors import (
    INA3221_ROOT,
    POWERCAP_ROOT,
    Ina3221Rails,
    NvmlDevice,
    RaplZones,
    ina3221_available,
    nvml_available,
    rapl_available,
)
from .tegrastats import parse_tegrastats_line
from .tegrastats_meter import _refuse_relative_with_sudo, find_tegrastats


def describe_backends(
    *,
    tegrastats_path=None,
    use_sudo: bool = False,
    device_index: int = 0,
    powercap_root=POWERCAP_ROOT,
    ina3221_root=INA3221_ROOT,
) -> dict:
    """{backend: (available, reason)} for this machine. ``tegrastats_path`` and
    ``use_sudo``: as for the meter (see find_tegrastats)."""
    return {
        "tegrastats": _tegrastats_available(tegrastats_path, use_sudo),
        "ina3221": ina3221_available(ina3221_root),
        "nvml": nvml_available(device_index),
        "rapl": rapl_available(powercap_root),
        "none": (True, ""),
    }


def _tegrastats_available(path, use_sudo: bool) -> tuple[bool, str]:
    _refuse_relative_with_sudo(path, use_sudo)  # a misconfiguration, not "unavailable"
    try:
        find_tegrastats(path, use_sudo)
    except EnergyError as e:
        return False, str(e)
    return True, ""


def resolve_backend(
    name: str = "auto",
    *,
    tegrastats_path=None,
    use_sudo: bool = False,
    device_index: int = 0,
    powercap_root=POWERCAP_ROOT,
    ina3221_root=INA3221_ROOT,
    check: bool = True,
) -> str:
    """The backend to use. ``auto``: the first this machine has of tegrastats (Jetson),
    nvml (NVIDIA GPU), rapl (readable x86 counters), else ``none``. An explicit name is
    checked (``check``) and raises EnergyError with the reason when unavailable.
    ``ina3221`` is never chosen by ``auto`` (name it explicitly). ``tegrastats_path`` and
    ``use_sudo``: where tegrastats is looked for, as the meter will run it (see
    find_tegrastats); a relative path with sudo raises EnergyError."""
    n = (name or "auto").strip().lower()
    if n not in BACKENDS + ("auto",):
        raise EnergyError(f"unknown energy backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")
    if n == "none":
        return "none"
    kw = dict(
        tegrastats_path=tegrastats_path,
        use_sudo=use_sudo,
        device_index=device_index,
        powercap_root=powercap_root,
        ina3221_root=ina3221_root,
    )
    if n == "auto":
        avail = describe_backends(**kw)
        for b in ("tegrastats", "nvml", "rapl"):
            if avail[b][0]:
                return b
        return "none"
    if check:
        ok, why = {
            "tegrastats": lambda: _tegrastats_available(tegrastats_path, use_sudo),
            "nvml": lambda: nvml_available(device_index),
            "rapl": lambda: rapl_available(powercap_root),
            "ina3221": lambda: ina3221_available(ina3221_root),
        }[n]()
        if not ok:
            raise EnergyError(f"energy backend {n!r} is not available here: {why}")
    return n


def available_rails(
    backend: str,
    *,
    tegrastats_path=None,
    use_sudo: bool = False,
    device_index: int = 0,
    powercap_root=POWERCAP_ROOT,
    ina3221_root=INA3221_ROOT,
    timeout_s: float = 10.0,
) -> list[str]:
    """The rail names this machine's ``backend`` reports, read once (tegrastats: its first line).

    Used before any job to check ``energy.rails``: a misspelt rail is found before inference runs."""
    if backend == "nvml":
        dev = NvmlDevice(device_index)
        try:
            return [dev.rail]
        finally:
            dev.close()
    if backend == "rapl":
        return list(RaplZones(powercap_root).rails)
    if backend == "ina3221":
        return list(Ina3221Rails(ina3221_root).rails)
    if backend != "tegrastats":
        return []
    exe = find_tegrastats(tegrastats_path, use_sudo)
    cmd = (["sudo", "-n"] if use_sudo else []) + [exe, "--interval", "100"]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            rails = list(parse_tegrastats_line(line)["power_mw"])
            if rails:
                return rails
        raise EnergyError(
            f"tegrastats ({' '.join(cmd)}) printed no line with rails within {timeout_s:.0f} s"
            + (f": {proc.stderr.read(500).strip()}" if proc.poll() is not None else "")
        )
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
