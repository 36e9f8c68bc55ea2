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

TARGET_COLUMNS = ["utt_id", "teacher_text", "teacher_tokens", "n_tokens", "prompt_len", "finished"]


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


def _multilingual(model) -> bool:
    return getattr(model.generation_config, "is_multilingual", True) is not False


def decoder_prompt(model, language: str = "en") -> list[int]:
    """The tokens the decoder starts from when the workflow transcribes (the transformers engine):
    start of transcript, then language and task for a multilingual model, then no-timestamps."""
    g = model.generation_config
    ids = [int(g.decoder_start_token_id)]
    if _multilingual(model):
        ids += [int(g.lang_to_id[f"<|{language}|>"]), int(g.task_to_id["transcribe"])]
    return ids + [int(g.no_timestamps_token_id)]


def generate_kwargs(model, max_new_tokens: int, language: str = "en") -> dict:
    """Greedy decoding as the transformers engine runs it (edgeasr.engines.transformers_engine)."""
    kw = dict(num_beams=1, do_sample=False, max_new_tokens=max_new_tokens, return_timestamps=False)
    if _multilingual(model):
        kw.update(language=language, task="transcribe")
    return kw


def teacher_targets(
    model_dir,
    manifest_path,
    out_csv,
    *,
    threads: int = 1,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    language: str = "en",
) -> pd.DataFrame:
    """Greedy decoding of every training utterance by the fp32 model, as the engine decodes: its tokens are
    the targets.

    ``teacher_tokens`` is the whole decoder sequence: the prompt the engine starts from
    (:func:`decoder_prompt`, ``prompt_len`` tokens), the text tokens, end of text; teacher forcing on it
    reproduces what the teacher saw. Whatever ``generate`` returns of the prompt and the padding (it
    differs between transformers releases), only the text tokens are kept from it. ``finished`` is False
    where the teacher used its whole token budget (a repetition loop, mostly).
    """
    import torch

    model, processor = load_whisper(model_dir, threads)
    prompt = decoder_prompt(model, language)
    eos = int(model.generation_config.eos_token_id)
    man = pd.read_csv(manifest_path, dtype={"utt_id": str}, keep_default_na=False)
    rows = []
    for i in range(0, len(man), batch_size):
        part = man.iloc[i : i + batch_size]
        feats = _features(processor, part["audio_path"])
        with torch.no_grad():
            out = model.generate(feats, **generate_kwargs(model, max_new_tokens, language))
        for utt, seq in zip(part["utt_id"], out.tolist()):
            text = [t for t in seq if t < eos]  # every special token (prompt, end of text, padding) is >= eos
            finished = len(text) < max_new_tokens - len(prompt)
            target = prompt + text + [eos]
            rows.append(
                {
                    "utt_id": utt,
                    "teacher_text": processor.tokenizer.decode(text, skip_special_tokens=True).strip(),
                    "teacher_tokens": " ".join(map(str, target)),
                    "n_tokens": len(target),
                    "prompt_len": len(prompt),
                    "finished": finished,
                }
            )
        log.info("teacher: %d of %d utterances", min(i + batch_size, len(man)), len(man))
    df = pd.DataFrame(rows, columns=TARGET_COLUMNS)
    write_csv(out_csv, df)
    return df


def distillation_batches(manifest_path, targets_path, processor, *, batch_size: int, seed: int, pad_id: int):
    """Training batches ``(input_features, decoder_input_ids, labels)`` in a seeded order.

    ``labels`` is the teacher's sequence shifted by one, -100 where padded and where the next token is part
    of the prompt (the engine forces those; the first target is the first text token). Utterances the
    teacher did not finish within its token limit (repetition loops) are left out.
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
        prompt_lens = part["prompt_len"].astype(int).tolist() if "prompt_len" in part else [1] * len(seqs)
        for k, (s, n_prompt) in enumerate(zip(seqs, prompt_lens)):
            ids[k, : len(s)] = torch.tensor(s)
            labels[k, n_prompt - 1 : len(s) - 1] = torch.tensor(s[n_prompt:])
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
