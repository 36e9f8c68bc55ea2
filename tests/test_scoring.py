"""Whisper's English normalizer, jiwer counts, CER and the bootstrap interval."""

import numpy as np
import pandas as pd
import pytest

from edgeasr.scoring import bootstrap_wer, normalize, score


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("Mr. Smith's colour!", "mister smith is color"),  # the normalizer expands 's
        ("CAPTAIN FRERE SAYS THAT THE SCENERY IS DELIGHTFUL", "captain frere says that the scenery is delightful"),
        ("It cost twenty dollars.", "it cost $20"),
        ("  [laughs] Hello, world  ", "hello world"),
    ],
)
def test_whisper_english_normalizer(raw, norm):
    assert normalize(raw) == norm


def test_corpus_wer_counts_and_cer():
    utts = pd.DataFrame(
        {"reference": ["the cat sat", "on the mat", "hello"], "hypothesis": ["The cat sat.", "on a mat here", ""]}
    )
    m, scored = score(utts, samples=200, seed=1)
    assert (m["ref_words"], m["hits"], m["substitutions"], m["deletions"], m["insertions"]) == (7, 5, 1, 1, 1)
    assert m["wer_pct"] == pytest.approx(100 * 3 / 7)
    assert list(scored["errors"]) == [0, 2, 1]
    assert 0 < m["cer_pct"] < 100
    assert m["wer_ci_low_pct"] <= m["wer_pct"] <= m["wer_ci_high_pct"]


def test_bootstrap_is_seeded_and_covers():
    rng = np.random.default_rng(0)
    words = rng.integers(5, 30, 200)
    errors = rng.binomial(words, 0.1)
    a = bootstrap_wer(errors, words, samples=500, seed=3)
    assert a == bootstrap_wer(errors, words, samples=500, seed=3)
    assert a != bootstrap_wer(errors, words, samples=500, seed=4)
    wer = 100 * errors.sum() / words.sum()
    assert a[0] < wer < a[1] and a[1] - a[0] < 4
    assert bootstrap_wer(np.zeros(5), np.ones(5)) == (0.0, 0.0)
