"""Distillation for quantization-aware training: the fp32 model of the same checkpoint is the teacher.

The teacher decodes each training utterance greedily (:func:`teacher_targets`); its token sequence is the
decoder input under teacher forcing. Two losses (``quantizers.<name>.training.loss``):

* ``ce``: sequence-level knowledge distillation (Kim and Rush, 2016), the cross-entropy of the teacher's
  tokens (:func:`distillation_loss`);
* ``kd``: the student matches the teacher's whole output distribution at every position (KL divergence,
  Hinton et al., 2015) and its encoder output (mean squared error relative to the teacher's energy): a
  dense signal that asks the quantized model to compute what the fp32 model computes, not only to emit
  its argmax tokens (:func:`kd_loss`). The teacher runs beside the student, frozen.

No label is needed, so any speech serves, synthesized (``edgeasr.training_speech``) or recorded.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .atomic import write_csv

log = logging.getLogger(__name__)

TARGET_COLUMNS = ["utt_id", "teacher_text", "teacher_tokens", "n_tokens", "finished"]


class DistillError(ValueError):
    pass


def load_whisper(model_dir, threads: int):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    torch.set_num_threads(threads)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, WhisperProcessor.from_pretrained(model_dir)


def _features(processor, paths):
    from .audio import read_audio

    audio = [read_audio(p)[0] for p in paths]
    return processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features


def teacher_targets(
    model_dir, manifest_path, out_csv, *, threads: int = 1, batch_size: int = 8, max_new_tokens: int = 128
) -> pd.DataFrame:
    """Greedy decoding of every training utterance by the fp32 model: its token ids are the targets.

    The token sequence is the whole decoder output (prompt tokens included), so that teacher forcing
    reproduces exactly what the teacher saw.
    """
    import torch

    model, processor = load_whisper(model_dir, threads)
    man = pd.read_csv(manifest_path, dtype={"utt_id": str}, keep_default_na=False)
    rows = []
    for i in range(0, len(man), batch_size):
        part = man.iloc[i : i + batch_size]
        with torch.no_grad():
            out = model.generate(_features(processor, part["audio_path"]), num_beams=1, max_new_tokens=max_new_tokens)
        eos = model.generation_config.eos_token_id
        for utt, seq in zip(part["utt_id"], out.tolist()):
            finished = eos in seq[1:]
            if finished:
                seq = seq[: seq.index(eos, 1) + 1]  # up to and including the first end of text
            rows.append(
                {
                    "utt_id": utt,
                    "teacher_text": processor.tokenizer.decode(seq, skip_special_tokens=True).strip(),
                    "teacher_tokens": " ".join(map(str, seq)),
                    "n_tokens": len(seq),
                    "finished": finished,  # False: the token limit cut it (a repetition loop, mostly)
                }
            )
        log.info("teacher: %d of %d utterances", min(i + batch_size, len(man)), len(man))
    df = pd.DataFrame(rows, columns=TARGET_COLUMNS)
    write_csv(out_csv, df)
    return df


def distillation_batches(manifest_path, targets_path, processor, *, batch_size: int, seed: int, pad_id: int):
    """Training batches ``(input_features, decoder_input_ids, labels)`` in a seeded order.

    ``labels`` is the teacher's sequence shifted by one, -100 where padded (ignored by the loss).
    Utterances the teacher did not finish within its token limit (repetition loops) are left out.
    """
    import torch

    man = pd.read_csv(manifest_path, dtype={"utt_id": str}, keep_default_na=False)
    tgt = pd.read_csv(targets_path, dtype={"utt_id": str}, keep_default_na=False)
    missing = sorted(set(man["utt_id"]) - set(tgt["utt_id"]))
    if missing:
        raise DistillError(f"{targets_path}: no teacher target for {len(missing)} utterances (e.g. {missing[:3]})")
    df = man.merge(tgt, on="utt_id").sort_values("utt_id").reset_index(drop=True)
    unfinished = int((~df["finished"].astype(bool)).sum()) if "finished" in df else 0
    if unfinished:  # the teacher looped until the token limit: not behaviour worth teaching
        log.info("distillation: %d of %d utterances left out (the teacher hit its token limit)", unfinished, len(df))
        df = df[df["finished"].astype(bool)].reset_index(drop=True)
    if df.empty:
        raise DistillError(f"{targets_path}: the teacher finished no utterance within its token limit")
    order = np.random.default_rng(seed).permutation(len(df))
    batches = []
    for i in range(0, len(order), batch_size):
        part = df.iloc[order[i : i + batch_size]]
        seqs = [list(map(int, s.split())) for s in part["teacher_tokens"]]
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
        labels = torch.full((len(seqs), n - 1), -100, dtype=torch.long)
        for k, s in enumerate(seqs):
            ids[k, : len(s)] = torch.tensor(s)
            labels[k, : len(s) - 1] = torch.tensor(s[1:])
        batches.append((_features(processor, part["audio_path"]), ids[:, :-1], labels))
    return batches


def distillation_loss(model, batch):
    """Cross-entropy of the teacher's tokens under teacher forcing (mean over target tokens)."""
    import torch.nn.functional as F

    feats, dec_in, labels = batch
    logits = model(input_features=feats, decoder_input_ids=dec_in).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def kd_loss(teacher, enc_weight: float = 1.0, temperature: float = 1.0):
    """``loss_fn(model, batch)`` of the ``kd`` distillation against the frozen ``teacher``.

    KL(teacher || student) of the next-token distributions at every target position (softened by
    ``temperature``, scaled by its square as usual), plus ``enc_weight`` times the encoder output's mean
    squared error divided by the mean square of the teacher's encoder output (scale-free).
    """
    import torch
    import torch.nn.functional as F

    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    T = float(temperature)

    def loss(model, batch):
        feats, dec_in, labels = batch
        keep = labels != -100
        with torch.no_grad():
            t_enc = teacher.model.encoder(feats).last_hidden_state
            t_logits = teacher(encoder_outputs=(t_enc,), decoder_input_ids=dec_in).logits[keep]
        s_enc = model.model.encoder(feats).last_hidden_state
        s_logits = model(encoder_outputs=(s_enc,), decoder_input_ids=dec_in).logits[keep]
        s_logp, t_logp = F.log_softmax(s_logits / T, dim=-1), F.log_softmax(t_logits / T, dim=-1)
        kl = F.kl_div(s_logp, t_logp, log_target=True, reduction="batchmean")
        enc = ((s_enc - t_enc) ** 2).mean() / (t_enc**2).mean()
        return kl * T * T + enc_weight * enc

    return loss
