"""Tiny, randomly initialised models of every family the study measures, for PLUMBING TESTS ONLY.

Each builder makes a real transformers architecture from its config (2 layers, hidden size 32) with a
working processor / tokenizer, and saves it as a local model folder. Their weights are random: what
they transcribe is noise and their WER means nothing. They prove that each family goes through the
workflow (fetch, conversion, the engines, precision, scoring, tables), nothing about accuracy.

No real weights of wav2vec2, HuBERT, WavLM, UniSpeech, SpeechT5 or distil-whisper can be had offline
here; the real ones are loaded by Hugging Face id where there is a network (config/study-2405.01004.yaml).
"""

from __future__ import annotations

import json
from pathlib import Path

# characters of a LibriSpeech-style CTC vocabulary ("|" separates words)
CTC_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]

CTC_FAMILIES = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2ForCTC"),
    "hubert": ("HubertConfig", "HubertForCTC"),
    "wavlm": ("WavLMConfig", "WavLMForCTC"),
    "unispeech": ("UniSpeechConfig", "UniSpeechForCTC"),
    "unispeech-sat": ("UniSpeechSatConfig", "UniSpeechSatForCTC"),
}
SMALL = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(32, 32, 32),
    conv_stride=(10, 8, 4),
    conv_kernel=(10, 8, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def build_ctc(kind: str, out: Path, seed: int = 0) -> Path:
    """wav2vec2 / HuBERT / WavLM / UniSpeech / UniSpeech-SAT with a CTC head and a character tokenizer."""
    import transformers
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    _seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.json"
    vocab.write_text(json.dumps({t: i for i, t in enumerate(CTC_VOCAB)}))
    tok = Wav2Vec2CTCTokenizer(str(vocab), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    cfg_name, model_name = CTC_FAMILIES[kind]
    cfg = getattr(transformers, cfg_name)(vocab_size=len(CTC_VOCAB), pad_token_id=0, ctc_loss_reduction="mean", **SMALL)
    model = getattr(transformers, model_name)(cfg).eval()
    model.save_pretrained(out)
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)
    return out


def build_whisper(out: Path, tokenizer_source: Path, decoder_layers: int = 2, seed: int = 0) -> Path:
    """A distil-whisper-shaped model (2 encoder layers, a 2-layer decoder, d_model 32) with a real
    Whisper tokenizer, feature extractor and generation config taken from ``tokenizer_source``
    (a transformers Whisper folder, e.g. the workflow's conversion of the offline tiny.en)."""
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    _seed(seed)
    proc = WhisperProcessor.from_pretrained(tokenizer_source)
    real = WhisperConfig.from_pretrained(tokenizer_source)
    cfg = WhisperConfig(
        vocab_size=real.vocab_size,
        num_mel_bins=real.num_mel_bins,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        decoder_layers=decoder_layers,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        bos_token_id=real.bos_token_id,
        eos_token_id=real.eos_token_id,
        pad_token_id=real.pad_token_id,
        decoder_start_token_id=real.decoder_start_token_id,
        suppress_tokens=real.suppress_tokens,
        begin_suppress_tokens=real.begin_suppress_tokens,
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    gen = GenerationConfig.from_pretrained(tokenizer_source)
    gen.alignment_heads = [[1, 0], [1, 1]]
    model.generation_config = gen
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


def build_speecht5(out: Path, seed: int = 0) -> Path:
    """SpeechT5 for speech-to-text with a character SentencePiece tokenizer trained here."""
    import sentencepiece as spm
    from transformers import (
        SpeechT5Config,
        SpeechT5FeatureExtractor,
        SpeechT5ForSpeechToText,
        SpeechT5Processor,
        SpeechT5Tokenizer,
    )

    _seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    text = out / "_spm_text.txt"
    text.write_text(
        "\n".join(
            [
                "the quick brown fox jumps over the lazy dog",
                "pack my box with five dozen liquor jugs",
                "how vexingly quick daft zebras jump",
            ]
            * 20
        )
    )
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(out / "spm_char"),
        model_type="char",
        vocab_size=32,
        bos_id=0,
        pad_id=1,
        eos_id=2,
        unk_id=3,
        minloglevel=2,
    )
    text.unlink()
    (out / "spm_char.vocab").unlink()
    tok = SpeechT5Tokenizer(str(out / "spm_char.model"))
    fe = SpeechT5FeatureExtractor(return_attention_mask=True)
    cfg = SpeechT5Config(
        vocab_size=len(tok) + 1,
        hidden_size=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        conv_dim=(32, 32, 32),
        conv_stride=(10, 8, 4),
        conv_kernel=(10, 8, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        speech_decoder_prenet_units=32,
        speaker_embedding_dim=32,
        speech_decoder_postnet_units=32,
        max_text_positions=64,
        max_speech_positions=4000,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    model = SpeechT5ForSpeechToText(cfg).eval()
    model.save_pretrained(out)
    SpeechT5Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)
    return out


def hf_cache_layout(model_dir: Path, cache_root: Path, repo_id: str, commit: str = "0" * 39 + "1") -> Path:
    """Lay ``model_dir`` out as huggingface_hub lays a downloaded repository in its cache:
    ``<cache>/models--org--name/{blobs/<sha256>, snapshots/<commit>/<file> -> ../../blobs/<sha256>,
    refs/main}``. Returns the snapshot folder."""
    import hashlib
    import os
    import shutil

    repo = cache_root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for f in sorted(model_dir.iterdir()):
        if not f.is_file():
            continue
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(f, blob)
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    return snap
