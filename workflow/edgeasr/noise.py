"""Where noise is added: one function per noise kind, one job per noise condition.

Kinds (``noise.conditions[].kind`` in the config):

- ``clean``: the 16 kHz mono audio, unchanged (re-encoded in the condition's format).
- ``white``: additive white Gaussian noise at a target SNR (audiomentations ``AddGaussianSNR``).
- ``pink``, ``brown``, ``blue``, ``violet``: coloured Gaussian noise at a target SNR
  (audiomentations ``AddColorNoise`` with the colour's spectral decay, -3.01/-6.02/+3.01/+6.02 dB/octave).
- ``background``: recordings from a folder (MUSAN, DEMAND, ...) at a target SNR
  (audiomentations ``AddBackgroundNoise``).
- ``uniform``: the reference study's own condition: additive uniform noise of a fixed amplitude
  (0.1 full scale), no SNR target. With ``every_4th_half`` the noise also has the pattern measured in
  the study's files: every fourth sample (index 3 mod 4) carries +-amplitude/2 instead.

For the SNR kinds, audiomentations makes the noise (its spectrum, file choice and looping) with
``min_snr_db == max_snr_db == target``; its level is then set so that the SNR of the written file
against its clean source is the target (10 log10(P_clean / P_noise)): audiomentations sets the
*expected* level, a finite Gaussian draw misses it by up to a few hundredths of a dB. The measured
SNR is computed after the file format's quantization and recorded per utterance.
Randomness: each utterance's generator is seeded from (seed, condition name, utterance id), so
reruns write the same bytes and adding a condition changes nothing in the others.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import workdir_path
from .audio import FORMATS, TARGET_SR, extension, quantize, read_audio, snr_db, write_audio

log = logging.getLogger(__name__)

COLOUR_DECAY_DB_PER_OCTAVE = {"pink": -3.01, "brown": -6.02, "blue": 3.01, "violet": 6.02}
SNR_KINDS = ("white", *COLOUR_DECAY_DB_PER_OCTAVE, "background")
KINDS = ("clean", *SNR_KINDS, "uniform")
CONDITION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
NOISE_TABLE_COLUMNS = [
    "utt_id",
    "condition",
    "noise_kind",
    "target_snr_db",
    "measured_snr_db",
    "noise_amplitude",
    "seed",
    "clipped_samples",
    "n_samples",
    "audio_path",
    "format",
    "subtype",
    "generator",
]


class NoiseError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    """One noise condition of the result matrix (a wildcard value and everything its job needs)."""

    name: str
    kind: str
    snr_db: float | None = None
    amplitude: float | None = None
    folder: str | None = None
    every_4th_half: bool = False
    params: dict = field(default_factory=dict, compare=False, hash=False)

    def as_params(self) -> dict:
        """The condition's settings as plain values (Snakemake ``params``: a change reruns this job)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "snr_db": self.snr_db,
            "amplitude": self.amplitude,
            "folder": self.folder,
            "every_4th_half": self.every_4th_half,
        }


def fmt_num(x: float) -> str:
    """10 -> '10', 7.5 -> '7.5', -5 -> '-5' (names stay stable when a list is reordered)."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def expand_conditions(entries: list[dict]) -> list[Condition]:
    """Expand ``noise.conditions`` (an entry may list several SNRs) into one Condition per job.

    Names: ``clean``, ``<kind>_snr<snr>`` (``white_snr10``), ``<name>_snr<snr>`` for background
    entries with a name, ``<name>`` or ``uniform_amp<amplitude>`` for uniform noise.
    """
    out: list[Condition] = []
    for i, e in enumerate(entries):
        where = f"noise.conditions[{i}]"
        kind = e.get("kind")
        if kind not in KINDS:
            raise NoiseError(f"{where}.kind: unknown noise kind {kind!r}; allowed: {', '.join(KINDS)}")
        name = e.get("name")
        if kind == "clean":
            out.append(Condition(name or "clean", "clean"))
        elif kind == "uniform":
            amp = float(e.get("amplitude", 0.1))
            if not 0 < amp <= 1:
                raise NoiseError(f"{where}.amplitude: {amp} must be in (0, 1] (full scale)")
            out.append(
                Condition(
                    name or f"uniform_amp{fmt_num(amp)}",
                    "uniform",
                    amplitude=amp,
                    every_4th_half=bool(e.get("every_4th_half", False)),
                )
            )
        else:
            snrs = e.get("snr_db")
            if snrs is None:
                raise NoiseError(f"{where}.snr_db: kind {kind!r} needs a list of SNRs in dB, e.g. [20, 10, 5, 0]")
            if not isinstance(snrs, (list, tuple)):
                snrs = [snrs]
            folder = e.get("folder")
            if kind == "background":
                if not folder:
                    raise NoiseError(f"{where}.folder: kind 'background' needs a folder of noise recordings")
            prefix = name or kind
            for s in snrs:
                if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(float(s)):
                    raise NoiseError(f"{where}.snr_db: {s!r} is not a number (SNRs are numbers in dB, e.g. 10 or -5)")
                out.append(Condition(f"{prefix}_snr{fmt_num(s)}", kind, snr_db=float(s), folder=folder))
    seen = set()
    for c in out:
        if not CONDITION_RE.match(c.name):
            raise NoiseError(f"noise condition name {c.name!r}: use letters, digits, '_', '.', '+', '-'")
        if c.name in seen:
            raise NoiseError(f"noise condition {c.name!r} is defined twice in noise.conditions")
        seen.add(c.name)
    return out


def utterance_seed(seed: int, condition: str, utt_id: str) -> int:
    h = hashlib.sha256(f"{seed}\x00{condition}\x00{utt_id}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def _seed_all(s: int) -> None:
    # audiomentations draws from the global `random` and `numpy.random` states
    random.seed(s)
    np.random.seed(s)


def _audiomentations_transform(cond: Condition):
    import audiomentations as am

    snr = cond.snr_db
    if cond.kind == "white":
        return am.AddGaussianSNR(min_snr_db=snr, max_snr_db=snr, p=1.0)
    if cond.kind in COLOUR_DECAY_DB_PER_OCTAVE:
        d = COLOUR_DECAY_DB_PER_OCTAVE[cond.kind]
        return am.AddColorNoise(min_snr_db=snr, max_snr_db=snr, min_f_decay=d, max_f_decay=d, p=1.0)
    if cond.kind == "background":
        folder = Path(cond.folder)
        if not folder.is_dir():
            raise NoiseError(f"background noise folder {folder} does not exist (noise.conditions[].folder)")
        return am.AddBackgroundNoise(sounds_path=str(folder), min_snr_db=snr, max_snr_db=snr, p=1.0)
    raise NoiseError(f"no audiomentations transform for kind {cond.kind!r}")


def make_noise(clean: np.ndarray, cond: Condition, seed: int, sr: int = TARGET_SR, transform=None) -> np.ndarray:
    """The noise to add to ``clean`` (float64) for one utterance; deterministic for a given seed."""
    if cond.kind == "clean":
        return np.zeros_like(clean)
    if cond.kind == "uniform":
        rng = np.random.default_rng(seed)
        noise = rng.uniform(-cond.amplitude, cond.amplitude, size=clean.shape)
        if cond.every_4th_half:
            signs = rng.choice([-1.0, 1.0], size=noise[3::4].shape)
            noise[3::4] = signs * cond.amplitude / 2
        return noise
    _seed_all(seed)
    transform = transform or _audiomentations_transform(cond)
    noisy = transform(samples=clean.astype(np.float32), sample_rate=sr).astype(np.float64)
    noise = noisy - clean.astype(np.float32).astype(np.float64)
    p_clean, p_noise = float(np.mean(clean**2)), float(np.mean(noise**2))
    if p_noise == 0.0 or p_clean == 0.0:
        raise NoiseError("cannot set an SNR on silent audio or silent noise")
    # set the realised level so that P_clean / P_noise is exactly the target
    return noise * math.sqrt(p_clean / (p_noise * 10 ** (cond.snr_db / 10)))


def apply_condition(clean: np.ndarray, cond: Condition, seed: int, fmt: str, transform=None) -> tuple[np.ndarray, dict]:
    """Return (samples as they will read back from ``fmt``, per-utterance stats)."""
    noise = make_noise(clean, cond, seed, transform=transform)
    noisy = clean + noise
    limit = 32767 / 32768 if FORMATS[fmt][1] == "PCM_16" else 1.0
    clipped = int(np.count_nonzero((noisy > limit) | (noisy < -1.0)))
    if FORMATS[fmt][1] == "PCM_16" and cond.kind in SNR_KINDS:
        # round the noise, not the sum: the clean samples are already exact 16-bit values, so the
        # written file's noise is the rounded noise and the SNR error is only the rounding's
        noisy = clean + np.round(noise * 32768.0) / 32768.0
    out = quantize(np.clip(noisy, -1.0, limit), fmt)
    stats = {"clipped_samples": clipped, "measured_snr_db": None if cond.kind == "clean" else snr_db(clean, out)}
    return out, stats


def run_condition(
    manifest: pd.DataFrame,
    cond: Condition,
    out_dir: str | Path,
    seed: int,
    fmt: str = "flac",
    max_snr_error_db: float = 0.1,
    record_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Write the noisy copy of every utterance of ``manifest`` into ``out_dir``; return the per-utterance table.

    ``record_dir``: the folder the table names as the files' place (the final folder when ``out_dir``
    is a temporary one that is renamed afterwards).

    Raises if any SNR-targeted file misses its target by more than ``max_snr_error_db`` (e.g. heavy
    clipping), naming the file, so a bad condition never passes silently.
    """
    if fmt not in FORMATS:
        raise NoiseError(f"noise.format: {fmt!r} unknown; allowed: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    transform = _audiomentations_transform(cond) if cond.kind in SNR_KINDS else None
    rows = []
    for r in manifest.itertuples(index=False):
        clean, sr = read_audio(r.audio_path)
        if sr != TARGET_SR or clean.ndim != 1:
            raise NoiseError(f"{r.audio_path}: expected 16 kHz mono audio from the manifest, got {sr} Hz")
        s = utterance_seed(seed, cond.name, r.utt_id)
        noisy, stats = apply_condition(clean, cond, s, fmt, transform=transform)
        path = out_dir / f"{r.utt_id}{extension(fmt)}"
        write_audio(path, noisy, TARGET_SR, fmt)
        if cond.snr_db is not None and abs(stats["measured_snr_db"] - cond.snr_db) > max_snr_error_db:
            raise NoiseError(
                f"{path}: measured SNR {stats['measured_snr_db']:.3f} dB misses the target {cond.snr_db} dB by more "
                f"than {max_snr_error_db} dB ({stats['clipped_samples']} clipped samples); lower the noise level or "
                "use noise.format: wav-float"
            )
        rows.append(
            {
                "utt_id": r.utt_id,
                "condition": cond.name,
                "noise_kind": cond.kind,
                "target_snr_db": cond.snr_db,
                "measured_snr_db": stats["measured_snr_db"],
                "noise_amplitude": cond.amplitude,
                "seed": s,
                "clipped_samples": stats["clipped_samples"],
                "n_samples": len(noisy),
                "audio_path": workdir_path(Path(record_dir or out_dir) / path.name),
                "format": FORMATS[fmt][0],
                "subtype": FORMATS[fmt][1],
                "generator": _generator_name(cond),
            }
        )
    return pd.DataFrame(rows, columns=NOISE_TABLE_COLUMNS)


def _generator_name(cond: Condition) -> str:
    import audiomentations as am

    return {
        "clean": "none",
        "white": f"audiomentations {am.__version__} AddGaussianSNR",
        "background": f"audiomentations {am.__version__} AddBackgroundNoise",
        "uniform": "numpy uniform" + (" + every-4th-sample +-amplitude/2" if cond.every_4th_half else ""),
    }.get(cond.kind, f"audiomentations {am.__version__} AddColorNoise")
