"""Training speech for quantization-aware training by distillation: English text spoken by espeak-ng and flite.

Offline, the only LibriSpeech audio here is the test set, and a model may never train on what it is
tested on. So the training audio is synthesized: sentences of a text file (``training_speech.<name>.text``;
``edgeasr:python-docs-sentences.txt`` offline, shipped with the package) spoken in several English voices,
rates and pitches, with the workflow's own noise kinds (``edgeasr.noise``) as augmentation. A voice is an
espeak-ng voice (``en-us``: formant synthesis) or ``flite:<voice>`` (CMU flite: ``flite:slt``, ``flite:rms``,
``flite:awb``, ``flite:kal16``; statistical voices trained on recorded speech, which Whisper tiny.en
transcribes at 7-11 % WER against 24 % for espeak-ng's en-us on the same sentences).
No labels are needed: the fp32 model of the same checkpoint decodes this audio and its output is the
target (``edgeasr.distill``).

Guarantees, each checked here before any audio is written:

* no sentence is a test transcript, or shares a run of ``ngram`` words with one (after Whisper's English
  normalizer): such sentences are dropped and counted in the report;
* no training utterance id is a test utterance id, and no audio file is read from the test set.

Each utterance's voice, rate, pitch, sentences and noise are drawn from a generator seeded with
(``seed``, utterance index), so the same settings write the same audio bytes.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_dir, write_csv, write_json
from .audio import read_audio, to_mono_16k, write_audio
from .noise import apply_condition, expand_conditions, utterance_seed

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "utt_id",
    "audio_path",
    "reference",
    "seconds",
    "voice",
    "rate_wpm",
    "pitch",
    "noise_condition",
    "measured_snr_db",
]
MAX_SECONDS = 29.0  # Whisper reads 30 s windows; keep every utterance inside one


class TrainingSpeechError(ValueError):
    pass


@dataclass(frozen=True)
class SpeechSettings:
    """One ``training_speech`` entry of the config (workflow/schemas/config.schema.yaml)."""

    text: str
    utterances: int = 400
    voices: tuple[str, ...] = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us+f3", "en-gb+f4")
    rates_wpm: tuple[int, int] = (130, 190)
    pitches: tuple[int, int] = (30, 70)
    max_words: int = 40
    noise: list = field(default_factory=lambda: [{"kind": "clean"}])
    ngram: int = 6
    seed: int = 0
    espeak: str = "espeak-ng"
    flite: str = "flite"

    @classmethod
    def from_config(cls, d: dict) -> SpeechSettings:
        kw = dict(d)
        for key in ("voices", "rates_wpm", "pitches"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


PACKAGE_PREFIX = "edgeasr:"


def text_path(text: str) -> Path:
    """``edgeasr:NAME`` is a text file shipped with the package (``edgeasr/data/NAME``); else a path."""
    if str(text).startswith(PACKAGE_PREFIX):
        return Path(__file__).parent / "data" / str(text)[len(PACKAGE_PREFIX) :]
    return Path(text).expanduser()


def read_sentences(path) -> list[str]:
    """One sentence per line; blank lines and ``#`` comments skipped; duplicates (case-blind) dropped."""
    p = text_path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TrainingSpeechError(f"training text {p} does not exist (training_speech.<name>.text)") from None
    except UnicodeDecodeError as e:
        raise TrainingSpeechError(f"training text {p} is not UTF-8: {e}") from None
    seen, out = set(), []
    for line in lines:
        s = " ".join(line.split())
        if not s or s.startswith("#") or s.lower() in seen:
            continue
        seen.add(s.lower())
        out.append(s)
    if not out:
        raise TrainingSpeechError(f"training text {p} holds no sentence (one per line)")
    return out


def _words(text: str) -> list[str]:
    from .scoring import normalize

    return normalize(text).split()


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(max(0, len(words) - n + 1))}


def drop_test_text(sentences: list[str], test_texts: list[str], ngram: int = 6) -> tuple[list[str], list[dict]]:
    """Sentences that neither equal a test transcript nor share ``ngram`` consecutive words with one.

    Returns (kept, dropped) where each dropped entry names the sentence and the reason.
    """
    tests = [_words(t) for t in test_texts]
    whole = {" ".join(w) for w in tests}
    grams = set().union(*(_ngrams(w, ngram) for w in tests)) if tests else set()
    kept, dropped = [], []
    for s in sentences:
        w = _words(s)
        if " ".join(w) in whole:
            dropped.append({"sentence": s, "reason": "is a test transcript"})
        elif grams and (shared := _ngrams(w, ngram) & grams):
            why = f"shares {ngram} words with a test transcript: {' '.join(min(shared))!r}"
            dropped.append({"sentence": s, "reason": why})
        else:
            kept.append(s)
    return kept, dropped


FLITE_PREFIX = "flite:"
FLITE_WPM = 175  # flite's own rate at duration_stretch 1 (about; its voices differ a little)


def _engine(voice: str) -> str:
    return "flite" if voice.startswith(FLITE_PREFIX) else "espeak"


def espeak_version(espeak: str = "espeak-ng") -> str:
    exe = shutil.which(espeak)
    if exe is None:
        raise TrainingSpeechError(
            f"{espeak!r} is not installed: synthesized training speech needs espeak-ng "
            "(Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng), "
            "or set training_speech.<name>.espeak to its path"
        )
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    return out.split("Data at:")[0].strip()


def flite_version(flite: str, voices: list[str]) -> str:
    """flite's version; refuses a missing program or a voice it does not have, naming both."""
    exe = shutil.which(flite)
    if exe is None:
        raise TrainingSpeechError(
            f"{flite!r} is not installed: the flite voices of training_speech.<name>.voices need it "
            "(Debian/Ubuntu: apt-get install flite; macOS: brew install flite), or set training_speech.<name>.flite"
        )
    have = subprocess.run([exe, "-lv"], capture_output=True, text=True, timeout=30).stdout.split(":", 1)[-1].split()
    missing = sorted(v for v in voices if v[len(FLITE_PREFIX) :] not in have)
    if missing:
        raise TrainingSpeechError(f"training_speech.<name>.voices: {missing} are not among flite's voices {have}")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    words = out.split()  # "... version: flite-2.2-current Jul 2017 (http://cmuflite.org)"
    return words[words.index("version:") + 1] if "version:" in words[:-1] else out.strip()[:80]


def synthesize(
    text: str, voice: str, rate_wpm: int, pitch: int | None, espeak: str = "espeak-ng", flite: str = "flite"
) -> np.ndarray:
    """``text`` spoken by espeak-ng (``voice`` an espeak-ng voice, ``pitch`` 0-99) or by flite (``voice``
    ``flite:<name>``; the rate through its duration stretch, ``pitch`` unused), as 16 kHz mono float64."""
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "s.wav"
        if _engine(voice) == "flite":
            stretch = f"duration_stretch={FLITE_WPM / rate_wpm:.4f}"
            cmd = [flite, "-voice", voice[len(FLITE_PREFIX) :], "--setf", stretch, "-t", text, "-o", str(wav)]
        else:
            cmd = [espeak, "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "-w", str(wav), "--", text]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0 or not wav.exists():
            raise TrainingSpeechError(f"{cmd[0]} failed for voice {voice!r}: {p.stderr.strip()[:300]}")
        data, sr = read_audio(wav)
    audio, _ = to_mono_16k(data, sr)
    peak = float(np.max(np.abs(audio))) or 1.0
    return audio * (0.5 / peak)  # a read-speech level, well below clipping once noise is added


def _utterance_texts(sentences: list[str], n: int, max_words: int, rng: np.random.Generator) -> list[str]:
    """``n`` texts of one or more consecutive sentences (a shuffled pass, repeated as needed), each at most
    ``max_words`` words (a longer sentence is used alone)."""
    out: list[str] = []
    order: list[int] = []
    while len(out) < n:
        if not order:
            order = list(rng.permutation(len(sentences)))
        words, parts = 0, []
        while order:
            s = sentences[order[0]]
            k = len(s.split())
            if parts and words + k > max_words:
                break
            parts.append(s)
            words += k
            order.pop(0)
            if words >= max_words // 2 and rng.random() < 0.5:
                break
        out.append(" ".join(parts))
    return out


def build_training_speech(settings: SpeechSettings, test_manifest, out_dir, report_path) -> pd.DataFrame:
    """Write the training utterances (FLAC) under ``out_dir/audio`` and their table ``out_dir/manifest.csv``.

    ``test_manifest`` is the test set's manifest (its transcripts and ids are kept out). The report names
    the text, its sha256, the sentences dropped for overlapping the test set, espeak-ng's version and
    the hours of speech.
    """
    test = pd.read_csv(test_manifest, dtype={"utt_id": str}, keep_default_na=False)
    sentences = read_sentences(settings.text)
    kept, dropped = drop_test_text(sentences, list(test["reference"]), settings.ngram)
    if not kept:
        raise TrainingSpeechError(f"every sentence of {settings.text} overlaps the test transcripts")
    flite_voices = [v for v in settings.voices if _engine(v) == "flite"]
    versions = {}
    if len(flite_voices) < len(settings.voices):
        versions["espeak"] = espeak_version(settings.espeak)
    if flite_voices:
        versions["flite"] = flite_version(settings.flite, flite_voices)
    conditions = expand_conditions(settings.noise)
    rng = np.random.default_rng(settings.seed)
    texts = _utterance_texts(kept, settings.utterances, settings.max_words, rng)
    rows = []
    out_dir = Path(out_dir)
    with atomic_dir(out_dir / "audio") as tmp_audio:
        for i, text in enumerate(texts):
            utt_id = f"synth-{settings.seed}-{i:06d}"
            r = np.random.default_rng([settings.seed, i])
            voice = settings.voices[int(r.integers(len(settings.voices)))]
            rate = int(r.integers(settings.rates_wpm[0], settings.rates_wpm[1] + 1))
            pitch = int(r.integers(settings.pitches[0], settings.pitches[1] + 1))
            cond = conditions[int(r.integers(len(conditions)))]
            if _engine(voice) == "flite":
                pitch = None  # flite's statistical voices keep their own pitch
            clean = synthesize(text, voice, rate, pitch, settings.espeak, settings.flite)
            if len(clean) / 16000 > MAX_SECONDS:
                raise TrainingSpeechError(
                    f"utterance {utt_id} is {len(clean) / 16000:.1f} s at {rate} wpm (over {MAX_SECONDS} s): "
                    f"lower training_speech.<name>.max_words ({settings.max_words})"
                )
            audio, stats = apply_condition(clean, cond, utterance_seed(settings.seed, cond.name, utt_id), "flac")
            write_audio(tmp_audio / f"{utt_id}.flac", audio, 16000, "flac")
            rows.append(
                {
                    "utt_id": utt_id,
                    "audio_path": str(out_dir / "audio" / f"{utt_id}.flac"),
                    "reference": text,
                    "seconds": len(audio) / 16000,
                    "voice": voice,
                    "rate_wpm": rate,
                    "pitch": pitch,
                    "noise_condition": cond.name,
                    "measured_snr_db": stats["measured_snr_db"],
                }
            )
    man = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    shared_ids = sorted(set(man["utt_id"]) & set(test["utt_id"]))
    if shared_ids:  # cannot happen with synth- ids; checked all the same
        raise TrainingSpeechError(f"training utterance ids {shared_ids[:3]} are test utterance ids")
    write_csv(out_dir / "manifest.csv", man)
    write_json(
        report_path,
        {
            "text": str(settings.text),
            "text_sha256": hashlib.sha256(text_path(settings.text).read_bytes()).hexdigest(),
            "sentences": len(sentences),
            "sentences_dropped_as_test_text": len(dropped),
            "dropped": dropped[:50],
            "utterances": len(man),
            "hours": float(man["seconds"].sum() / 3600),
            "espeak_version": versions.get("espeak"),
            "flite_version": versions.get("flite"),
            "settings": {**settings.__dict__, "noise": settings.noise},
        },
    )
    return man
