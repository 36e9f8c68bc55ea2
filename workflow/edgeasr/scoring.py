"""Scoring: Whisper's English text normalizer, jiwer corpus WER / CER, seeded bootstrap intervals."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

SPELLING_PATH = Path(__file__).parent / "data" / "whisper_english_spelling.json"


@functools.lru_cache(maxsize=1)
def normalizer():
    """transformers' ``EnglishTextNormalizer`` with Whisper's spelling map (as Open ASR Leaderboard uses)."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(json.loads(SPELLING_PATH.read_text()))


def normalize(text: str) -> str:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    return normalizer()(str(text))


def _counts(refs: list[str], hyps: list[str]) -> dict:
    import jiwer

    # jiwer refuses empty references; such utterances (none in LibriSpeech) count only insertions
    out = {"hits": 0, "substitutions": 0, "deletions": 0, "insertions": 0, "ref_words": 0}
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    for r, h in zip(refs, hyps):
        if not r.strip():
            out["insertions"] += len(h.split())
    if pairs:
        o = jiwer.process_words([p[0] for p in pairs], [p[1] if p[1].strip() else "" for p in pairs])
        out["hits"] += o.hits
        out["substitutions"] += o.substitutions
        out["deletions"] += o.deletions
        out["insertions"] += o.insertions
    out["ref_words"] = out["hits"] + out["substitutions"] + out["deletions"]
    return out


def utterance_errors(ref_norm: list[str], hyp_norm: list[str]) -> pd.DataFrame:
    rows = []
    for r, h in zip(ref_norm, hyp_norm):
        c = _counts([r], [h])
        err = c["substitutions"] + c["deletions"] + c["insertions"]
        rows.append(
            {
                "ref_words": c["ref_words"],
                "errors": err,
                **{k: c[k] for k in ("substitutions", "deletions", "insertions")},
                "wer_pct": 100.0 * err / c["ref_words"] if c["ref_words"] else np.nan,
            }
        )
    return pd.DataFrame(rows)


def char_error_rate(ref_norm: list[str], hyp_norm: list[str]) -> float:
    import jiwer

    pairs = [(r, h) for r, h in zip(ref_norm, hyp_norm) if r.strip()]
    if not pairs:
        return float("nan")
    o = jiwer.process_characters([p[0] for p in pairs], [p[1] for p in pairs])
    n = o.hits + o.substitutions + o.deletions
    return 100.0 * (o.substitutions + o.deletions + o.insertions) / n


def bootstrap_wer(
    errors: np.ndarray, ref_words: np.ndarray, samples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap of corpus WER over utterances (resampling whole utterances)."""
    errors, ref_words = np.asarray(errors, float), np.asarray(ref_words, float)
    n = len(errors)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(samples, n))
    wers = 100.0 * errors[idx].sum(axis=1) / np.maximum(ref_words[idx].sum(axis=1), 1)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(wers, [a, 1 - a])
    return float(lo), float(hi)


def score(
    utts: pd.DataFrame, *, samples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[dict, pd.DataFrame]:
    """Score a cell's utterance table (columns ``reference``, ``hypothesis``).

    Returns (cell metrics, utterance table with normalised texts and per-utterance errors).
    """
    utts = utts.copy()
    utts["ref_norm"] = [normalize(t) for t in utts["reference"]]
    utts["hyp_norm"] = [normalize(t) for t in utts["hypothesis"].fillna("")]
    per = utterance_errors(list(utts["ref_norm"]), list(utts["hyp_norm"]))
    utts = pd.concat([utts.reset_index(drop=True), per], axis=1)
    c = _counts(list(utts["ref_norm"]), list(utts["hyp_norm"]))
    n_err = c["substitutions"] + c["deletions"] + c["insertions"]
    lo, hi = bootstrap_wer(utts["errors"].to_numpy(), utts["ref_words"].to_numpy(), samples, seed, confidence)
    metrics = {
        "wer_pct": 100.0 * n_err / c["ref_words"] if c["ref_words"] else float("nan"),
        "wer_ci_low_pct": lo,
        "wer_ci_high_pct": hi,
        "cer_pct": char_error_rate(list(utts["ref_norm"]), list(utts["hyp_norm"])),
        **c,
    }
    return metrics, utts
