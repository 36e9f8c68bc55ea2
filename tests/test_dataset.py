"""Manifest building on the real study subset; resampling; bad inputs."""

import shutil

import numpy as np
import pytest
import soundfile as sf

from edgeasr.audio import read_audio, to_mono_16k
from edgeasr.dataset import DatasetError, Selection, build_manifest, summary


def test_manifest_counts_of_the_study_subset(librispeech_dir):
    root = librispeech_dir.parents[2]
    man, skipped = build_manifest(root, Selection(["3752"], ["4944"]))
    assert summary(man) == {"utterances": 70, "words": 894, "audio_s": 328.3}
    assert skipped.empty
    assert (man["sample_rate"] == 16000).all() and not man["resampled"].any()
    row = man.set_index("utt_id").loc["3752-4944-0000"]
    assert row["reference"] == "CAPTAIN FRERE SAYS THAT THE SCENERY IS DELIGHTFUL"
    assert row["duration_s"] == pytest.approx(3.335)


def test_selection_filters(librispeech_dir):
    root = librispeech_dir.parents[2]
    with pytest.raises(DatasetError, match="no speaker/chapter"):
        build_manifest(root, Selection(["1"], "all"))
    man, _ = build_manifest(root, Selection("all", "all", max_utterances=5))
    assert list(man["utt_id"]) == [f"3752-4944-{i:04d}" for i in range(5)]


def _copy_chapter(librispeech_dir, tmp_path, n=4):
    dst = tmp_path / "LibriSpeech" / "x" / "3752" / "4944"
    dst.mkdir(parents=True)
    lines = (librispeech_dir / "3752-4944.trans.txt").read_text().splitlines()[:n]
    (dst / "3752-4944.trans.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        u = line.split()[0]
        shutil.copy(librispeech_dir / f"{u}.flac", dst / f"{u}.flac")
    return dst


def test_resampling_44k_stereo_is_recorded(librispeech_dir, tmp_path):
    dst = _copy_chapter(librispeech_dir, tmp_path)
    x, sr = read_audio(dst / "3752-4944-0001.flac")
    import soxr

    up = soxr.resample(x, 16000, 44100)
    sf.write(dst / "3752-4944-0001.flac", np.stack([up, up], axis=1), 44100, subtype="PCM_16")
    man, _ = build_manifest(tmp_path, Selection(), resample_dir=tmp_path / "rs")
    r = man.set_index("utt_id").loc["3752-4944-0001"]
    assert bool(r["resampled"]) and r["source_sample_rate"] == 44100 and r["source_channels"] == 2
    y, sr2 = read_audio(r["audio_path"])
    assert sr2 == 16000 and y.ndim == 1
    assert abs(len(y) - len(x)) <= 2
    # the round trip 16k -> 44.1k -> 16k keeps the signal (correlation near 1)
    n = min(len(x), len(y))
    assert np.corrcoef(x[:n], y[:n])[0, 1] > 0.99


def test_to_mono_16k_noop():
    x = np.zeros(1600)
    y, changed = to_mono_16k(x, 16000)
    assert not changed and y.shape == x.shape


def test_corrupt_audio_error_or_skip(librispeech_dir, tmp_path):
    dst = _copy_chapter(librispeech_dir, tmp_path)
    bad = dst / "3752-4944-0002.flac"
    bad.write_bytes(b"fLaC" + b"\x00" * 100)
    with pytest.raises(DatasetError) as e:
        build_manifest(tmp_path, Selection())
    assert "3752-4944-0002.flac" in str(e.value) and "on_error: skip" in str(e.value)
    man, skipped = build_manifest(tmp_path, Selection(), on_error="skip")
    assert "3752-4944-0002" not in set(man["utt_id"]) and len(man) == 3
    assert list(skipped["utt_id"]) == ["3752-4944-0002"] and "corrupt" in skipped["reason"][0]


def test_transcript_without_audio_and_audio_without_transcript(librispeech_dir, tmp_path):
    dst = _copy_chapter(librispeech_dir, tmp_path)
    (dst / "3752-4944-0003.flac").unlink()
    shutil.copy(librispeech_dir / "3752-4944-0010.flac", dst / "3752-4944-0010.flac")
    with pytest.raises(DatasetError, match="3752-4944-0010.flac"):
        build_manifest(tmp_path, Selection())
    man, skipped = build_manifest(tmp_path, Selection(), on_error="skip")
    assert set(skipped["utt_id"]) == {"3752-4944-0003", "3752-4944-0010"}
    reasons = dict(zip(skipped["utt_id"], skipped["reason"]))
    assert "without an audio file" in reasons["3752-4944-0003"]
    assert "without a transcript" in reasons["3752-4944-0010"]
    assert len(man) == 3


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        build_manifest(tmp_path / "nope", Selection())
