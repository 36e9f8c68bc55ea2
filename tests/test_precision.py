"""The precision vocabulary mapped per engine and device, and unsupported combinations."""

import pytest

from edgeasr.precision import plan, resolve_device


@pytest.mark.parametrize(
    "engine, precision, device, compute",
    [
        ("faster-whisper", "fp32", "cpu", "float32"),
        ("faster-whisper", "int8", "cpu", "int8_float32"),
        ("faster-whisper", "int8", "cuda", "int8_float16"),
        ("faster-whisper", "fp16", "jetson", "float16"),
        ("transformers", "fp32", "cpu", "float32"),
        ("transformers", "bf16", "cpu", "bfloat16"),
        ("transformers", "int8", "cpu", "torch-dynamic-qint8"),
        ("transformers", "int8", "cuda", "torchao-int8-weight-only"),
        ("transformers", "fp16", "cuda", "float16"),
    ],
)
def test_supported_mapping(engine, precision, device, compute, monkeypatch):
    monkeypatch.setattr("edgeasr.precision._gpu_compute_capability", lambda: (8, 7))
    p = plan(engine, precision, device)
    assert p.supported and p.compute_type == compute


@pytest.mark.parametrize(
    "engine, precision, device, reason",
    [
        ("faster-whisper", "fp16", "cpu", "CTranslate2 float16 needs a CUDA GPU"),
        ("faster-whisper", "bf16", "cpu", "CTranslate2 bfloat16 needs a CUDA GPU"),
        ("transformers", "fp16", "cpu", "float16 on a CPU"),
        ("faster-whisper", "int4", "cpu", "unknown precision"),
    ],
)
def test_unsupported_with_reason(engine, precision, device, reason):
    p = plan(engine, precision, device)
    assert not p.supported and reason in p.reason


def test_old_gpu_has_no_bf16(monkeypatch):
    monkeypatch.setattr("edgeasr.precision._gpu_compute_capability", lambda: (7, 5))
    assert "compute capability >= 8.0" in plan("faster-whisper", "bf16", "cuda").reason
    assert not plan("transformers", "bf16", "cuda").supported


def test_ctc_models_do_not_run_in_faster_whisper():
    p = plan("faster-whisper", "fp32", "cpu", family="ctc")
    assert not p.supported and "Whisper models only" in p.reason
    assert plan("transformers", "fp32", "cpu", family="ctc").supported


def test_quantizer_precisions_are_transformers_only():
    q = {"gq4": {"method": "gq", "bits": 4}}
    assert not plan("faster-whisper", "gq4", "cpu", quantizers=q).supported
    p = plan("transformers", "gq4", "cpu", quantizers=q)
    assert p.supported and p.method == "gq" and p.weight_bits == 4


def test_resolve_device_here_is_cpu():
    """A machine without an NVIDIA device resolves auto to cpu (without importing torch or CTranslate2);
    explicit values pass through; bad ones fail."""
    from edgeasr.precision import _cuda_available, _no_nvidia_device

    if _no_nvidia_device():
        _cuda_available.cache_clear()
        assert resolve_device("auto") == "cpu"
    else:  # a GPU or Jetson machine
        assert resolve_device("auto") in ("cuda", "jetson")
    assert resolve_device("cuda") == "cuda" and resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="allowed: auto, cpu, cuda, jetson"):
        resolve_device("tpu")


def test_no_nvidia_device_is_read_from_device_nodes(tmp_path):
    from edgeasr.precision import _no_nvidia_device

    dev = tmp_path / "dev"
    dev.mkdir()
    from edgeasr.precision import is_jetson

    assert _no_nvidia_device(dev, tmp_path / "no-driver") is (not is_jetson())
    (dev / "nvidia0").write_text("")
    assert _no_nvidia_device(dev, tmp_path / "no-driver") is False
