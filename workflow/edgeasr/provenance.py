"""Provenance of every row: versions, device, CPU/GPU model, git commit, host."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path

PACKAGES = (
    "edgeasr",
    "torch",
    "transformers",
    "ctranslate2",
    "faster-whisper",
    "torchao",
    "numpy",
    "jiwer",
    "audiomentations",
    "snakemake",
)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def gpu_model() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
            return name.decode() if isinstance(name, bytes) else name
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return ""


@functools.lru_cache(maxsize=1)
def git_commit(repo: str | None = None) -> str:
    repo = repo or str(Path(__file__).resolve().parents[2])
    try:
        out = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            commit = out.stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def jetson_state(
    release_file="/etc/nv_tegra_release", nvpmodel_status="/var/lib/nvpmodel/status", nvpmodel_conf="/etc/nvpmodel.conf"
) -> dict:
    """The L4T release and the nvpmodel power mode of a Jetson (both readable without sudo); empty elsewhere.

    ``/etc/nv_tegra_release`` starts ``# R36 (release), REVISION: 4.3, ...``; nvpmodel's status file holds
    ``pmode:0001 fmode:...``: the mode id of ``/etc/nvpmodel.conf`` (its name is resolved from there)."""
    out = {"l4t_release": "", "jetson_power_mode": ""}
    try:
        first = Path(release_file).read_text().splitlines()[0]
        out["l4t_release"] = first.lstrip("# ").split(", GCID")[0].strip()
    except (OSError, IndexError):
        return out
    try:
        status = Path(nvpmodel_status).read_text()
        mode = next((w.split(":", 1)[1] for w in status.split() if w.startswith("pmode:")), "")
        name = _nvpmodel_name(int(mode), nvpmodel_conf) if mode.isdigit() else ""
        out["jetson_power_mode"] = f"{int(mode)} ({name})" if name else mode
    except (OSError, ValueError):
        pass
    return out


def _nvpmodel_name(mode_id: int, conf="/etc/nvpmodel.conf") -> str:
    import re

    try:
        for m in re.finditer(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^>\s]+)", Path(conf).read_text()):
            if int(m.group(1)) == mode_id:
                return m.group(2)
    except OSError:
        pass
    return ""


def versions() -> dict:
    return {f"{p.replace('-', '_')}_version": _version(p) for p in PACKAGES}


def provenance(device: str) -> dict:
    return {
        **versions(),
        "python_version": platform.python_version(),
        "host": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu_model": cpu_model(),
        "gpu_model": gpu_model() if device != "cpu" else "",
        "git_commit": git_commit(),
        **(jetson_state() if device == "jetson" else {}),
        **slurm_state(),
    }


def slurm_state(env=None) -> dict:
    """The Slurm job and node a job ran as, where it ran under Slurm (else empty strings)."""
    env = os.environ if env is None else env
    return {
        "slurm_job_id": env.get("SLURM_JOB_ID", ""),
        "slurm_node": env.get("SLURMD_NODENAME") or env.get("SLURM_JOB_NODELIST", ""),
    }


def nvml_process_memory(pid: int | None = None) -> int | None:
    """GPU memory used by this process (bytes), from NVML; None where NVML cannot tell."""
    pid = pid or os.getpid()
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            total = 0
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                    if p.pid == pid and p.usedGpuMemory:
                        total += p.usedGpuMemory
            return total or None
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None
