"""Convert a CTranslate2 Whisper model directory into a Hugging Face transformers checkpoint.

The study measures the same Whisper weights with two engines: faster-whisper (CTranslate2) and
transformers (PyTorch). The offline weights this project can reach are CTranslate2 conversions
(``model.bin`` + ``config.json`` + ``tokenizer.json`` + ``vocabulary.txt``), so this module inverts
CTranslate2's ``WhisperLoader``: it reads ``model.bin`` directly (the binary layout written by
``ctranslate2/specs/model_spec.py``), dequantizes the weights, un-fuses the attention projections
and writes a ``WhisperForConditionalGeneration`` checkpoint that ``from_pretrained`` loads offline:

* ``model.safetensors`` + ``config.json`` (``WhisperConfig`` built from the tensor shapes and the
  ``num_heads`` attributes stored in ``model.bin``),
* ``generation_config.json`` (special-token ids from ``tokenizer.json``; ``suppress_tokens``,
  ``begin_suppress_tokens``, ``alignment_heads`` and, for multilingual models, ``lang_to_id`` /
  ``task_to_id`` from the CTranslate2 ``config.json``),
* ``tokenizer.json`` / ``tokenizer_config.json`` (the CTranslate2 ``tokenizer.json`` plus the
  timestamp tokens ``<|0.00|>`` .. ``<|30.00|>`` listed in ``vocabulary.txt``/``.json``, so
  ``len(tokenizer) == vocab_size`` as in the official checkpoints; bos/eos/unk/pad
  ``<|endoftext|>``),
* ``preprocessor_config.json`` + ``processor_config.json`` (``WhisperFeatureExtractor`` with
  ``num_mel_bins`` features),
* ``normalizer.json`` (the English spelling mapping of Whisper's English text normalizer) when it
  can be found offline, see :func:`find_english_spelling_mapping`,
* ``ct2_conversion.json`` (the summary returned by :func:`convert_ct2_whisper`).

CLI: ``python -m edgeasr.ct2_to_hf CT2_DIR OUT_DIR [--dtype float32|float16|bfloat16]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_dir
from .ct2_reader import (  # noqa: F401 (join_model_parts: re-exported)
    SUPPORTED_BINARY_VERSIONS,
    Ct2FormatError,
    Ct2ModelBin,
    join_model_parts,
    read_ct2_model_bin,
)

__all__ = [
    "Ct2FormatError",
    "Ct2ModelBin",
    "read_ct2_model_bin",
    "ct2_whisper_state_dict",
    "convert_ct2_whisper",
    "find_english_spelling_mapping",
    "join_model_parts",
    "SUPPORTED_BINARY_VERSIONS",
    "VENDORED_SPELLING_FILE",
]

#: Name of an optional vendored copy of openai-whisper's ``normalizers/english.json`` (MIT) in
#: ``edgeasr/data/``; :func:`find_english_spelling_mapping` prefers it to installed packages.
VENDORED_SPELLING_FILE = "whisper_english_spelling.json"

_SAMPLING_RATE = 16000
_HOP_LENGTH = 160
_N_FFT = 400
_CHUNK_LENGTH = 30
_TIME_PRECISION = 0.02


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def _sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Whisper's encoder positional embedding (used only when model.bin does not store it)."""
    log_inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-log_inc * np.arange(channels // 2, dtype=np.float64))
    scaled = np.arange(length, dtype=np.float64)[:, None] * inv[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float32)


def _count_layers(m: Ct2ModelBin, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"/layer_(\d+)/")
    names = list(m.variables) + list(m.aliases)
    indices = {int(g.group(1)) for g in (pattern.match(n) for n in names) if g}
    if not indices:
        return 0
    if indices != set(range(max(indices) + 1)):
        raise Ct2FormatError(f"{m.path}: {prefix} layers are not contiguous: {sorted(indices)}")
    return max(indices) + 1


class _StateDictBuilder:
    """Copies CTranslate2 variables into a transformers state dict, one layer piece at a time."""

    def __init__(self, m: Ct2ModelBin):
        self.m = m
        self.f = m.float32
        self.sd: dict[str, np.ndarray] = {}
        self.notes: list[str] = []
        self.d_model = 0

    def linear(self, hf: str, ct2: str) -> None:
        w = self.sd[f"{hf}.weight"] = self.f(f"{ct2}/weight")
        has_bias = self.m.has(f"{ct2}/bias")
        self.sd[f"{hf}.bias"] = self.f(f"{ct2}/bias") if has_bias else np.zeros(w.shape[0], dtype=np.float32)

    def layer_norm(self, hf: str, ct2: str) -> None:
        self.sd[f"{hf}.weight"] = self.f(f"{ct2}/gamma")
        self.sd[f"{hf}.bias"] = self.f(f"{ct2}/beta")

    def split(self, hf_names: list[str], ct2: str, where: str) -> None:
        """A fused projection (q/k/v or k/v) split into transformers' separate ones."""
        d = self.d_model
        w = self.f(f"{ct2}/weight")
        if w.shape != (len(hf_names) * d, d):
            raise Ct2FormatError(
                f"{self.m.path}: {ct2}/weight has shape {w.shape}, expected ({len(hf_names) * d}, {d})"
            )
        b = self.f(f"{ct2}/bias") if self.m.has(f"{ct2}/bias") else np.zeros(w.shape[0], np.float32)
        for i, hf in enumerate(hf_names):
            rows = slice(i * d, (i + 1) * d)
            self.sd[f"{where}.{hf}.weight"] = np.ascontiguousarray(w[rows])
            if hf != "k_proj":
                self.sd[f"{where}.{hf}.bias"] = np.ascontiguousarray(b[rows])
            elif np.any(b[rows] != 0):
                # Whisper's k_proj has no bias; CTranslate2 fused a zero bias in. A nonzero one
                # would not change attention anyway (q.b is constant along the softmax axis).
                self.notes.append(
                    f"{ct2}: dropped a nonzero k_proj bias (max |b| "
                    f"{float(np.abs(b[rows]).max()):.3g}); softmax is invariant to it"
                )

    def self_attention(self, c: str, h: str) -> None:  # a layer's fused q/k/v self-attention, out_proj, norm
        self.split(["q_proj", "k_proj", "v_proj"], f"{c}/self_attention/linear_0", f"{h}.self_attn")
        self.linear(f"{h}.self_attn.out_proj", f"{c}/self_attention/linear_1")
        self.layer_norm(f"{h}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")

    def cross_attention(self, c: str, h: str) -> None:  # a decoder layer's attention over the encoder output
        self.split(["q_proj"], f"{c}/attention/linear_0", f"{h}.encoder_attn")
        self.split(["k_proj", "v_proj"], f"{c}/attention/linear_1", f"{h}.encoder_attn")
        self.linear(f"{h}.encoder_attn.out_proj", f"{c}/attention/linear_2")
        self.layer_norm(f"{h}.encoder_attn_layer_norm", f"{c}/attention/layer_norm")

    def ffn(self, c: str, h: str) -> None:  # a layer's feed-forward block and its norm
        self.linear(f"{h}.fc1", f"{c}/ffn/linear_0")
        self.linear(f"{h}.fc2", f"{c}/ffn/linear_1")
        self.layer_norm(f"{h}.final_layer_norm", f"{c}/ffn/layer_norm")

    def encoder(self) -> tuple[int, int]:
        """The convolutions, positions and layers; returns ``(num_mel_bins, encoder_layers)``."""
        m, f, sd = self.m, self.f, self.sd
        conv1 = f("encoder/conv1/weight")
        if conv1.ndim != 3:
            raise Ct2FormatError(f"{m.path}: encoder/conv1/weight has shape {conv1.shape}, expected 3-D")
        self.d_model, num_mel_bins = int(conv1.shape[0]), int(conv1.shape[1])
        sd["model.encoder.conv1.weight"] = conv1
        sd["model.encoder.conv1.bias"] = f("encoder/conv1/bias")
        sd["model.encoder.conv2.weight"] = f("encoder/conv2/weight")
        sd["model.encoder.conv2.bias"] = f("encoder/conv2/bias")
        if m.has("encoder/position_encodings/encodings"):
            sd["model.encoder.embed_positions.weight"] = f("encoder/position_encodings/encodings")
        else:
            sd["model.encoder.embed_positions.weight"] = _sinusoids(1500, self.d_model)
            self.notes.append("encoder position encodings not stored: used Whisper's sinusoids(1500)")
        self.layer_norm("model.encoder.layer_norm", "encoder/layer_norm")
        n = _count_layers(m, "encoder")
        for i in range(n):
            self.self_attention(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
            self.ffn(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
        return num_mel_bins, n

    def decoder(self) -> int:
        """The embeddings, positions and layers; returns the number of layers."""
        m, f, sd = self.m, self.f, self.sd
        embed = f("decoder/embeddings/weight")
        if embed.shape[1] != self.d_model:
            raise Ct2FormatError(f"{m.path}: decoder embeddings {embed.shape} do not match d_model {self.d_model}")
        sd["model.decoder.embed_tokens.weight"] = embed
        if not m.has("decoder/position_encodings/encodings"):
            raise Ct2FormatError(
                f"{m.path}: decoder/position_encodings/encodings missing (Whisper's decoder positions are learned)"
            )
        sd["model.decoder.embed_positions.weight"] = f("decoder/position_encodings/encodings")
        self.layer_norm("model.decoder.layer_norm", "decoder/layer_norm")
        n = _count_layers(m, "decoder")
        for i in range(n):
            c, h = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
            self.self_attention(c, h)
            self.cross_attention(c, h)
            self.ffn(c, h)
        return n

    def output_projection(self) -> bool:
        """Whether ``proj_out`` is tied to the token embedding (model.bin aliases it, or it is equal)."""
        m, embed = self.m, self.sd["model.decoder.embed_tokens.weight"]
        tie = True
        if m.has("decoder/projection/weight"):
            if m.resolve("decoder/projection/weight") != m.resolve("decoder/embeddings/weight"):
                proj = self.f("decoder/projection/weight")
                if proj.shape != embed.shape or not np.array_equal(proj, embed):
                    tie = False
                    self.sd["proj_out.weight"] = proj
                    self.notes.append("decoder/projection/weight differs from the embeddings: proj_out untied")
        if m.has("decoder/projection/bias") and np.any(self.f("decoder/projection/bias") != 0):
            raise Ct2FormatError(
                f"{m.path}: decoder/projection/bias is nonzero; Whisper's proj_out has "
                "no bias and transformers cannot represent it"
            )
        if m.scalar("decoder/scale_embeddings", 0):
            self.notes.append("decoder/scale_embeddings is set in model.bin; Whisper never scales embeddings")
        activation = m.scalar("decoder/activation", 3)
        if activation != 3:  # common_spec.Activation.GELU
            raise Ct2FormatError(f"{m.path}: decoder activation id {activation}, Whisper uses GELU (3)")
        return tie

    def heads(self, prefix: str) -> int:
        value = self.m.scalar(f"{prefix}/num_heads")
        if value is None:
            self.notes.append(f"{prefix}/num_heads not stored: assumed head size 64")
            return self.d_model // 64
        heads = int(value)
        if heads <= 0 or self.d_model % heads:
            raise Ct2FormatError(
                f"{self.m.path}: {prefix}_attention_heads={heads} does not divide d_model={self.d_model}"
            )
        return heads


def ct2_whisper_state_dict(m: Ct2ModelBin) -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    """Map the CTranslate2 Whisper variables to ``WhisperForConditionalGeneration`` parameter names.

    Returns ``(state_dict, shape_config, notes)``: float32 arrays keyed by transformers names
    (``proj_out.weight`` included only when it is not tied), the architecture numbers for
    ``WhisperConfig``, and notes about anything that was not a plain copy.
    """
    if m.spec and m.spec != "WhisperSpec":
        raise Ct2FormatError(f"{m.path}: not a Whisper model (spec {m.spec!r}, expected 'WhisperSpec')")
    for required in ("encoder/conv1/weight", "encoder/conv2/weight", "decoder/embeddings/weight"):
        if not m.has(required):
            raise Ct2FormatError(f"{m.path}: not a CTranslate2 Whisper model (no {required!r})")
    b = _StateDictBuilder(m)
    num_mel_bins, encoder_layers = b.encoder()
    decoder_layers = b.decoder()
    tie = b.output_projection()
    sd, d_model = b.sd, b.d_model
    shape_config = {
        "vocab_size": int(sd["model.decoder.embed_tokens.weight"].shape[0]),
        "num_mel_bins": num_mel_bins,
        "d_model": d_model,
        "encoder_layers": encoder_layers,
        "encoder_attention_heads": b.heads("encoder"),
        "decoder_layers": decoder_layers,
        "decoder_attention_heads": b.heads("decoder"),
        "encoder_ffn_dim": int(sd["model.encoder.layers.0.fc1.weight"].shape[0]) if encoder_layers else 4 * d_model,
        "decoder_ffn_dim": int(sd["model.decoder.layers.0.fc1.weight"].shape[0]) if decoder_layers else 4 * d_model,
        "max_source_positions": int(sd["model.encoder.embed_positions.weight"].shape[0]),
        "max_target_positions": int(sd["model.decoder.embed_positions.weight"].shape[0]),
        "tie_word_embeddings": tie,
    }
    return sd, shape_config, b.notes


# --------------------------------------------------------------------------------------------
# Tokenizer / generation config
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"CTranslate2 Whisper directory lacks {path.name}: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise Ct2FormatError(f"{path}: invalid JSON: {exc}") from None


def _special_token_ids(tokenizer_json: dict, path: Path) -> dict[str, int]:
    ids = {t["content"]: int(t["id"]) for t in tokenizer_json.get("added_tokens", [])}
    vocab = tokenizer_json.get("model", {}).get("vocab", {})
    needed = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|translate|>",
        "<|transcribe|>",
        "<|startofprev|>",
        "<|notimestamps|>",
    ]
    out = {}
    for token in needed:
        if token in ids:
            out[token] = ids[token]
        elif token in vocab:
            out[token] = int(vocab[token])
        else:
            raise Ct2FormatError(f"{path}: special token {token} not found (not a Whisper tokenizer?)")
    for token in ("<|startoflm|>", "<|nocaptions|>", "<|nospeech|>"):
        if token in ids:
            out[token] = ids[token]
    return out


def _language_tokens(tokenizer_json: dict, special: dict[str, int]) -> dict[str, int]:
    """Language tokens are the added tokens strictly between <|startoftranscript|> and <|translate|>."""
    lo, hi = special["<|startoftranscript|>"], special["<|translate|>"]
    return {
        t["content"]: int(t["id"])
        for t in sorted(tokenizer_json.get("added_tokens", []), key=lambda t: t["id"])
        if lo < int(t["id"]) < hi
    }


def _vocabulary_tail(ct2_dir: Path, first_id: int, vocab_size: int) -> list[str]:
    """Tokens ``first_id .. vocab_size-1`` (timestamps) from vocabulary.txt/.json, else synthesized."""
    tokens: list[str] = []
    if (ct2_dir / "vocabulary.json").is_file():  # CTranslate2 >= 3 writes JSON
        try:
            tokens = json.loads((ct2_dir / "vocabulary.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            tokens = []
    elif (ct2_dir / "vocabulary.txt").is_file():  # older conversions (e.g. Systran's) use text
        tokens = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens = tokens[:-1]
    if len(tokens) == vocab_size:
        return [str(t) for t in tokens[first_id:]]
    return ["<|%.2f|>" % (i * _TIME_PRECISION) for i in range(vocab_size - first_id)]


def find_english_spelling_mapping(model_dir: str | os.PathLike | None = None) -> tuple[dict[str, str], str]:
    """Whisper's British->American spelling mapping (``english.json``) found offline.

    transformers does not ship this file (official checkpoints carry it as ``normalizer.json``).
    Looks, in order, at ``model_dir/normalizer.json``, a copy vendored in this package
    (``edgeasr/data/whisper_english_spelling.json``), the ``whisper_normalizer`` package (PyPI
    ``whisper-normalizer``) and the ``whisper`` package (PyPI ``openai-whisper``), without
    importing either. Returns ``(mapping, source)``; ``({}, "none")`` when nothing is found, in
    which case ``EnglishTextNormalizer`` simply skips the spelling step.
    """
    candidates: list[Path] = []
    if model_dir is not None:
        candidates.append(Path(model_dir) / "normalizer.json")
    candidates.append(Path(__file__).resolve().parent / "data" / VENDORED_SPELLING_FILE)
    for package in ("whisper_normalizer", "whisper"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                candidates.append(Path(location) / "normalizers" / "english.json")
    for candidate in candidates:
        if candidate.is_file():
            try:
                mapping = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(mapping, dict) and mapping:
                return {str(k): str(v) for k, v in mapping.items()}, str(candidate)
    return {}, "none"


def _token_settings(ct2_dir: Path, ct2_config: dict, shape_cfg: dict, notes: list[str]) -> dict[str, Any]:
    """Special tokens, languages and suppression lists, from ``tokenizer.json`` and the CT2 ``config.json``."""
    tokenizer_path = ct2_dir / "tokenizer.json"
    tokenizer_json = _read_json(tokenizer_path)
    special = _special_token_ids(tokenizer_json, tokenizer_path)
    vocab_size = shape_cfg["vocab_size"]
    eot = special["<|endoftext|>"]
    languages = _language_tokens(tokenizer_json, special)
    # 51864: English-only (.en); 51865: multilingual v1/v2; 51866: large-v3 (+<|yue|>).
    is_multilingual = vocab_size >= 51865 and len(languages) > 1
    if not (special["<|notimestamps|>"] < vocab_size and max(special.values()) < vocab_size):
        raise Ct2FormatError(f"{tokenizer_path}: special tokens beyond the model's vocab_size {vocab_size}")
    ct2_lang_ids = sorted(int(i) for i in ct2_config.get("lang_ids") or [])
    if is_multilingual and ct2_lang_ids and ct2_lang_ids != sorted(languages.values()):
        notes.append("config.json lang_ids differ from the tokenizer's language tokens; used the tokenizer's")
    alignment_heads = [[int(a), int(b)] for a, b in (ct2_config.get("alignment_heads") or [])]
    if not alignment_heads:
        n, h = shape_cfg["decoder_layers"], shape_cfg["decoder_attention_heads"]
        alignment_heads = [[layer, head] for layer in range(n // 2, n) for head in range(h)]
    return {
        "tokenizer_path": tokenizer_path,
        "special": special,
        "eot": eot,
        "sot": special["<|startoftranscript|>"],
        "no_ts": special["<|notimestamps|>"],
        "languages": languages,
        "is_multilingual": is_multilingual,
        "suppress": [int(i) for i in (ct2_config.get("suppress_ids") or [])],
        "begin_suppress": [int(i) for i in (ct2_config.get("suppress_ids_begin") or [220, eot])],
        "alignment_heads": alignment_heads,
    }


def _whisper_configs(shape_cfg: dict, tok: dict):
    """``WhisperConfig`` from the tensor shapes and ``GenerationConfig`` from the token settings."""
    from transformers import GenerationConfig, WhisperConfig

    eot, sot = tok["eot"], tok["sot"]
    config = WhisperConfig(
        vocab_size=shape_cfg["vocab_size"],
        num_mel_bins=shape_cfg["num_mel_bins"],
        d_model=shape_cfg["d_model"],
        encoder_layers=shape_cfg["encoder_layers"],
        encoder_attention_heads=shape_cfg["encoder_attention_heads"],
        decoder_layers=shape_cfg["decoder_layers"],
        decoder_attention_heads=shape_cfg["decoder_attention_heads"],
        encoder_ffn_dim=shape_cfg["encoder_ffn_dim"],
        decoder_ffn_dim=shape_cfg["decoder_ffn_dim"],
        max_source_positions=shape_cfg["max_source_positions"],
        max_target_positions=shape_cfg["max_target_positions"],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=shape_cfg["tie_word_embeddings"],
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        begin_suppress_tokens=tok["begin_suppress"],
        suppress_tokens=tok["suppress"],
        architectures=["WhisperForConditionalGeneration"],
    )
    gen_kwargs: dict[str, Any] = dict(
        alignment_heads=tok["alignment_heads"],
        begin_suppress_tokens=tok["begin_suppress"],
        suppress_tokens=tok["suppress"],
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        forced_decoder_ids=None,
        is_multilingual=tok["is_multilingual"],
        max_initial_timestamp_index=50,  # 1.0 s, as openai-whisper / faster-whisper
        max_length=shape_cfg["max_target_positions"],
        no_timestamps_token_id=tok["no_ts"],
        prev_sot_token_id=tok["special"]["<|startofprev|>"],
        return_timestamps=False,
    )
    if tok["is_multilingual"]:
        gen_kwargs["lang_to_id"] = tok["languages"]
        gen_kwargs["task_to_id"] = {
            "transcribe": tok["special"]["<|transcribe|>"],
            "translate": tok["special"]["<|translate|>"],
        }
    return config, GenerationConfig(**gen_kwargs)


def _whisper_model(config, generation_config, state: dict, shape_cfg: dict, dtype: str, torch_dtype, where):
    """The model built on the meta device with the converted tensors assigned (names and shapes strict)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(torch_dtype) for k, v in state.items()}
    expected = set(model.state_dict().keys())
    if shape_cfg["tie_word_embeddings"]:
        expected.discard("proj_out.weight")
    missing, unexpected = expected - set(tensors), set(tensors) - expected
    if missing or unexpected:
        raise Ct2FormatError(
            f"{where}: converted names do not match transformers' Whisper: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    model.load_state_dict(tensors, strict=False, assign=True)
    if shape_cfg["tie_word_embeddings"]:
        model.proj_out.weight = model.model.decoder.embed_tokens.weight
    model.config.dtype = dtype
    model.generation_config = generation_config
    return model, sum(t.numel() for t in tensors.values())


def _whisper_processor(ct2_dir: Path, tokenizer_path: Path, vocab_size: int, num_mel_bins: int, notes: list[str]):
    """CTranslate2's ``tokenizer.json`` plus the timestamp tokens of ``vocabulary.txt``, and the feature extractor."""
    from transformers import AddedToken, WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    tokenizer = WhisperTokenizer(
        tokenizer_file=str(tokenizer_path),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    if len(tokenizer) < vocab_size:
        tail = _vocabulary_tail(ct2_dir, len(tokenizer), vocab_size)
        tokenizer.add_tokens([AddedToken(t, lstrip=False, rstrip=False, normalized=False, special=False) for t in tail])
    if len(tokenizer) != vocab_size:
        notes.append(f"tokenizer has {len(tokenizer)} tokens, model vocab_size is {vocab_size}")
    feature_extractor = WhisperFeatureExtractor(
        feature_size=num_mel_bins,
        sampling_rate=_SAMPLING_RATE,
        hop_length=_HOP_LENGTH,
        chunk_length=_CHUNK_LENGTH,
        n_fft=_N_FFT,
        padding_value=0.0,
        return_attention_mask=False,
    )
    return WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer), feature_extractor


def convert_ct2_whisper(
    ct2_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    dtype: str = "float32",
    overwrite: bool = False,
    spelling_normalizer: bool = True,
) -> dict:
    """Convert the CTranslate2 Whisper model in ``ct2_dir`` into a transformers checkpoint.

    ``dtype`` is the dtype of the saved weights (``float32``, ``float16`` or ``bfloat16``); the
    weights are widened to float32 first (CTranslate2 float16 weights convert exactly). The output
    is written to a temporary sibling directory and renamed into ``out_dir``; an existing
    ``out_dir`` is replaced only with ``overwrite=True``. Returns a summary dict (also written to
    ``out_dir/ct2_conversion.json``).
    """
    import torch

    start = time.perf_counter()
    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype)
    if torch_dtype is None:
        raise ValueError(f"dtype must be float32, float16 or bfloat16, not {dtype!r}")
    if not ct2_dir.is_dir():
        raise FileNotFoundError(f"CTranslate2 model directory not found: {ct2_dir}")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists (pass overwrite=True to replace it)")

    model_bin = read_ct2_model_bin(ct2_dir / "model.bin")
    state, shape_cfg, notes = ct2_whisper_state_dict(model_bin)
    tok = _token_settings(ct2_dir, _read_json(ct2_dir / "config.json"), shape_cfg, notes)
    config, generation_config = _whisper_configs(shape_cfg, tok)
    model, n_params = _whisper_model(config, generation_config, state, shape_cfg, dtype, torch_dtype, model_bin.path)
    processor, feature_extractor = _whisper_processor(
        ct2_dir, tok["tokenizer_path"], shape_cfg["vocab_size"], shape_cfg["num_mel_bins"], notes
    )
    mapping, mapping_source = find_english_spelling_mapping() if spelling_normalizer else ({}, "disabled")
    summary: dict[str, Any] = {
        "ct2_dir": str(ct2_dir),
        "out_dir": str(out_dir),
        "binary_version": model_bin.binary_version,
        "spec": model_bin.spec,
        "spec_revision": model_bin.spec_revision,
        "source_weight_dtypes": model_bin.dtype_counts(),
        "dtype": dtype,
        "config": {
            **shape_cfg,
            "is_multilingual": tok["is_multilingual"],
            "decoder_start_token_id": tok["sot"],
            "eos_token_id": tok["eot"],
            "no_timestamps_token_id": tok["no_ts"],
            "num_languages": len(tok["languages"]) if tok["is_multilingual"] else 0,
        },
        "n_params": int(n_params),
        "english_spelling_mapping": mapping_source,
        "notes": notes,
    }

    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        # processor_config.json nests the feature extractor; preprocessor_config.json is the
        # classic file that WhisperFeatureExtractor.from_pretrained and faster-whisper read.
        feature_extractor.save_pretrained(tmp)
        if mapping:
            # WhisperTokenizer.from_pretrained picks normalizer.json up by name (vocab_files_names):
            # tokenizer.english_spelling_normalizer / tokenizer.normalize() work like on the Hub.
            (tmp / "normalizer.json").write_text(
                json.dumps(mapping, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        summary["seconds"] = round(time.perf_counter() - start, 3)
        (tmp / "ct2_conversion.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ct2_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = convert_ct2_whisper(args.ct2_dir, args.out_dir, dtype=args.dtype, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
