"""Readers of the sensors behind the in-process backends: RAPL, NVML, INA3221 sysfs."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from .errors import EnergyError

POWERCAP_ROOT = "/sys/class/powercap"
INA3221_ROOT = "/sys/bus/i2c/drivers/ina3221"

RAPL_PERMISSION_HINT = (
    "since Linux 5.10 (CVE-2020-8694) energy_uj is readable by root only; allow it with "
    "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot) or a udev "
    "rule, or set energy.backend to none"
)


# ------------------------------------------------------------------ RAPL


class RaplZones:
    """The RAPL zones under a powercap root: rail name -> (energy_uj path, max range)."""

    def __init__(self, root: str | os.PathLike = POWERCAP_ROOT):
        self.root = Path(root)
        dirs = sorted(glob.glob(str(self.root / "intel-rapl:*")))
        dirs = [d for d in dirs if os.path.exists(os.path.join(d, "energy_uj"))]
        if not dirs:
            raise EnergyError(
                f"RAPL: no energy counter under {self.root}/intel-rapl:*/energy_uj (not an x86 "
                f"CPU, intel_rapl driver not loaded, or /sys not visible in this container)"
            )
        names = []
        for d in dirs:
            try:
                names.append(Path(d, "name").read_text().strip() or Path(d).name)
            except OSError:
                names.append(Path(d).name)
        self.rails: dict[str, tuple[str, float]] = {}
        for d, name in zip(dirs, names):
            rail = name
            if names.count(name) > 1:
                rail = name + "-" + Path(d).name.split(":", 1)[1].replace(":", "-")
            try:
                rng = float(Path(d, "max_energy_range_uj").read_text().strip())
            except (OSError, ValueError):
                rng = float("nan")
            self.rails[rail] = (os.path.join(d, "energy_uj"), rng)
        self.read()  # raises with a clear message when not readable

    def read(self) -> list[int]:
        out = []
        for rail, (p, _) in self.rails.items():
            try:
                with open(p) as f:
                    out.append(int(f.read().strip()))
            except PermissionError:
                raise EnergyError(f"RAPL: {p} is not readable (permission denied): {RAPL_PERMISSION_HINT}") from None
            except (OSError, ValueError) as e:
                raise EnergyError(f"RAPL: {p} cannot be read: {e}") from None
        return out


def rapl_available(root=POWERCAP_ROOT) -> tuple[bool, str]:
    try:
        RaplZones(root)
        return True, ""
    except EnergyError as e:
        return False, str(e)


# ------------------------------------------------------------------ NVML


class NvmlDevice:
    """One GPU through pynvml: total-energy counter (mJ) where supported, power (mW)."""

    def __init__(self, index: int = 0):
        try:
            import pynvml
        except ImportError:
            raise EnergyError("NVML: nvidia-ml-py (import pynvml) is not installed") from None
        self.nv = pynvml
        try:
            pynvml.nvmlInit()
        except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            raise EnergyError(f"NVML: cannot initialise ({e}); no NVIDIA driver?") from None
        try:
            n = pynvml.nvmlDeviceGetCount()
            if index >= n:
                raise EnergyError(f"NVML: device index {index} but only {n} GPU(s)")
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            try:
                name = pynvml.nvmlDeviceGetName(self.handle)
                self.name = name.decode() if isinstance(name, bytes) else str(name)
            except Exception:
                self.name = ""
            self.rail = f"GPU{index}"
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
                self.has_counter = True
            except Exception:
                self.has_counter = False
            try:
                pynvml.nvmlDeviceGetPowerUsage(self.handle)
                self.has_power = True
            except Exception:
                self.has_power = False
            if not (self.has_counter or self.has_power):
                raise EnergyError(
                    f"NVML: GPU {index} ({self.name}) reports neither a total energy counter nor power usage"
                )
        except BaseException:
            self.close()
            raise

    def columns(self) -> list[str]:
        cols = []
        if self.has_counter:
            cols.append(f"energy_mj__{self.rail}")
        if self.has_power:
            cols.append(f"power_mw__{self.rail}")
        return cols

    def read(self) -> list:
        out = []
        if self.has_counter:
            out.append(int(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle)))
        if self.has_power:
            out.append(int(self.nv.nvmlDeviceGetPowerUsage(self.handle)))
        return out

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except Exception:
            pass


def nvml_available(index: int = 0) -> tuple[bool, str]:
    try:
        NvmlDevice(index).close()
        return True, ""
    except EnergyError as e:
        return False, str(e)


# ------------------------------------------------------------------ INA3221 (Jetson)


class Ina3221Rails:
    """Jetson power monitors read from sysfs, as jetson-stats does (JetPack 5+ hwmon
    layout): for each ``in<N>_label`` the bus voltage ``in<N>_input`` (mV) and current
    ``curr<N>_input`` (mA); power = V * I. Channels labelled NC and the "sum of shunt
    voltages" channel (7) are skipped."""

    def __init__(self, root: str | os.PathLike = INA3221_ROOT):
        self.root = Path(root)
        self.rails: dict[str, tuple[str, str]] = {}
        for label in sorted(glob.glob(str(self.root / "*" / "hwmon" / "hwmon*" / "in*_label"))):
            base = os.path.basename(label)
            try:
                n = int(base[2 : -len("_label")])
            except ValueError:
                continue
            try:
                name = Path(label).read_text().strip()
            except OSError:
                continue
            if n == 7 or not name or name.upper() == "NC" or "sum of shunt" in name.lower():
                continue
            d = os.path.dirname(label)
            volt, curr = os.path.join(d, f"in{n}_input"), os.path.join(d, f"curr{n}_input")
            if os.path.exists(volt) and os.path.exists(curr):
                key = name.upper()
                if key in self.rails:
                    key = f"{key}_{os.path.basename(os.path.dirname(os.path.dirname(d)))}"
                self.rails[key] = (volt, curr)
        if not self.rails:
            raise EnergyError(f"INA3221: no labelled rail under {self.root}/*/hwmon/hwmon*/")
        self.read()

    def columns(self) -> list[str]:
        return [f"power_mw__{r}" for r in self.rails]

    def read(self) -> list[float]:
        out = []
        for rail, (vp, cp) in self.rails.items():
            try:
                with open(vp) as f:
                    mv = float(f.read().split()[0])
                with open(cp) as f:
                    ma = float(f.read().split()[0])
            except PermissionError:
                raise EnergyError(f"INA3221: {vp} / {cp} not readable (permission denied)") from None
            except (OSError, ValueError, IndexError) as e:
                raise EnergyError(f"INA3221: rail {rail} cannot be read: {e}") from None
            out.append(mv * ma / 1000.0)
        return out


def ina3221_available(root=INA3221_ROOT) -> tuple[bool, str]:
    try:
        Ina3221Rails(root)
        return True, ""
    except EnergyError as e:
        return False, str(e)
