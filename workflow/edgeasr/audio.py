"""Reading, writing and resampling audio (soundfile + soxr; no torchaudio)."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from .atomic import atomic_path

TARGET_SR = 16000
# Formats the noise step may write, and the sample encoding each uses (stated in every table).
FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16"), "wav-float": ("WAV", "FLOAT")}


class AudioError(RuntimeError):
    pass


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a file as float64 samples in [-1, 1) (mono: shape (n,); multichannel: (n, ch))."""
    try:
        data, sr = sf.read(str(path), dtype="float64", always_2d=False)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError subclasses
        raise AudioError(f"cannot read audio file {path}: {e}") from e
    if data.size == 0:
        raise AudioError(f"audio file {path} holds no samples")
    return data, int(sr)


def to_mono_16k(data: np.ndarray, sr: int, target_sr: int = TARGET_SR) -> tuple[np.ndarray, bool]:
    """Down-mix to mono and resample to ``target_sr`` with soxr (VHQ). Returns (audio, changed)."""
    changed = False
    if data.ndim == 2:
        data = data.mean(axis=1)
        changed = True
    if sr != target_sr:
        import soxr

        data = soxr.resample(data, sr, target_sr, quality="VHQ")
        changed = True
    return np.asarray(data, dtype=np.float64), changed


def quantize(data: np.ndarray, fmt: str) -> np.ndarray:
    """The samples exactly as they will read back from ``fmt`` (PCM_16 rounding and clipping)."""
    _, subtype = FORMATS[fmt]
    if subtype == "PCM_16":
        q = np.clip(np.round(data * 32768.0), -32768, 32767)
        return q / 32768.0
    return data.astype(np.float32).astype(np.float64)


def write_audio(path: str | os.PathLike, data: np.ndarray, sr: int, fmt: str = "flac") -> None:
    """Write atomically. PCM_16 samples are written as exact integers (no second rounding)."""
    if fmt not in FORMATS:
        raise AudioError(f"unknown audio format {fmt!r}; use one of {sorted(FORMATS)}")
    container, subtype = FORMATS[fmt]
    with atomic_path(path) as tmp:
        if subtype == "PCM_16":
            ints = np.clip(np.round(np.asarray(data) * 32768.0), -32768, 32767).astype(np.int16)
            sf.write(str(tmp), ints, sr, format=container, subtype=subtype)
        else:
            sf.write(str(tmp), np.asarray(data, dtype=np.float32), sr, format=container, subtype=subtype)


def extension(fmt: str) -> str:
    return ".flac" if fmt == "flac" else ".wav"


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR of ``noisy`` against its ``clean`` source: 10 log10(P_clean / P_(noisy-clean))."""
    n = min(len(clean), len(noisy))
    c = np.asarray(clean[:n], dtype=np.float64)
    d = np.asarray(noisy[:n], dtype=np.float64) - c
    pn = float(np.mean(d * d))
    if pn == 0.0:
        return float("inf")
    return 10.0 * np.log10(float(np.mean(c * c)) / pn)
