"""Build one packed sub-8-bit checkpoint per (model, quantizer): data-free or quantization-aware."""

from __future__ import annotations

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
) -> dict:
    """Quantize one checkpoint: data-free, or quantization-aware training (``mode: qat``).

    QAT trains on ``training_manifest`` (synthesized speech) against ``teacher_targets`` (the fp32 model's
    decoding of it: distillation), or, with ``training.extracted_dir``, on a labelled LibriSpeech split.
    The loss curve (step, temperature, loss) goes to ``curve_path``.
    """
    import torch

    from .distill import distillation_batches, distillation_loss, kd_loss, load_whisper
    from .gq import packed_size_report, qat_finetune, quantize_model, save_packed

    if family != "whisper":
        raise QuantizeError(f"quantizers are wired for the whisper family here, not {family!r}")
    spec = spec_from_config(q)
    model, processor = load_whisper(model_dir, threads)
    curve: list[dict] = []
    t0 = time.perf_counter()
    mode = q.get("mode", "data_free")
    if mode == "qat":
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
            curve.append({"step": step + 1, "tau": tau, "loss": loss, "elapsed_s": time.perf_counter() - t0})
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
        )
    else:
        packed = quantize_model(model, spec)
    fit_s = time.perf_counter() - t0
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
    return report
