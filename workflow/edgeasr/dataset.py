"""The test set: select utterances from a LibriSpeech-layout folder into a manifest.

LibriSpeech layout: ``<root>/.../<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with one line
``<utt_id> <TRANSCRIPT>`` per utterance and audio ``<utt_id>.flac`` beside it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import soundfile as sf

from .atomic import workdir_path, write_csv
from .audio import TARGET_SR, AudioError, read_audio, to_mono_16k, write_audio

log = logging.getLogger(__name__)

AUDIO_EXTS = (".flac", ".wav", ".ogg", ".mp3")
MANIFEST_COLUMNS = [
    "utt_id",
    "speaker",
    "chapter",
    "audio_path",
    "duration_s",
    "sample_rate",
    "source_path",
    "source_sample_rate",
    "source_channels",
    "resampled",
    "n_words",
    "reference",
]


class DatasetError(RuntimeError):
    pass


@dataclass
class Selection:
    speakers: list[str] | str = "all"
    chapters: list[str] | str = "all"
    max_utterances: int | None = None

    def wants(self, speaker: str, chapter: str) -> bool:
        ok_s = self.speakers == "all" or speaker in {str(s) for s in self.speakers}
        ok_c = self.chapters == "all" or chapter in {str(c) for c in self.chapters}
        return ok_s and ok_c


def find_transcripts(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; check dataset.extracted_dir or the download step")
    return sorted(root.rglob("*.trans.txt"))


def build_manifest(
    root: str | os.PathLike,
    selection: Selection,
    *,
    on_error: str = "error",
    resample_dir: str | os.PathLike | None = None,
    record_dir: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (manifest, skipped). ``on_error``: ``error`` stops at the first bad item, ``skip`` records it.

    Bad items: unreadable/corrupt audio, a transcript line without audio, audio without a transcript line.
    Audio that is not 16 kHz mono is resampled into ``resample_dir`` (FLAC, PCM_16) and marked ``resampled``;
    the manifest names it under ``record_dir`` (default: ``resample_dir``), for a folder renamed afterwards.
    """
    if on_error not in ("error", "skip"):
        raise DatasetError(f"dataset.on_error must be 'error' or 'skip', not {on_error!r}")
    rows, skipped = [], []

    def bad(path, utt, reason):
        if on_error == "error":
            raise DatasetError(f"{reason}: {path} (set dataset.on_error: skip to leave it out and record it)")
        log.warning("skipping %s: %s", path, reason)
        skipped.append({"utt_id": utt, "path": str(path), "reason": reason})

    transcripts = find_transcripts(root)
    if not transcripts:
        raise DatasetError(f"no LibriSpeech transcripts (*.trans.txt) under {root}")
    matched_any = False
    for tpath in transcripts:
        chapter_dir = tpath.parent
        chapter, speaker = chapter_dir.name, chapter_dir.parent.name
        if not selection.wants(speaker, chapter):
            continue
        matched_any = True
        refs: dict[str, str] = {}
        for i, line in enumerate(tpath.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2:
                bad(f"{tpath}:{i}", parts[0] if parts else "", "transcript line without text")
                continue
            refs[parts[0]] = parts[1]
        audio = {p.stem: p for p in chapter_dir.iterdir() if p.suffix.lower() in AUDIO_EXTS}
        for utt in sorted(set(audio) - set(refs)):
            bad(audio[utt], utt, "audio without a transcript line")
        for utt in sorted(refs):
            if utt not in audio:
                bad(tpath, utt, f"transcript line for {utt} without an audio file")
                continue
            path = audio[utt]
            try:
                info = sf.info(str(path))
                if info.frames <= 0:
                    raise AudioError(f"audio file {path} holds no samples")
                src_sr, src_ch = int(info.samplerate), int(info.channels)
                out_path, duration, resampled = path, info.frames / info.samplerate, False
                if src_sr != TARGET_SR or src_ch != 1:
                    data, sr = read_audio(path)
                    data, _ = to_mono_16k(data, sr)
                    if resample_dir is None:
                        raise DatasetError("audio needs resampling but no resample_dir was given")
                    out_path = Path(resample_dir) / f"{utt}.flac"
                    write_audio(out_path, data, TARGET_SR, "flac")
                    out_path = Path(record_dir or resample_dir) / out_path.name
                    duration, resampled = len(data) / TARGET_SR, True
                else:
                    # decode fully once: catches corrupt files that have a valid header
                    read_audio(path)
            except (AudioError, RuntimeError) as e:
                if isinstance(e, DatasetError):
                    raise
                bad(path, utt, f"unreadable or corrupt audio ({e})")
                continue
            rows.append(
                {
                    "utt_id": utt,
                    "speaker": speaker,
                    "chapter": chapter,
                    "audio_path": workdir_path(out_path),
                    "duration_s": round(duration, 6),
                    "sample_rate": TARGET_SR,
                    "source_path": workdir_path(path),
                    "source_sample_rate": src_sr,
                    "source_channels": src_ch,
                    "resampled": resampled,
                    "n_words": len(refs[utt].split()),
                    "reference": refs[utt],
                }
            )
    if not matched_any:
        raise DatasetError(
            f"no speaker/chapter under {root} matches dataset.subset (speakers={selection.speakers}, "
            f"chapters={selection.chapters})"
        )
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("utt_id", kind="stable")
    if selection.max_utterances:
        manifest = manifest.head(int(selection.max_utterances))
    if manifest.empty:
        raise DatasetError(f"the selection under {root} holds no usable utterance")
    return manifest.reset_index(drop=True), pd.DataFrame(skipped, columns=["utt_id", "path", "reason"])


def write_manifest(manifest: pd.DataFrame, skipped: pd.DataFrame, manifest_path, skipped_path) -> None:
    write_csv(skipped_path, skipped)
    write_csv(manifest_path, manifest)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"utt_id": str, "speaker": str, "chapter": str}, keep_default_na=False)
    missing = set(["utt_id", "audio_path", "duration_s", "reference"]) - set(df.columns)
    if missing:
        raise DatasetError(f"manifest {path} lacks columns {sorted(missing)}")
    return df


def summary(manifest: pd.DataFrame) -> dict:
    return {
        "utterances": int(len(manifest)),
        "words": int(manifest["n_words"].sum()),
        "audio_s": round(float(manifest["duration_s"].sum()), 1),
    }
