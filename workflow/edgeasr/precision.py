"""One precision vocabulary for the whole study, mapped per engine and device.

Built-in precisions: ``fp32``, ``fp16``, ``bf16``, ``int8``. Quantizers configured under
``quantizers`` (General Quantizer ``gq``, plain ``uniform``) add more names.

A combination an engine cannot run on a device is found before any job starts
(:func:`support`): it is not scheduled and the results table lists it as unsupported with the reason.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

BUILTIN = ("fp32", "fp16", "bf16", "int8")
ENGINES = ("faster-whisper", "transformers")
DEVICES = ("cpu", "cuda", "jetson")


@dataclass(frozen=True)
class Plan:
    """How one (engine, precision, device) runs: what the engine is asked for, and how it is stated."""

    supported: bool
    reason: str = ""
    compute_type: str = ""  # CT2 compute type, or torch dtype name, or quantizer description
    torch_dtype: str = ""  # transformers engine: torch dtype of the float compute
    method: str = "native"  # native | dynamic-int8 | torchao-int8 | gq | uniform
    weight_bits: float = 32.0


def known_precisions(config: dict | None = None) -> set[str]:
    names = set(BUILTIN)
    if config:
        names |= set((config.get("quantizers") or {}).keys())
    return names


def _no_nvidia_device(dev="/dev", proc="/proc/driver/nvidia") -> bool:
    """True when this machine plainly has no NVIDIA GPU (no device node, no driver, not a Jetson), so
    that planning a run on a CPU machine never imports torch or CTranslate2 to find out."""
    nodes = any(Path(dev).glob("nvidia[0-9]*")) or Path(dev, "nvidiactl").exists() or Path(proc).exists()
    return not nodes and not is_jetson()


@functools.lru_cache(maxsize=1)
def _cuda_available() -> bool:
    if _no_nvidia_device():
        return False
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return True
    except Exception:
        pass
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists() or "tegra" in os.uname().release.lower()


def resolve_device(device: str) -> str:
    """``auto`` -> ``jetson`` on a Jetson, ``cuda`` with an NVIDIA GPU, else ``cpu``."""
    if device not in ("auto", *DEVICES):
        raise ValueError(f"inference.device: {device!r} unknown; allowed: auto, cpu, cuda, jetson")
    if device != "auto":
        return device
    if _cuda_available():
        return "jetson" if is_jetson() else "cuda"
    return "cpu"


def _gpu_compute_capability() -> tuple[int, int] | None:
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return tuple(ctranslate2.get_cuda_device_compute_capability(0))  # type: ignore[attr-defined]
    except Exception:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_capability(0)
    except Exception:
        pass
    return None


def plan(engine: str, precision: str, device: str, family: str = "whisper", quantizers: dict | None = None) -> Plan:
    """Map a study precision to what ``engine`` runs on ``device`` (already resolved), or why it can't."""
    gpu = device in ("cuda", "jetson")
    quantizers = quantizers or {}
    if engine == "faster-whisper":
        if family != "whisper":
            return Plan(False, f"faster-whisper runs Whisper models only, not the {family} family")
        if precision in quantizers:
            q = quantizers[precision]
            return Plan(
                False,
                f"{precision} ({q.get('method')}) is applied to transformers models; "
                "CTranslate2 has no sub-8-bit weights",
            )
        if precision == "fp32":
            return Plan(True, compute_type="float32", weight_bits=32)
        if precision == "fp16":
            if not gpu:
                return Plan(False, "CTranslate2 float16 needs a CUDA GPU (this run's device is cpu)")
            return Plan(True, compute_type="float16", weight_bits=16)
        if precision == "bf16":
            if not gpu:
                return Plan(False, "CTranslate2 bfloat16 needs a CUDA GPU (this run's device is cpu)")
            cc = _gpu_compute_capability()
            if cc is not None and cc < (8, 0):
                return Plan(False, f"CTranslate2 bfloat16 needs compute capability >= 8.0, this GPU has {cc}")
            return Plan(True, compute_type="bfloat16", weight_bits=16)
        if precision == "int8":
            # int8 weights; activations in float32 on CPU, float16 on GPU (what faster-whisper users run)
            return Plan(
                True, compute_type="int8_float16" if gpu else "int8_float32", method="int8-weights", weight_bits=8
            )
        return Plan(False, f"unknown precision {precision!r}")
    if engine == "transformers":
        if precision == "fp32":
            return Plan(True, compute_type="float32", torch_dtype="float32", weight_bits=32)
        if precision == "fp16":
            if not gpu:
                return Plan(
                    False,
                    "transformers float16 on a CPU has no native kernels (torch emulates it slowly); run fp16 on a GPU",
                )
            return Plan(True, compute_type="float16", torch_dtype="float16", weight_bits=16)
        if precision == "bf16":
            if gpu:
                cc = _gpu_compute_capability()
                if cc is not None and cc < (8, 0):
                    return Plan(False, f"bfloat16 needs compute capability >= 8.0, this GPU has {cc}")
            return Plan(True, compute_type="bfloat16", torch_dtype="bfloat16", weight_bits=16)
        if precision == "int8":
            if gpu:
                return Plan(
                    True,
                    compute_type="torchao-int8-weight-only",
                    torch_dtype="float16",
                    method="torchao-int8",
                    weight_bits=8,
                )
            return Plan(
                True, compute_type="torch-dynamic-qint8", torch_dtype="float32", method="dynamic-int8", weight_bits=8
            )
        if precision in quantizers:
            q = quantizers[precision]
            bits = q.get("bits")
            wb = float(bits) if isinstance(bits, (int, float)) else float("nan")
            return Plan(
                True,
                compute_type=f"{q.get('method')}-packed (float32 compute)",
                torch_dtype="float32",
                method=q.get("method", "gq"),
                weight_bits=wb,
            )
        return Plan(False, f"unknown precision {precision!r}")
    return Plan(False, f"unknown engine {engine!r}")
