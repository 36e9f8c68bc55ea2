"""Noise injection at set SNRs: every kind within 0.1 dB (measured independently on the written
files against their clean sources), determinism, and the study's own uniform condition."""

import hashlib

import numpy as np
import pytest
import soundfile as sf

from edgeasr.dataset import Selection, build_manifest
from edgeasr.noise import Condition, NoiseError, expand_conditions, run_condition, utterance_seed


@pytest.fixture(scope="module")
def manifest5(librispeech_dir):
    man, _ = build_manifest(librispeech_dir.parents[2], Selection(max_utterances=5))
    return man


def independent_snr(clean_path, noisy_path):
    c, _ = sf.read(clean_path, dtype="float64")
    n, _ = sf.read(noisy_path, dtype="float64")
    assert len(c) == len(n)
    return 10 * np.log10(np.sum(c**2) / np.sum((n - c) ** 2))


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "blue", "violet", "background"])
@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_snr_within_0p1_db_for_each_kind(kind, fmt, manifest5, librispeech_dir, tmp_path):
    entry = {"kind": kind, "snr_db": [20, 5, 0]}
    if kind == "background":
        # background recordings: other utterances of the chapter (real speech babble)
        bg = tmp_path / "bg"
        bg.mkdir()
        for u in ("3752-4944-0040", "3752-4944-0041"):
            (bg / f"{u}.flac").write_bytes((librispeech_dir / f"{u}.flac").read_bytes())
        entry["folder"] = str(bg)
    for cond in expand_conditions([entry]):
        table = run_condition(manifest5, cond, tmp_path / cond.name, seed=7, fmt=fmt)
        assert len(table) == 5 and (table["noise_kind"] == kind).all()
        for r, clean in zip(table.itertuples(), manifest5["audio_path"]):
            measured = independent_snr(clean, r.audio_path)
            assert abs(measured - cond.snr_db) <= 0.1, (cond.name, r.utt_id, measured)
            assert r.measured_snr_db == pytest.approx(measured, abs=1e-6)
            assert r.audio_path.endswith("." + fmt) and sf.info(r.audio_path).subtype == "PCM_16"


def test_float_wav_is_exact(manifest5, tmp_path):
    cond = expand_conditions([{"kind": "white", "snr_db": 3}])[0]
    t = run_condition(manifest5, cond, tmp_path, seed=1, fmt="wav-float")
    assert sf.info(t["audio_path"][0]).subtype == "FLOAT"
    assert (t["measured_snr_db"] - 3).abs().max() < 0.01


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(manifest5, tmp_path):
    for c in expand_conditions([{"kind": "pink", "snr_db": 10}, {"kind": "uniform", "amplitude": 0.1}]):
        run_condition(manifest5, c, tmp_path / "a" / c.name, seed=3)
        run_condition(manifest5, c, tmp_path / "b" / c.name, seed=3)
        run_condition(manifest5, c, tmp_path / "c" / c.name, seed=4)
        a, b, d = (_digest(tmp_path / x / c.name) for x in "abc")
        assert a == b
        assert all(a[k] != d[k] for k in a)


def test_seed_depends_on_condition_and_utterance():
    s = utterance_seed(1, "white_snr10", "u1")
    assert s == utterance_seed(1, "white_snr10", "u1")
    assert (
        len(
            {
                s,
                utterance_seed(1, "white_snr5", "u1"),
                utterance_seed(1, "white_snr10", "u2"),
                utterance_seed(2, "white_snr10", "u1"),
            }
        )
        == 4
    )


def test_clean_condition_is_bit_exact(manifest5, tmp_path):
    t = run_condition(manifest5, Condition("clean", "clean"), tmp_path, seed=0)
    for r, clean in zip(t.itertuples(), manifest5["audio_path"]):
        a, _ = sf.read(clean, dtype="int16")
        b, _ = sf.read(r.audio_path, dtype="int16")
        assert np.array_equal(a, b)
    assert t["measured_snr_db"].isna().all()


def test_study_uniform_condition_matches_the_study_files(librispeech_dir, paper_noisy_dir, tmp_path):
    """The study's noisy set: per-file SNR, noise bound, noise RMS and the every-4th-sample pattern."""
    man, _ = build_manifest(librispeech_dir.parents[2], Selection())
    cond = expand_conditions([{"kind": "uniform", "name": "paper", "amplitude": 0.1, "every_4th_half": True}])[0]
    ours = run_condition(man, cond, tmp_path, seed=20240502).set_index("utt_id")
    ours_snr, theirs_snr, ours_rms, theirs_rms = [], [], [], []
    for r in man.itertuples():
        c, _ = sf.read(r.audio_path, dtype="float64")
        theirs, _ = sf.read(paper_noisy_dir / f"{r.utt_id}.flac", dtype="float64")
        mine, _ = sf.read(ours.loc[r.utt_id, "audio_path"], dtype="float64")
        n = min(len(c), len(theirs))
        d_t, d_o = theirs[:n] - c[:n], mine - c
        theirs_snr.append(10 * np.log10(np.mean(c[:n] ** 2) / np.mean(d_t**2)))
        ours_snr.append(ours.loc[r.utt_id, "measured_snr_db"])
        theirs_rms.append(np.sqrt(np.mean(d_t**2)))
        ours_rms.append(np.sqrt(np.mean(d_o**2)))
        assert np.abs(d_o).max() <= 0.1 + 1 / 32768
        # the pattern: samples 3 mod 4 carry +-amplitude/2 (as in the study's files)
        assert np.mean(np.abs(np.abs(d_o[3::4]) - 0.05) < 2 / 32768) > 0.99
        assert np.mean(np.abs(np.abs(d_t[3::4]) - 0.05) < 0.001) > 0.99
    ours_snr, theirs_snr = np.array(ours_snr), np.array(theirs_snr)
    assert np.abs(ours_snr - theirs_snr).max() < 0.1  # file by file
    assert abs(np.median(ours_snr) - np.median(theirs_snr)) < 0.05
    assert abs(np.mean(ours_rms) / np.mean(theirs_rms) - 1) < 0.01
    assert 0.7 < ours_snr.min() < 0.9 and 8.9 < ours_snr.max() < 9.2  # the study's 0.8 .. 9.0 dB


def test_plain_uniform_noise_is_uniform(manifest5, tmp_path):
    cond = expand_conditions([{"kind": "uniform", "amplitude": 0.1}])[0]
    assert cond.name == "uniform_amp0.1"
    t = run_condition(manifest5, cond, tmp_path, seed=1, fmt="wav-float")
    c, _ = sf.read(manifest5["audio_path"][0], dtype="float64")
    n, _ = sf.read(t["audio_path"][0], dtype="float64")
    d = n - c
    assert np.sqrt(np.mean(d**2)) == pytest.approx(0.1 / np.sqrt(3), rel=0.02)


def test_condition_names_and_errors():
    names = [
        c.name
        for c in expand_conditions(
            [
                {"kind": "clean"},
                {"kind": "white", "snr_db": [10, 7.5, -5]},
                {"kind": "brown", "snr_db": 0},
                {"kind": "background", "name": "musan", "folder": "/x", "snr_db": [5]},
            ]
        )
    ]
    assert names == ["clean", "white_snr10", "white_snr7.5", "white_snr-5", "brown_snr0", "musan_snr5"]
    with pytest.raises(NoiseError, match=r"noise.conditions\[0\].snr_db: 'ten' is not a number"):
        expand_conditions([{"kind": "white", "snr_db": ["ten"]}])
    with pytest.raises(NoiseError, match="unknown noise kind 'purple'; allowed: clean, white"):
        expand_conditions([{"kind": "purple", "snr_db": [1]}])
    with pytest.raises(NoiseError, match="needs a folder"):
        expand_conditions([{"kind": "background", "snr_db": [1]}])
    with pytest.raises(NoiseError, match="defined twice"):
        expand_conditions([{"kind": "white", "snr_db": [1, 1]}])


def test_missing_background_folder(manifest5, tmp_path):
    cond = expand_conditions([{"kind": "background", "folder": str(tmp_path / "none"), "snr_db": [5]}])[0]
    with pytest.raises(NoiseError, match="does not exist"):
        run_condition(manifest5, cond, tmp_path / "o", seed=1)
