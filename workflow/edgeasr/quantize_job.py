"""Build one packed sub-8-bit checkpoint per (model, quantizer): data-free or quantization-aware."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .atomic import atomic_path, write_csv, write_json

log = logging.getLogger(__name__)


class QuantizeError(ValueError):
    pass


def spec_from_config(q: dict):
    from .gq import QuantSpec

    kw = {
        "method": q["method"],
        "bits": q["bits"],
        "mu": q.get("mu", 255.0),
        "per_channel": q.get("per_channel", True),
        "group_size": q.get("group_size", 0),
        "seed": q.get("seed", 0),
    }
    if q.get("skip") is not None:
        kw["skip"] = tuple(q["skip"])
    if q.get("steps") is not None:
        kw["steps"] = int(q["steps"])
    return QuantSpec(**kw)


def training_batches(q: dict, processor, test_manifest, batch_size: int = 4):
    """(input_features, labels) batches of the training split; refuses any utterance of the test set."""
    import pandas as pd

    from .audio import read_audio
    from .dataset import Selection, build_manifest

    tr = q.get("training") or {}
    man, _ = build_manifest(
        tr["extracted_dir"],
        Selection(tr.get("speakers", "all"), tr.get("chapters", "all"), tr.get("max_utterances")),
        on_error="skip",
    )
    test_ids = set(pd.read_csv(test_manifest, dtype={"utt_id": str})["utt_id"])
    shared = sorted(set(man["utt_id"]) & test_ids)
    if shared:
        raise QuantizeError(
            f"the training split {tr['extracted_dir']} holds {len(shared)} test utterances "
            f"(e.g. {shared[:3]}); choose speakers/chapters that are not tested"
        )
    batches = []
    for i in range(0, len(man), batch_size):
        rows = man.iloc[i : i + batch_size]
        audio = [read_audio(p)[0] for p in rows["audio_path"]]
        feats = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
        lab = processor.tokenizer([t.lower() for t in rows["reference"]], return_tensors="pt", padding=True)
        labels = lab.input_ids.masked_fill(lab.attention_mask == 0, -100)
        batches.append((feats, labels))
    return batches


def training_recipe(tr: dict) -> str:
    """One line naming how a qat checkpoint was trained (``quantizers.<name>.training``; a column of the tables)."""
    data = f"speech {tr['speech']}" if tr.get("speech") else f"labelled {tr.get('extracted_dir')}"
    steps = f"{tr['steps']} steps" if tr.get("steps") else f"{tr.get('epochs', 1)} epochs"
    out = f"{tr.get('loss', 'ce')}, {data}, {steps} of {tr.get('batch_size', 4)}, lr {tr.get('lr', 1e-4):g}"
    if tr.get("centroid_lr") is not None:
        out += f", centroid lr {tr['centroid_lr']:g}"
    if tr.get("loss") == "kd":
        out += f", enc weight {tr.get('enc_weight', 1.0):g}, T {tr.get('temperature', 1.0):g}"
    return out + f", seed {tr.get('seed', 0)}"


def resume_path(packed_path) -> Path:
    """Where a QAT job keeps its progress: beside its packed checkpoint, never one of the job's outputs (so
    Snakemake does not delete it when the job is killed)."""
    p = Path(packed_path)
    return p.with_name(p.name + ".resume")


def training_fingerprint(model_dir, q: dict, threads: int, training_manifest=None, **inputs) -> dict:
    """Everything a QAT run's result depends on: the quantizer's settings, the thread count, the model's
    files, the training speech (its manifest and every audio file it names), the other input files and the
    training code (edited code never resumes an older run's state)."""
    import pandas as pd
    import torch

    from . import distill
    from .download import file_digest
    from .gq import qat

    def digest(p):
        return file_digest(p, "sha256") if p is not None and Path(p).is_file() else None

    audio = []
    if training_manifest is not None and Path(training_manifest).is_file():
        audio = [digest(a) for a in pd.read_csv(training_manifest)["audio_path"]]
    return {
        "quantizer": json.loads(json.dumps(q, sort_keys=True, default=str)),
        "threads": int(threads),
        "torch": torch.__version__,
        "model": {str(f.relative_to(model_dir)): digest(f) for f in sorted(Path(model_dir).rglob("*")) if f.is_file()},
        "training_manifest": digest(training_manifest),
        "training_audio": audio,
        "inputs": {k: digest(v) for k, v in sorted(inputs.items())},
        "code": [digest(f) for f in (qat.__file__, distill.__file__, __file__)],
    }


def quantize_checkpoint(
    model_dir,
    packed_path,
    report_path,
    q: dict,
    *,
    family: str = "whisper",
    test_manifest=None,
    threads: int = 1,
    curve_path=None,
    training_manifest=None,
    teacher_targets=None,
    resume_every_s: float = 300.0,
) -> dict:
    """Quantize one checkpoint: data-free, or quantization-aware training (``mode: qat``).

    QAT trains on ``training_manifest`` (synthesized speech) against ``teacher_targets`` (the fp32 model's
    decoding of it: distillation), or, with ``training.extracted_dir``, on a labelled LibriSpeech split.
    The loss curve (step, temperature, loss) goes to ``curve_path``.  Training saves its progress every
    ``resume_every_s`` seconds to ``resume_path(packed_path)``; a job started again after being killed goes
    on from there when nothing it depends on changed (``training_fingerprint``), and ends with the same
    bytes.  ``fit_s`` then counts the time of every attempt's training, not the lost steps.
    """
    import torch

    from .distill import distillation_batches, distillation_loss, kd_loss, load_whisper
    from .gq import packed_size_report, qat_finetune, quantize_model, save_packed
    from .gq.qat import ResumeFile

    if family != "whisper":
        raise QuantizeError(f"quantizers are wired for the whisper family here, not {family!r}")
    spec = spec_from_config(q)
    model, processor = load_whisper(model_dir, threads)
    curve: list[dict] = []
    t0 = time.perf_counter()
    offset_s = 0.0  # training time of earlier attempts (resumed runs)
    resume = None
    mode = q.get("mode", "data_free")
    if mode == "qat":
        resume = ResumeFile(
            resume_path(packed_path),
            training_fingerprint(
                model_dir, q, threads, training_manifest, teacher_targets=teacher_targets, test_manifest=test_manifest
            ),
            every_s=resume_every_s,
            extra=lambda: {"curve": list(curve), "fit_s": offset_s + time.perf_counter() - t0},
        )
        saved = resume.load()
        if saved is not None:
            curve = [r for r in saved["extra"]["curve"] if r["step"] <= saved["step"]]
            offset_s = float(saved["extra"]["fit_s"])
            t0 = time.perf_counter()
            log.info("resuming from step %d (%.0f s of training before)", saved["step"], offset_s)
            saved = None  # the model's state in it is qat_finetune's to restore; hold no second reference
        tr = q.get("training") or {}
        seed = int(tr.get("seed", 0))
        torch.manual_seed(seed)
        if tr.get("speech"):
            batches = distillation_batches(
                training_manifest,
                teacher_targets,
                processor,
                batch_size=int(tr.get("batch_size", 4)),
                seed=seed,
                pad_id=int(model.generation_config.eos_token_id),
            )
            if tr.get("loss", "ce") == "kd":
                teacher, _ = load_whisper(model_dir, threads)  # the fp32 model itself, frozen
                loss_fn = kd_loss(teacher, float(tr.get("enc_weight", 1.0)), float(tr.get("temperature", 1.0)))
            else:
                loss_fn = distillation_loss
        else:
            batches = training_batches(q, processor, test_manifest)

            def loss_fn(m, batch):
                feats, labels = batch
                return m(input_features=feats, labels=labels).loss

        def record(step, tau, loss):
            curve.append({"step": step + 1, "tau": tau, "loss": loss, "elapsed_s": offset_s + time.perf_counter() - t0})
            if step % 10 == 0:
                log.info("qat step %d: loss %.4f (tau %.3g)", step + 1, loss, tau)

        packed = qat_finetune(
            model,
            loss_fn,
            batches,
            spec,
            epochs=int(tr.get("epochs", 1)),
            steps=tr.get("steps"),
            lr=float(tr.get("lr", 1e-4)),
            centroid_lr=tr.get("centroid_lr"),
            callback=record,
            resume=resume,
        )
    else:
        packed = quantize_model(model, spec)
    fit_s = offset_s + time.perf_counter() - t0
    with atomic_path(packed_path) as tmp:
        save_packed(packed, tmp)
    if curve_path is not None:
        import pandas as pd

        write_csv(curve_path, pd.DataFrame(curve, columns=["step", "tau", "loss", "elapsed_s"]))
    report = {
        **packed_size_report(model, packed),
        "fit_s": fit_s,
        "method": q["method"],
        "mode": mode,
        "bits": q["bits"],
        "group_size": int(q.get("group_size", 0)),
        "training": q.get("training") if mode == "qat" else None,
        "training_recipe": training_recipe(q.get("training") or {}) if mode == "qat" else None,
        "final_loss": curve[-1]["loss"] if curve else None,
        "bytes_on_disk": Path(packed_path).stat().st_size,
    }
    write_json(report_path, report)
    if resume is not None:
        resume.remove()
    return report
