"""Unit tests for edgeasr.gq (General Quantizer, arXiv 2210.09188, + uniform ablation)."""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

from edgeasr.gq import (
    GQLinear,
    QuantSpec,
    apply_packed,
    compand,
    expand,
    fit_centroids,
    hard_assign,
    load_packed,
    pack_bits,
    packed_size_report,
    qat_finetune,
    quantize_model,
    quantize_tensor,
    save_packed,
    soft_assign,
    soft_quantize,
    unpack_bits,
)
from edgeasr.gq.io import serialize


def _gauss(r, c, seed=0):
    return torch.randn(r, c, generator=torch.Generator().manual_seed(seed))


def _laplace(r, c, seed=0):
    u = torch.rand(r, c, generator=torch.Generator().manual_seed(seed)) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs())  # inverse-CDF Laplace(0, 1)


def _mse(a, b):
    return float(((a - b) ** 2).mean())


# ---------------------------------------------------------------- companding
@pytest.mark.parametrize("mu", [1.0, 8.0, 255.0, 1000.0])
def test_compand_expand_roundtrip_monotone_fixed_points(mu):
    x64 = torch.linspace(-1, 1, 20001, dtype=torch.float64)
    y = compand(x64, mu)
    assert torch.allclose(expand(y, mu), x64, atol=1e-12, rtol=0)
    x32 = x64.float()
    assert float((expand(compand(x32, mu), mu) - x32).abs().max()) <= 1e-6
    assert bool((torch.diff(y) > 0).all())  # strictly increasing
    assert float(compand(torch.tensor(1.0), mu)) == 1.0
    assert float(compand(torch.tensor(-1.0), mu)) == -1.0
    assert float(compand(torch.tensor(0.0), mu)) == 0.0
    assert float(expand(torch.tensor(1.0), mu)) == pytest.approx(1.0, abs=1e-6)
    # companding stretches the region near zero: F(x) > x on (0, 1)
    assert bool((y[(x64 > 0) & (x64 < 1)] > x64[(x64 > 0) & (x64 < 1)]).all())


def test_mu_zero_is_identity():
    x = torch.linspace(-1, 1, 11)
    assert torch.equal(compand(x, 0.0), x) and torch.equal(expand(x, 0.0), x)


# ---------------------------------------------------------------- soft-to-hard
def test_annealing_reaches_hard_assignments():
    w = _laplace(64, 256)
    x = w / w.abs().amax(1, keepdim=True)
    y = compand(x, 255.0).reshape(-1)
    bits = 3
    c, info = fit_centroids(y, bits, mu=255.0, steps=60, tau_start=1.0, tau_end=1e-5, keep_best=False, return_info=True)
    assert info.final_tau == pytest.approx(1e-5)
    hard = c[hard_assign(y, c)]
    # at the start temperature the assignment is genuinely soft ...
    p0 = soft_assign(y, c, info.tau_start)
    assert float((p0.max(-1).values > 0.999).float().mean()) < 0.5
    # ... at the final one it is hard for (nearly) all weights, and soft == hard
    p = soft_assign(y, c, info.final_tau)
    confident = p.max(-1).values > 0.999
    assert float(confident.float().mean()) >= 0.999
    soft = soft_quantize(y, c, info.final_tau, window=None)
    assert float((soft - hard)[confident].abs().max()) <= 1e-3 * (2.0 / 2**bits)
    assert float((soft - hard).abs().mean()) <= 1e-4
    assert torch.equal(p.argmax(-1), hard_assign(y, c))
    # the fit learned something: annealed Adam beats the plain mu-law grid here
    mulaw = fit_centroids(y, bits, mu=255.0, steps=0, init="mulaw")
    err = lambda cc: _mse(expand(cc[hard_assign(y, cc)], 255.0), expand(y, 255.0))
    assert err(c) < 0.8 * err(mulaw)


def test_windowed_soft_quantize_matches_full():
    y = compand(torch.rand(5000, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    # roughly evenly spaced centroids (what fits produce); the window truncation is exact to
    # exp(-(window/2 - 1/2)^2 / tau) relative weight then
    jitter = torch.rand(64, generator=torch.Generator().manual_seed(2)) - 0.5
    c = torch.sort(-1 + (2 * torch.arange(64) + 1 + 0.8 * jitter) / 64).values
    for tau in (1.0, 1e-2):
        assert torch.allclose(soft_quantize(y, c, tau, window=8), soft_quantize(y, c, tau, window=None), atol=1e-4)


def _traced_window_soft_quantize(y, c, tau, window):
    """The windowed soft quantizer written as plain autograd expressions (the reference)."""
    from edgeasr.gq.soft import _logit_scale

    yy = y if y.dim() == 2 else y.unsqueeze(0)
    cs = torch.sort(c if c.dim() == 2 else c.unsqueeze(0), dim=-1).values
    G, K = cs.shape
    with torch.no_grad():
        j = hard_assign(yy.detach(), cs.detach())
        start = (j - (window // 2 - 1)).clamp(0, K - window)
        idx = start.unsqueeze(-1) + torch.arange(window)
        if G != 1:
            idx = idx + (torch.arange(G) * K).view(G, 1, 1)
    cw = cs.reshape(-1)[idx]
    p = torch.softmax(-((yy.unsqueeze(-1) - cw) ** 2) * _logit_scale(K, tau), dim=-1)
    q = (p * cw).sum(-1)
    return q if y.dim() == 2 else q[0]


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("tau", [1.0, 0.05, 1e-3])
def test_window_soft_quantize_backward_matches_autograd(groups, tau):
    """The hand-written backward of the windowed soft quantizer (QAT's hot path) gives the value and both
    gradients that autograd gives through the same expressions."""
    g = torch.Generator().manual_seed(7)
    y0 = compand((torch.randn(groups, 2000, generator=g) / 3).clamp(-1, 1))
    c0 = torch.rand(groups, 16, generator=g) * 2 - 1  # unsorted on purpose
    w = torch.randn(groups, 2000, generator=g)
    out = {}
    for name, fn in (("hand", lambda y, c: soft_quantize(y, c, tau, 8)), ("traced", _traced_window_soft_quantize)):
        y, c = y0.clone().requires_grad_(True), c0.clone().requires_grad_(True)
        q = fn(y, c) if name == "hand" else fn(y, c, tau, 8)
        (w * q).sum().backward()
        out[name] = (q.detach(), y.grad, c.grad)
    (qh, gyh, gch), (qt, gyt, gct) = out["hand"], out["traced"]
    assert torch.allclose(qh, qt, atol=1e-6)
    assert torch.allclose(gyh, gyt, rtol=1e-4, atol=1e-4 * float(gyt.abs().max()) + 1e-6)
    assert torch.allclose(gch, gct, rtol=1e-4, atol=1e-4 * float(gct.abs().max()) + 1e-6)


def test_the_window_shrinks_only_where_the_left_out_mass_is_negligible():
    from edgeasr.gq.soft import _logit_scale, window_for

    c = torch.sort(torch.linspace(-1, 1, 16) + 0.01 * torch.randn(16, generator=torch.Generator().manual_seed(0)))
    cs = c.values.unsqueeze(0)
    assert window_for(cs, _logit_scale(16, 1.0), 8, 1e-6) == 8  # warm: the 5th neighbour still counts
    assert window_for(cs, _logit_scale(16, 0.01), 8, 1e-6) == 4
    y = compand(torch.rand(20000, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    for tau in (0.1, 0.03, 0.01):
        if window_for(cs, _logit_scale(16, tau), 8, 1e-6) == 4:
            full = soft_quantize(y, c.values, tau, window=None)
            assert torch.allclose(soft_quantize(y, c.values, tau, 8, tol=1e-6), full, atol=1e-5)


# ---------------------------------------------------------------- packing
@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("n", [1, 3, 7, 13, 1001, 4099])
def test_pack_unpack_roundtrip(bits, n):
    g = torch.Generator().manual_seed(bits * 10007 + n)
    idx = torch.randint(0, 2**bits, (n,), generator=g)
    packed = pack_bits(idx, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(n * bits / 8)
    assert torch.equal(unpack_bits(packed, bits, n).long(), idx)
    # pinned format: LSB-first bit stream == numpy packbits(bitorder="little")
    bitsarr = np.unpackbits(idx.numpy().astype(np.uint8)[:, None], axis=1, bitorder="little")
    ref = np.packbits(bitsarr[:, :bits].reshape(-1), bitorder="little")
    assert np.array_equal(packed.numpy(), ref)


def test_pack_rejects_out_of_range():
    with pytest.raises(ValueError):
        pack_bits(torch.tensor([0, 4]), 2)


# ---------------------------------------------------------------- layer quantizers
@pytest.mark.parametrize("method", ["gq", "uniform"])
def test_8bit_is_close(method):
    w = _gauss(64, 256)
    q = quantize_tensor(w, 8, method).dequantize()
    rel = float((q - w).norm() / w.norm())
    assert rel < 0.01, rel  # threshold: 1 % relative Frobenius error at 8 bits


@pytest.mark.parametrize("method,group", [("gq", "tensor"), ("gq", "channel"), ("uniform", "tensor")])
def test_1bit_two_values_per_channel(method, group):
    w = _gauss(32, 96)
    layer = quantize_tensor(w, 1, method, centroid_group=group)
    q = layer.dequantize()
    for r in range(q.shape[0]):
        assert torch.unique(q[r]).numel() == 2
    assert layer.codes.numel() == math.ceil(32 * 96 / 8)


def test_uniform_is_plain_round_to_nearest():
    w = _gauss(16, 40)
    s = w.abs().amax(1, keepdim=True)
    ref = torch.round(w / s * 7).clamp(-7, 7) / 7 * s
    layer = quantize_tensor(w, 4, "uniform")
    assert layer.mu == 0.0 and layer.centroids.shape == (1, 16)
    assert torch.allclose(layer.dequantize(), ref, atol=1e-6)


@pytest.mark.parametrize("dist", [_gauss, _laplace])
@pytest.mark.parametrize("bits", [3, 4])
def test_gq_beats_uniform_mse(dist, bits):
    """The ablation's premise: at 3-4 bits the learned mu-law quantizer has lower MSE."""
    w = dist(256, 256)
    gq = _mse(quantize_tensor(w, bits, "gq").dequantize(), w)
    uni = _mse(quantize_tensor(w, bits, "uniform").dequantize(), w)
    assert gq < 0.75 * uni, (gq, uni)


def test_zero_rows_stay_zero():
    w = _gauss(4, 20)
    w[2] = 0
    for m in ("gq", "uniform"):
        assert torch.equal(quantize_tensor(w, 3, m).dequantize()[2], torch.zeros(20))


# ---------------------------------------------------------------- spec
def test_spec_bits_first_match_default_and_skip():
    spec = QuantSpec(
        bits={"model.encoder.layers.0.*": 1, "model.encoder.*": 4, "*fc2": None, "model.decoder.*": 6, "*": 5}
    )
    assert spec.bits_for("model.encoder.layers.0.fc1") == 1
    assert spec.bits_for("model.encoder.layers.1.fc1") == 4
    assert spec.bits_for("model.decoder.layers.0.fc2") is None
    assert spec.bits_for("model.decoder.layers.0.fc1") == 6
    assert spec.bits_for("other") == 5
    assert QuantSpec(bits={"a*": 3}).bits_for("b") is None
    assert spec.is_skipped("proj_out") and spec.is_skipped("model.decoder.embed_tokens")
    assert not spec.is_skipped("model.decoder.layers.0.fc1")
    assert QuantSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        QuantSpec(bits=9)


# ---------------------------------------------------------------- model level
class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 24)
        self.enc = nn.Sequential(nn.Linear(24, 40), nn.GELU(), nn.Linear(40, 24))
        self.norm = nn.LayerNorm(24)
        self.dec = nn.Linear(24, 24)
        self.out = nn.Linear(24, 20, bias=False)
        self.out.weight = self.embed.weight  # tied like Whisper's proj_out

    def forward(self, ids):
        h = self.embed(ids)
        h = self.norm(h + self.enc(h))
        return self.out(self.dec(h))


def _toy(seed=0):
    torch.manual_seed(seed)
    return Toy().eval()


def test_quantize_model_save_load_apply_equals_in_memory(tmp_path):
    model = _toy()
    ids = torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(0))
    spec = QuantSpec(bits={"enc.0": 2, "*": 5})
    packed = quantize_model(model, spec)
    assert set(packed) == {"enc.0", "enc.2", "dec"}
    assert packed.meta["skipped"]["out"].startswith("tied weight shared with embed.weight")
    assert packed.bits() == {"enc.0": 2, "enc.2": 5, "dec": 5}
    with torch.no_grad():
        ref = apply_packed(copy.deepcopy(model), packed)(ids)
        assert not torch.equal(ref, model(ids))  # quantization did something
        path = tmp_path / "toy.gq.safetensors"
        size = save_packed(packed, path)
        assert size == os.path.getsize(path)
        loaded = load_packed(path)
        assert loaded.bits() == packed.bits() and loaded.meta == packed.meta
        for name in packed:
            assert torch.equal(loaded[name].codes, packed[name].codes)
        # the checkpoint is complete: a differently initialised model becomes the same one
        out_fresh = apply_packed(_toy(seed=123), loaded)(ids)
        out_swap = apply_packed(_toy(seed=7), loaded, mode="on-forward")(ids)
        out_copy = apply_packed(copy.deepcopy(model), loaded, load_float=False)(ids)
    assert torch.equal(out_fresh, ref) and torch.equal(out_copy, ref)
    assert torch.allclose(out_swap, ref, atol=1e-6)
    report = packed_size_report(model, packed)
    assert report["bytes_packed_at_rest"] == size
    assert report["params_quantized"] == 24 * 40 + 40 * 24 + 24 * 24
    assert report["mean_bits"] == pytest.approx((2 * 960 + 5 * 960 + 5 * 576) / 2496)


def test_on_forward_gqlinear_holds_only_packed_weights():
    model = _toy()
    packed = quantize_model(model, QuantSpec(bits=3))
    swapped = apply_packed(copy.deepcopy(model), packed, mode="on-forward")
    mod = swapped.enc[0]
    assert isinstance(mod, GQLinear) and mod.mode == "on-forward"
    assert "weight" not in dict(mod.named_buffers()) and "weight" not in dict(mod.named_parameters())
    assert mod.codes.numel() == math.ceil(40 * 24 * 3 / 8)
    assert torch.equal(mod.weight, packed["enc.0"].dequantize())  # computed on access
    assert isinstance(swapped.out, nn.Linear)  # tied layer untouched
    assert swapped.out.weight.data_ptr() == swapped.embed.weight.data_ptr()
    x = torch.randn(5, 24)
    dq = GQLinear(packed["enc.0"], bias=model.enc[0].bias)
    assert torch.allclose(mod(x), dq(x), atol=1e-6)
    swap_dq = apply_packed(copy.deepcopy(model), packed, swap=True)
    assert isinstance(swap_dq.enc[0], GQLinear) and swap_dq.enc[0].mode == "dequant-at-load"
    ids = torch.randint(0, 20, (2, 5), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(swap_dq(ids), swapped(ids), atol=1e-6)
    rep_mem = packed_size_report(swapped, packed)["bytes_in_memory"]
    rep_f32 = packed_size_report(model, packed)["bytes_in_memory"]
    assert rep_mem < rep_f32


def test_quantize_tied_quantizes_both_users():
    model = _toy()
    packed = quantize_model(model, QuantSpec(bits=4, skip=(), quantize_tied=True))
    assert "out" in packed and packed["out"].tied == ["embed.weight"]
    q = apply_packed(copy.deepcopy(model), packed, mode="on-forward")
    assert isinstance(q.out, nn.Linear)  # tied: always written in place
    assert torch.equal(q.embed.weight, packed["out"].dequantize())


def test_determinism_same_seed_identical_bytes():
    # per-channel centroids with subsampled rows: the one place the seed is used
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 12), nn.ReLU(), nn.Linear(12, 5))
    spec = QuantSpec(bits=3, centroid_group="channel", max_points_per_channel=64, seed=0)
    a = serialize(quantize_model(model, spec))
    torch.manual_seed(999)  # global RNG state must not matter
    b = serialize(quantize_model(model, spec))
    assert a == b
    c = serialize(quantize_model(model, QuantSpec.from_dict({**spec.to_dict(), "seed": 1})))
    assert c != a
    t1 = serialize(quantize_model(_toy(), QuantSpec(bits=4)))
    t2 = serialize(quantize_model(_toy(), QuantSpec(bits=4)))
    assert t1 == t2


def test_size_report_ratios():
    model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
    packed = quantize_model(model, QuantSpec(bits=4, include_float=False))
    r = packed_size_report(model, packed)
    n = 2 * 256 * 512
    assert r["params_quantized"] == n and r["params_float"] == 512 + 256
    assert r["bytes_quantized"] == n // 2 + 2 * 16 * 4 + (512 + 256) * 4
    assert r["ratio_vs_fp32"] == pytest.approx(4 * n / r["bytes_quantized"])
    assert r["ratio_vs_int8"] == pytest.approx((n + 4 * 768) / r["bytes_quantized"])
    assert 7.5 < r["ratio_vs_fp32"] < 8 and 1.9 < r["ratio_vs_int8"] < 2.1
    assert r["bits_per_weight_effective"] > r["mean_bits"] == 4.0
    full = packed_size_report(model, quantize_model(model, QuantSpec(bits=4)))
    half = packed_size_report(model, quantize_model(model, QuantSpec(bits=4, float_dtype="float16")))
    # float tensors (the biases) stored at 2 instead of 4 bytes; the JSON header differs by a few bytes
    assert abs(full["bytes_packed_at_rest"] - half["bytes_packed_at_rest"] - 2 * (512 + 256)) <= 32
    assert full["bytes_packed_at_rest"] > r["bytes_quantized"] + 4 * (512 + 256)  # header


# ---------------------------------------------------------------- QAT
def test_qat_finetune_toy_regression():
    """Plumbing test on a toy regression model (not evidence about ASR accuracy): QAT at
    2 bits lowers the task loss below the data-free 2-bit model, ends with hard weights (at
    most 4 levels per output channel) and returns a packed model that reproduces it."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 4))
    X = torch.randn(512, 8)
    with torch.no_grad():
        Y = teacher(X)
    batches = [(X[i : i + 64], Y[i : i + 64]) for i in range(0, 512, 64)]
    loss_fn = lambda m, b: nn.functional.mse_loss(m(b[0]), b[1])
    spec = QuantSpec(bits=2)

    def full_loss(m):
        with torch.no_grad():
            return float(nn.functional.mse_loss(m(X), Y))

    datafree = apply_packed(copy.deepcopy(teacher), quantize_model(teacher, spec))
    student = copy.deepcopy(teacher)
    taus = []
    packed = qat_finetune(
        student,
        loss_fn,
        batches,
        spec,
        epochs=25,
        lr=3e-3,
        num_threads=1,
        callback=lambda step, tau, loss: taus.append(tau),
    )
    assert taus[0] == pytest.approx(spec.tau_start) and taus[-1] == pytest.approx(spec.tau_end)
    assert not any(isinstance(m, GQLinear) for m in student.modules())
    assert all(p.requires_grad for p in student.parameters())  # flags restored
    assert full_loss(student) < 0.7 * full_loss(datafree)
    for lin in (student[0], student[2]):
        for row in lin.weight:
            assert torch.unique(row).numel() <= 4
    fresh = apply_packed(nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 4)), packed)
    with torch.no_grad():
        assert torch.equal(fresh(X), student(X))
    assert packed.meta["mode"] == "qat"


def test_manual_fit_gradient_matches_autograd():
    from edgeasr.gq.soft import soft_loss_and_grad

    g = torch.Generator().manual_seed(3)
    for K, window, tau, space, mu in [
        (16, 8, 1.0, "weight", 255.0),
        (16, None, 0.1, "weight", 255.0),
        (4, 8, 1.0, "companded", 255.0),
        (64, 8, 0.3, "weight", 0.0),
    ]:
        y = compand((torch.randn(3, 300, generator=g) / 3).clamp(-1, 1), mu)
        w = torch.rand(3, 300, generator=g)
        c = (torch.rand(3, K, generator=g) * 2 - 1).requires_grad_(True)  # unsorted on purpose
        target = expand(y, mu) if space == "weight" else y
        q = soft_quantize(y, c, tau, window)
        err = target - (expand(q, mu) if space == "weight" else q)
        loss = (w * err * err).sum()
        loss.backward()
        loss2, grad2 = soft_loss_and_grad(y, w, target, c.detach(), tau, window, mu, space)
        assert float(loss2) == pytest.approx(float(loss.detach()), rel=1e-5)
        assert torch.allclose(grad2, c.grad, atol=1e-4 * float(c.grad.abs().max()) + 1e-6)


def _random_tiny_whisper(transformers, d_model: int, ffn_dim: int):
    """A 1+1-layer Whisper with random weights (PLUMBING ONLY), seeded, with its config, 40 frames of random
    features and three decoder ids."""
    cfg = transformers.WhisperConfig(
        vocab_size=120,
        num_mel_bins=16,
        d_model=d_model,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_source_positions=20,
        max_target_positions=16,
        decoder_start_token_id=1,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=1,
    )
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(cfg).eval()
    feats = torch.randn(1, 16, 40, generator=torch.Generator().manual_seed(0))
    return cfg, model, feats, torch.tensor([[1, 5, 7]])


def test_hf_whisper_apply_and_generate():
    transformers = pytest.importorskip("transformers")
    cfg, model, feats, dec = _random_tiny_whisper(transformers, d_model=32, ffn_dim=64)
    spec = QuantSpec(bits={"model.encoder.*": 4, "model.decoder.*": 6, "*": 4})
    packed = quantize_model(model, spec)
    assert "proj_out" not in packed and packed.meta["skipped"]["proj_out"] == "skip pattern"
    assert packed["model.encoder.layers.0.fc1"].bits == 4
    assert packed["model.decoder.layers.0.encoder_attn.q_proj"].bits == 6
    assert not any(n.endswith("conv1") or n.endswith("conv2") for n in packed)  # conv optional
    assert packed.float_aliases.get("proj_out.weight") == "model.decoder.embed_tokens.weight"
    with torch.no_grad():
        a = apply_packed(copy.deepcopy(model), packed)(input_features=feats, decoder_input_ids=dec).logits
        fresh = transformers.WhisperForConditionalGeneration(cfg).eval()
        b_model = apply_packed(fresh, packed, mode="on-forward")
        b = b_model(input_features=feats, decoder_input_ids=dec).logits
        assert isinstance(b_model.model.encoder.layers[0].fc1, GQLinear)
        assert b_model.proj_out.weight.data_ptr() == b_model.model.decoder.embed_tokens.weight.data_ptr()
        assert torch.allclose(a, b, atol=1e-5)
        out = b_model.generate(feats, max_new_tokens=2)
    assert out.shape[0] == 1
    report = packed_size_report(b_model, packed)
    assert report["bytes_in_memory"] < packed_size_report(model, packed)["bytes_in_memory"]


def test_int4pack_runs_uniform_4_bit_groups_on_torchs_int4_kernel_and_refuses_the_rest():
    """decompression int4pack: a tiny random Whisper (PLUMBING ONLY), uniform 4 bits with 32-weight groups,
    its Linear layers kept in torch's int4 layout (no float weight held) and multiplied by torch's int4 CPU
    kernel; the logits match dequant-at-load to bfloat16 precision. gq, other bits and row scales are
    refused with the reason."""
    transformers = pytest.importorskip("transformers")
    from edgeasr.gq.model import int4pack_refusal

    cfg, model, feats, dec = _random_tiny_whisper(transformers, d_model=64, ffn_dim=128)
    packed = quantize_model(model, QuantSpec(method="uniform", bits=4, group_size=32))
    with torch.no_grad():
        a = apply_packed(copy.deepcopy(model), packed)(input_features=feats, decoder_input_ids=dec).logits
        m = apply_packed(transformers.WhisperForConditionalGeneration(cfg).eval(), packed, mode="int4pack")
        b = m(input_features=feats, decoder_input_ids=dec).logits
        fc1 = m.model.encoder.layers[0].fc1
        assert isinstance(fc1, GQLinear) and "weight" not in fc1._buffers and fc1.int4_weight.dtype == torch.uint8
        assert fc1.int4_weight.numel() == 128 * 64 // 2  # half a byte per weight
        assert torch.allclose(fc1.weight, packed["model.encoder.layers.0.fc1"].dequantize(), rtol=1e-2, atol=1e-3)
        assert (a - b).abs().max() <= 0.02 * a.abs().max(), (a - b).abs().max()
        assert m.generate(feats, max_new_tokens=2).shape[0] == 1
    for spec, words in (
        (QuantSpec(method="gq", bits=4, group_size=32), "gq at 4 bits"),
        (QuantSpec(method="uniform", bits=5, group_size=32), "uniform at 5 bits"),
        (QuantSpec(method="uniform", bits=4), "group_size 0"),
    ):
        p = quantize_model(model, spec, steps=5)
        assert words in int4pack_refusal(p["model.encoder.layers.0.fc1"])
        with pytest.raises(ValueError, match=f"decompression int4pack: .*{words}"):
            apply_packed(copy.deepcopy(model), p, mode="int4pack")


# ---------------------------------------------------------------- group-wise scales
def _outlier_columns(r=48, c=200, seed=0):
    """Gaussian weights whose first columns are 20x larger: one scale per row wastes most levels on them."""
    w = _gauss(r, c, seed)
    w[:, :8] *= 20.0
    return w


@pytest.mark.parametrize("method", ["gq", "uniform"])
def test_group_scales_shape_exact_max_and_lower_error(method):
    w = _outlier_columns()
    row = quantize_tensor(w, 4, method)
    grp = quantize_tensor(w, 4, method, group_size=64)  # 200 = 3 x 64 + 8: a shorter last group
    assert grp.group_size == 64 and tuple(grp.scales.shape) == (48, 4)
    blocks = [w[:, i : i + 64].abs().amax(1) for i in range(0, 200, 64)]
    assert torch.equal(grp.scales, torch.stack(blocks, 1))
    dq = grp.dequantize()
    assert dq.shape == w.shape
    # the groups without the outlier columns get their own, smaller scales: a finer grid there
    assert _mse(dq[:, 64:], w[:, 64:]) < 0.25 * _mse(row.dequantize()[:, 64:], w[:, 64:])
    assert _mse(dq, w) < _mse(row.dequantize(), w)
    if method == "uniform":  # every group's largest weight is a level of its own grid
        for g, i in enumerate(range(0, 200, 64)):
            blk, q = w[:, i : i + 64], dq[:, i : i + 64]
            j = blk.abs().argmax(1, keepdim=True)
            assert torch.allclose(q.gather(1, j), blk.gather(1, j), rtol=1e-6, atol=0)
    assert grp.meta()["group_size"] == 64


def test_group_scales_save_load_on_forward_and_size(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 96), nn.ReLU(), nn.Linear(96, 40))
    x = torch.randn(7, 256)
    for bits in (4, 3):  # 4 bits: the byte-table rebuild; 3 bits: bit-stream unpacking
        spec = QuantSpec(bits=bits, group_size=32)
        packed = quantize_model(model, spec)
        assert tuple(packed["0"].scales.shape) == (96, 8) and tuple(packed["2"].scales.shape) == (40, 3)
        path = tmp_path / f"g{bits}.gq"
        save_packed(packed, path)
        loaded = load_packed(path)
        assert loaded["2"].group_size == 32 and serialize(loaded) == serialize(packed)
        with torch.no_grad():
            ref = apply_packed(copy.deepcopy(model), packed)(x)
            fwd = apply_packed(copy.deepcopy(model), loaded, mode="on-forward")
            assert isinstance(fwd[0], GQLinear) and torch.allclose(fwd(x), ref, atol=1e-5)
            assert torch.equal(fwd[0].dequantized_weight(), packed["0"].dequantize())
        r = packed_size_report(model, packed)
        n = 256 * 96 + 96 * 40
        scale_bytes = 4 * (96 * 8 + 40 * 3)
        assert (
            r["bytes_quantized"]
            == (256 * 96 * bits + 7) // 8 + (96 * 40 * bits + 7) // 8 + 2 * 4 * (1 << bits) + scale_bytes
        )
        assert r["bytes_int8_quantized_layers"] == n + 4 * (96 + 40)  # int8 keeps one scale per row
    with pytest.raises(ValueError, match="group_size"):
        QuantSpec(group_size=-1)


@pytest.mark.parametrize("method", ["gq", "uniform"])
def test_qat_with_group_scales_keeps_them(method):
    """Plumbing test on a toy regression model (not evidence about ASR accuracy): QAT trains through
    group-wise scales and ends in a packed model with those scales that reproduces the trained model."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 4))
    X = torch.randn(256, 64)
    with torch.no_grad():
        Y = teacher(X)
    batches = [(X[i : i + 64], Y[i : i + 64]) for i in range(0, 256, 64)]
    spec = QuantSpec(method=method, bits=3, group_size=16)
    student = copy.deepcopy(teacher)
    packed = qat_finetune(student, lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]), batches, spec, epochs=3, lr=1e-3)
    assert packed["0"].group_size == 16 and tuple(packed["0"].scales.shape) == (32, 4)
    assert torch.equal(packed["0"].scales, quantize_model(teacher, spec)["0"].scales)  # fixed at the start
    fresh = apply_packed(nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 4)), packed)
    with torch.no_grad():
        assert torch.equal(fresh(X), student(X))


class _Killed(Exception):
    pass


@pytest.mark.parametrize("method,train_other", [("gq", False), ("uniform", False), ("gq", True)])
def test_qat_killed_and_resumed_ends_with_the_same_bytes(method, train_other, tmp_path):
    """Plumbing test on a toy regression model (not evidence about ASR accuracy): a run killed after a
    save and started again goes on from the save (steps 4..10 only) and ends with the same packed bytes
    and the same losses as a run that was never stopped; another fingerprint is never resumed."""
    from edgeasr.gq import save_packed
    from edgeasr.gq.qat import ResumeFile

    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    X = torch.randn(192, 16)
    with torch.no_grad():
        Y = teacher(X)
    batches = [(X[i : i + 64], Y[i : i + 64]) for i in range(0, 192, 64)]  # 3 batches, cycled over 10 steps
    spec = QuantSpec(method=method, bits=3)
    loss_fn = lambda m, b: nn.functional.mse_loss(m(b[0]), b[1])

    def run(resume=None, kill_at=None):
        torch.manual_seed(1)
        losses = []

        def cb(step, tau, loss):
            losses.append((step, loss))
            if step + 1 == kill_at:
                raise _Killed

        student = copy.deepcopy(teacher)
        packed = qat_finetune(
            student,
            loss_fn,
            batches,
            spec,
            steps=10,
            lr=3e-3,
            num_threads=1,
            callback=cb,
            resume=resume,
            train_other=train_other,
        )
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.gq"
        save_packed(packed, out)
        return out.read_bytes() + b"".join(p.detach().numpy().tobytes() for p in student.parameters()), losses

    straight, straight_losses = run()
    path = tmp_path / "run.resume"
    with pytest.raises(_Killed):  # saves after every step (every_s=0), killed in the callback of step 5
        run(ResumeFile(path, {"run": 1}, every_s=0), kill_at=5)
    assert path.exists() and torch.load(path, weights_only=False)["step"] == 4
    leftover = tmp_path / ".run.abc123.partial.resume"  # what a kill during a save leaves behind
    leftover.write_bytes(b"half a save")
    resumed, resumed_losses = run(ResumeFile(path, {"run": 1}, every_s=0))
    assert not leftover.exists()
    assert [s for s, _ in resumed_losses] == list(range(4, 10))  # only the steps after the save
    assert resumed == straight and resumed_losses == straight_losses[4:]
    assert torch.load(path, weights_only=False)["step"] == 9  # the last save; removing it is the caller's
    ResumeFile(path, {"run": 1}).remove()
    # another fingerprint: the file is set aside, the run starts afresh and still ends the same
    with pytest.raises(_Killed):
        run(ResumeFile(path, {"run": 1}, every_s=0), kill_at=3)
    fresh = ResumeFile(path, {"run": 2}, every_s=0)
    again, again_losses = run(fresh)
    assert again == straight and [s for s, _ in again_losses] == list(range(10))
    assert path.with_name("run.resume.stale").exists()
    fresh.remove()
    assert not path.exists() and not path.with_name("run.resume.stale").exists()


def test_weight_drift_counts_changed_weights_and_errors_to_float():
    """Plumbing test on random weights: the drift report of two packed models counts exactly the weights
    whose decompressed value differs, and each model's relative error to the float weights."""
    from edgeasr.gq.bench import weight_drift

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 8), nn.Linear(8, 4))
    ref = {k: v.detach().clone() for k, v in net.state_dict().items()}
    spec = QuantSpec(method="uniform", bits=4)
    before = quantize_model(net, spec)
    with torch.no_grad():
        net[0].weight[0, :5] += 0.3  # moves some of row 0's weights to other levels
    after = quantize_model(net, spec)
    d = weight_drift(ref, before, after, part=lambda name: "all")["all"]
    changed = sum(int((before[n].dequantize() != after[n].dequantize()).sum()) for n in ("0", "1"))
    assert d["weights"] == 16 * 8 + 8 * 4 and 0 < changed and d["changed_pct"] == pytest.approx(100 * changed / 160)
    w = torch.cat([ref["0.weight"].flatten(), ref["1.weight"].flatten()])
    q = torch.cat([before["0"].dequantize().flatten(), before["1"].dequantize().flatten()])
    assert d["rel_err_before_pct"] == pytest.approx(100 * float((q - w).norm() / w.norm()), rel=1e-5)
    assert d["rel_err_after_pct"] > d["rel_err_before_pct"]
    same = weight_drift(ref, before, before, part=lambda name: "all")["all"]
    assert same["changed_pct"] == 0 and same["rel_err_after_pct"] == same["rel_err_before_pct"]
