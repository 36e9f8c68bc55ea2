"""Tensor-level quantizers sharing one packed storage format.

A quantized weight of shape ``[R, ...]`` (R output channels, C = numel / R values per channel)
is stored as

* ``codes``     uint8 ``[ceil(R*C*bits/8)]``: the b-bit centroid indices, row-major, bit-packed
  by :func:`edgeasr.gq.packing.pack_bits`;
* ``centroids`` float32 ``[G, 2**bits]``: the centroid table in *companded* space, one row per
  centroid group (G = 1: one table per tensor; G = R: one per output channel);
* ``scales``    float32 ``[R]`` (per channel), ``[1]`` (per tensor) or ``[R, ceil(C / g)]`` (group-wise:
  one scale per ``g`` consecutive weights of a row, ``group_size = g``; the last group of a row may be
  shorter): the max-magnitude scale;
* ``mu``: the companding parameter (0 = none, used by the uniform quantizer).

Decompression: ``w[r, j] = scales[r, j // g] * F^-1(centroids[g(r), codes[r, j]]; mu)`` (``scales[r]`` without
groups).

Two methods produce it:

* ``"gq"`` (General Quantizer): w/scale is mu-law companded, centroids are fitted in companded
  space by annealed soft-to-hard assignment (:func:`edgeasr.gq.soft.fit_centroids`) and every
  weight is then hard-assigned to its nearest centroid in companded space.
* ``"uniform"``: the ablation.  Symmetric round-to-nearest on the max-magnitude grid, no
  companding (mu = 0), nothing learned.  For b >= 2 the levels are q / (2**(b-1) - 1) with
  q in [-(2**(b-1) - 1), 2**(b-1) - 1] (the usual signed-integer grid with an exact zero; code 0,
  value -2**(b-1)/(2**(b-1)-1), is in the table but never produced, exactly like int8
  symmetric never uses -128); for b = 1 the levels are {-1, +1} (sign times max magnitude).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import torch

from .companding import compand, expand
from .packing import pack_bits, unpack_bits
from .soft import default_bins, fit_centroids, hard_assign, histogram_summary, torch_threads

__all__ = ["PackedLayer", "quantize_tensor", "uniform_grid", "decode"]

CENTROID_DTYPE = torch.float32
SCALE_DTYPE = torch.float32


@dataclass
class PackedLayer:
    """One quantized weight tensor in the packed format (see module docstring)."""

    codes: torch.Tensor
    centroids: torch.Tensor
    scales: torch.Tensor
    bits: int
    shape: tuple
    mu: float
    method: str
    kind: str = "linear"
    tied: list = field(default_factory=list)  # other parameter names sharing this weight
    fit: dict = field(default_factory=dict)  # data-free fit statistics (JSON-able)
    group_size: int = 0  # weights per scale along a row (0: one scale per row or per tensor)

    @property
    def numel(self) -> int:
        return int(math.prod(self.shape))

    @property
    def rows(self) -> int:
        return int(self.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the packed payload (codes + centroid table + scales)."""
        return int(self.codes.nbytes + self.centroids.nbytes + self.scales.nbytes)

    def indices(self) -> torch.Tensor:
        """The centroid indices, int64 ``[R, C]``."""
        return unpack_bits(self.codes, self.bits, self.numel).long().view(self.rows, -1)

    def codebook(self) -> torch.Tensor:
        """Centroids decompressed through F^-1 (normalised weight space), float32 ``[G, K]``."""
        return expand(self.centroids.to(torch.float32), self.mu)

    def dequantize(self, dtype=torch.float32, device=None) -> torch.Tensor:
        return decode(
            self.codes,
            self.codebook(),
            self.scales,
            self.bits,
            self.shape,
            dtype=dtype,
            device=device,
            group_size=self.group_size,
        )

    def meta(self) -> dict:
        return {
            "bits": int(self.bits),
            "shape": [int(s) for s in self.shape],
            "mu": float(self.mu),
            "method": self.method,
            "kind": self.kind,
            "centroid_groups": int(self.centroids.shape[0]),
            "per_channel": bool(self.scales.numel() > 1 or self.rows == 1),
            "group_size": int(self.group_size),
            "tied": list(self.tied),
            "fit": dict(self.fit),
        }


def decode(codes, codebook, scales, bits, shape, dtype=torch.float32, device=None, group_size=0) -> torch.Tensor:
    """Packed codes + decompressed codebook ``[G, K]`` + scales -> float weight of ``shape``."""
    if device is not None:
        codes, codebook, scales = codes.to(device), codebook.to(device), scales.to(device)
    n = int(math.prod(shape))
    R = int(shape[0])
    idx = unpack_bits(codes, bits, n).long().view(R, -1)
    if codebook.shape[0] == 1:
        vals = codebook[0][idx]
    else:
        vals = torch.gather(codebook, 1, idx)
    w = apply_scales(vals, scales.to(vals.dtype), group_size)
    return w.view(tuple(shape)).to(dtype)


def apply_scales(vals: torch.Tensor, scales: torch.Tensor, group_size: int = 0) -> torch.Tensor:
    """Normalised weights ``[R, C]`` times their stored scales. Group-wise scales broadcast over a ``[R, C / g,
    g]`` view where g divides C (no scale matrix of the weight's size is made at every rebuild)."""
    R, C = vals.shape
    if group_size and C % int(group_size) == 0:
        return (vals.view(R, -1, int(group_size)) * scales.unsqueeze(2)).view(R, C)
    return vals * scale_matrix(scales, C, group_size)


def scale_matrix(scales: torch.Tensor, cols: int, group_size: int = 0) -> torch.Tensor:
    """The stored scales as a tensor that broadcasts over a ``[R, cols]`` weight: ``[R, cols]`` for
    group-wise scales (each repeated over its group), ``[R, 1]`` per channel, ``[1, 1]`` per tensor."""
    if group_size:
        return scales.repeat_interleave(int(group_size), dim=1)[:, :cols]
    return scales.reshape(-1, 1)


def group_count(cols: int, group_size: int) -> int:
    return -(-int(cols) // int(group_size))


def uniform_grid(bits: int) -> torch.Tensor:
    """Levels of the symmetric uniform quantizer in normalised weight space, ``[1, 2**bits]``."""
    bits = int(bits)
    if bits == 1:
        return torch.tensor([[-1.0, 1.0]], dtype=CENTROID_DTYPE)
    half = 1 << (bits - 1)
    qmax = half - 1
    return ((torch.arange(1 << bits, dtype=torch.float64) - half) / qmax).to(CENTROID_DTYPE).unsqueeze(0)


def _as_rows(w: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(w).detach()
    if w.dim() == 0:
        w = w.reshape(1, 1)
    elif w.dim() == 1:
        w = w.reshape(1, -1)
    return w.reshape(w.shape[0], -1).to("cpu", torch.float32)  # data-free fit runs on CPU


def max_scales(w2: torch.Tensor, per_channel: bool = True, group_size: int = 0) -> torch.Tensor:
    """The max-magnitude scales of a ``[R, C]`` weight as they are stored: ``[R, ceil(C / g)]`` with
    ``group_size`` g (one per g consecutive weights of a row), else ``[R]`` (per channel) or ``[1]``."""
    w2 = w2.detach().to(torch.float32)
    if group_size:
        R, C = w2.shape
        G = group_count(C, group_size)
        pad = G * int(group_size) - C
        a = torch.nn.functional.pad(w2.abs(), (0, pad)) if pad else w2.abs()
        s = a.view(R, G, int(group_size)).amax(dim=2)
    elif per_channel:
        s = w2.abs().amax(dim=1)
    else:
        s = w2.abs().amax().reshape(1)
    if not bool(torch.isfinite(s).all()):  # amax propagates NaN/inf
        raise ValueError("weight has non-finite values")
    return s.to(SCALE_DTYPE)


def normalise(w2: torch.Tensor, scales: torch.Tensor, group_size: int = 0):
    """-> (``w2`` over its scales, clamped to [-1, 1], ``[R, C]``; the scale of every weight, broadcastable
    to ``[R, C]``). A zero scale (an all-zero row or group) divides by 1."""
    safe = torch.where(scales > 0, scales, torch.ones_like(scales)).to(torch.float32)
    per = scale_matrix(safe, w2.shape[1], group_size)
    return (w2.to(torch.float32) / per).clamp(-1.0, 1.0), per


def _normalise(w2: torch.Tensor, per_channel: bool, group_size: int = 0):
    """-> (x in [-1, 1] ``[R, C]``, stored scales, the scale of every weight ``[R, C]``)."""
    s = max_scales(w2, per_channel, group_size)
    x, per = normalise(w2, s, group_size)
    return x, s, per.expand(w2.shape[0], w2.shape[1])


def uniform_indices(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes of normalised weights ``x`` in [-1, 1] on the symmetric grid (index into ``uniform_grid(bits)``)."""
    if bits == 1:
        return (x >= 0).long()
    half = 1 << (bits - 1)
    qmax = half - 1
    return torch.round(x * qmax).clamp(-qmax, qmax).long() + half


def _uniform_layer(w2, bits, per_channel, group_size=0):
    x, s, _ = _normalise(w2, per_channel, group_size)
    return uniform_indices(x, bits), uniform_grid(bits), s


def _name_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


def _fit_in_chunks(points, weights, per: int, bits: int, mu: float, fit_kwargs: dict):
    """Fit one centroid table per row of ``points``, ``per`` rows per call (bounds the memory).

    Returns (centroids, kept_init) with one row / flag per input row."""
    cents, kept = [], []
    for i in range(0, points.shape[0], per):
        c, info = fit_centroids(
            points[i : i + per],
            bits,
            weights=weights[i : i + per],
            mu=mu,
            return_info=True,
            **{**fit_kwargs, "bins": 0},
        )
        cents.append(c)
        kept.append(info.kept_mask if info.kept_mask is not None else torch.zeros(c.shape[0], dtype=torch.bool))
    return torch.cat(cents), torch.cat(kept)


def _gq_layers(
    ws: list,
    names: list,
    bits: int,
    *,
    mu: float,
    per_channel: bool,
    centroid_group: str,
    fit_kwargs: dict,
    seed: int,
    max_points_per_channel: int,
    group_size: int = 0,
    budget: int = 1 << 24,
):
    """Fit and hard-assign a list of 2-D float32 weights that share one bit width.

    Per-tensor centroid tables: each layer is summarised by a histogram of its companded
    values weighted by scale**2 (so the objective is the weight-space squared error), all
    layers are fitted together (Adam is element-wise, so this equals separate fits).
    Per-channel tables: every row is a group; rows longer than ``max_points_per_channel``
    are subsampled (seeded by ``seed`` and the layer name) for the fit only.
    Returns a list of (idx ``[R, C]``, centroids ``[G, K]``, scales, fit-stats dict)."""
    K = 1 << bits
    space = fit_kwargs.get("space", "weight")
    window = fit_kwargs.get("window", 8)
    preps = []
    for w2 in ws:
        x, s, per = _normalise(w2, per_channel, group_size)
        preps.append((compand(x, mu), s, per))
    if centroid_group == "tensor":
        nb = fit_kwargs.get("bins") or default_bins(bits)
        pts, mass = [], []
        for y, s, per in preps:
            wt = per * per if space == "weight" else None
            p, m = histogram_summary(y.reshape(-1), None if wt is None else wt.reshape(-1), nb)
            pts.append(p)
            mass.append(m)
        P, M = torch.stack(pts), torch.stack(mass)
        per = max(1, budget // (nb * min(K, window or K)))
        C, kept = _fit_in_chunks(P, M, per, bits, mu, fit_kwargs)
        out = []
        for (y, s, _), c, k in zip(preps, C, kept):
            out.append(
                (
                    hard_assign(y.reshape(-1), c).view(y.shape),
                    c.unsqueeze(0).clone(),
                    s,
                    {"kept_init_fraction": float(k)},
                )
            )
        return out
    if centroid_group != "channel":
        raise ValueError("centroid_group must be 'tensor' or 'channel'")
    m = max(min(y.shape[1], max_points_per_channel) for y, _, _ in preps)
    Ys, Ws = [], []
    for (y, s, row), name in zip(preps, names):
        R, Cn = y.shape
        if Cn > max_points_per_channel:
            g = torch.Generator().manual_seed(_name_seed(seed, name))
            cols = torch.argsort(torch.rand(R, Cn, generator=g), dim=1)[:, :max_points_per_channel]
            ys = torch.gather(y, 1, cols)
        else:
            ys = y
        wt = torch.ones_like(ys)
        if ys.shape[1] < m:  # pad with zero-weight points
            pad = m - ys.shape[1]
            ys = torch.cat([ys, ys.new_zeros(R, pad)], 1)
            wt = torch.cat([wt, wt.new_zeros(R, pad)], 1)
        Ys.append(ys)
        Ws.append(wt)
    Y, Wt = torch.cat(Ys), torch.cat(Ws)
    per = max(1, budget // (m * min(K, window or K)))
    C, kept = _fit_in_chunks(Y, Wt, per, bits, mu, fit_kwargs)
    out, r0 = [], 0
    for y, s, _ in preps:
        R = y.shape[0]
        c = C[r0 : r0 + R].contiguous()
        k = float(kept[r0 : r0 + R].float().mean())
        r0 += R
        out.append((hard_assign(y, c), c, s, {"kept_init_fraction": k}))
    return out


def make_layer(idx, centroids, scales, bits, shape, mu, method, kind="linear", group_size=0) -> PackedLayer:
    return PackedLayer(
        codes=pack_bits(idx.reshape(-1).cpu(), bits),
        centroids=centroids.detach().to("cpu", CENTROID_DTYPE).contiguous(),
        scales=scales.detach().to("cpu", SCALE_DTYPE).contiguous(),
        bits=int(bits),
        shape=tuple(int(d) for d in shape),
        mu=float(mu),
        method=method,
        kind=kind,
        group_size=int(group_size or 0),
    )


def quantize_tensor(
    w,
    bits: int,
    method: str = "gq",
    *,
    mu: float = 255.0,
    per_channel: bool = True,
    centroid_group: str = "tensor",
    steps: int = 100,
    seed: int = 0,
    name: str = "",
    max_points_per_channel: int = 256,
    group_size: int = 0,
    num_threads: int | None = 1,
    **fit_kwargs,
) -> PackedLayer:
    """Quantize one weight tensor (dim 0 = output channels) to ``bits`` (1..8).

    ``group_size`` > 0: one scale per that many consecutive weights of a row instead of one per row.
    ``fit_kwargs`` go to :func:`edgeasr.gq.soft.fit_centroids` (tau_start, tau_end, lr,
    space, init, window, bins, keep_best).  ``num_threads``: see QuantSpec.  Returns a :class:`PackedLayer`; call
    ``.dequantize()`` for the float weight.  Deterministic for given inputs."""
    bits = int(bits)
    if not 1 <= bits <= 8:
        raise ValueError("bits must be in 1..8")
    with torch_threads(num_threads), torch.no_grad():
        return _quantize_tensor(
            w,
            bits,
            method,
            mu=mu,
            per_channel=per_channel,
            centroid_group=centroid_group,
            steps=steps,
            seed=seed,
            name=name,
            max_points_per_channel=max_points_per_channel,
            group_size=group_size,
            **fit_kwargs,
        )


def _quantize_tensor(
    w,
    bits,
    method,
    *,
    mu,
    per_channel,
    centroid_group,
    steps,
    seed,
    name,
    max_points_per_channel,
    group_size,
    **fit_kwargs,
) -> PackedLayer:
    w = torch.as_tensor(w)
    shape = tuple(w.shape) if w.dim() >= 2 else tuple(_as_rows(w).shape)
    w2 = _as_rows(w)
    if method == "uniform":
        idx, c, s = _uniform_layer(w2, bits, per_channel, group_size)
        return make_layer(idx, c, s, bits, shape, 0.0, "uniform", group_size=group_size)
    if method != "gq":
        raise ValueError("method must be 'gq' or 'uniform'")
    ((idx, c, s, fit),) = _gq_layers(
        [w2],
        [name],
        bits,
        mu=mu,
        per_channel=per_channel,
        centroid_group=centroid_group,
        fit_kwargs={"steps": steps, **fit_kwargs},
        seed=seed,
        max_points_per_channel=max_points_per_channel,
        group_size=group_size,
    )
    layer = make_layer(idx, c, s, bits, shape, mu, "gq", group_size=group_size)
    layer.fit = fit
    return layer
