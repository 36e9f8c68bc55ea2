"""Model-level quantization: PackedModel, quantize_model, GQLinear, apply_packed, size report."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import INT4PACK_GROUPS
from .core import PackedLayer, _as_rows, _gq_layers, _uniform_layer, apply_scales, decode, make_layer
from .soft import torch_threads
from .spec import QuantSpec

__all__ = [
    "PackedModel",
    "quantize_model",
    "GQLinear",
    "apply_packed",
    "packed_size_report",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]

FORMAT_NAME = "edgeasr.gq"
FORMAT_VERSION = 1
_MODES = ("dequant-at-load", "on-forward", "int4pack")


def int4pack_refusal(layer: PackedLayer) -> str | None:
    """Why ``layer`` cannot run on torch's int4 CPU kernel (None: it can).

    The kernel (``aten._weight_int4pack_mm_for_cpu``) multiplies straight from 4-bit codes with one
    affine scale per group of 32-256 weights: (code - 8) * scale + zero. The uniform quantizer's 4-bit
    grid is exactly that (code k stands for (k - 8) * s / 7); gq's learned levels are not affine."""
    if layer.method != "uniform" or int(layer.bits) != 4:
        return f"it is {layer.method} at {layer.bits} bits; the int4 kernel takes the uniform quantizer at 4 bits"
    if int(layer.group_size) not in INT4PACK_GROUPS:
        return f"group_size {layer.group_size}: the int4 kernel takes one scale per {INT4PACK_GROUPS} weights"
    if layer.kind != "linear" or len(layer.shape) != 2 or int(layer.shape[1]) % int(layer.group_size):
        return f"shape {tuple(layer.shape)} is not a Linear weight whose rows divide into groups"
    if not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"):
        return f"torch {torch.__version__} has no int4 CPU kernel (aten._weight_int4pack_mm_for_cpu)"
    return None


class PackedModel(Mapping):
    """Dict-like: layer (module) name -> :class:`PackedLayer`; plus ``meta`` (JSON-able:
    spec, method, mu, bits per layer, skipped layers and why) and, if the spec asked for it,
    ``float_tensors`` (the model's remaining float state, de-duplicated; ``float_aliases``
    maps a duplicate state-dict name to the stored one)."""

    def __init__(self, layers: dict, meta: dict, float_tensors: dict | None = None, float_aliases: dict | None = None):
        self.layers = dict(layers)
        self.meta = dict(meta)
        self.float_tensors = dict(float_tensors or {})
        self.float_aliases = dict(float_aliases or {})
        self.fit_seconds = None  # wall time of quantize_model (not stored in the file)

    def __getitem__(self, name):
        return self.layers[name]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)

    def bits(self) -> dict:
        return {k: v.bits for k, v in self.layers.items()}

    @property
    def spec(self) -> QuantSpec:
        return QuantSpec.from_dict(self.meta["spec"])

    def __repr__(self):
        return (
            f"PackedModel({len(self.layers)} layers, method={self.meta.get('method')}, "
            f"float_tensors={len(self.float_tensors)})"
        )


def _storage_key(t: torch.Tensor):
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)


def _collect(model: nn.Module, spec: QuantSpec):
    """-> (targets [(name, module, kind, bits)], skipped {name: reason})."""
    owners: dict = {}
    for pname, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(_storage_key(p), []).append(pname)
    conv_types = (nn.Conv1d, nn.Conv2d)
    targets, skipped, seen = [], {}, set()
    for name, mod in model.named_modules():
        if isinstance(mod, GQLinear):
            raise ValueError(f"{name} is already a GQLinear; quantize the float model")
        if isinstance(mod, nn.Linear):
            kind = "linear"
        elif spec.quantize_conv and isinstance(mod, conv_types):
            kind = "conv"
        else:
            continue
        if getattr(mod, "weight", None) is None:
            continue
        if spec.is_skipped(name):
            skipped[name] = "skip pattern"
            continue
        bits = spec.bits_for(name)
        if bits is None:
            skipped[name] = "no bits (no pattern matched or bits=None)"
            continue
        key = _storage_key(mod.weight)
        others = [o for o in owners.get(key, []) if o != f"{name}.weight"]
        if key in seen:
            skipped[name] = "weight shared with an already quantized layer (quantized there)"
            continue
        if others and not spec.quantize_tied:
            skipped[name] = "tied weight shared with " + ", ".join(others)
            continue
        seen.add(key)
        targets.append((name, mod, kind, bits, others))
    return targets, skipped


def _float_state(model: nn.Module, spec: QuantSpec, qweights) -> tuple[dict, dict]:
    """The model's state-dict tensors other than the quantized weights, de-duplicated."""
    float_tensors, aliases = {}, {}
    if not spec.include_float:
        return float_tensors, aliases
    qkeys = {_storage_key(w) for w in qweights}
    canon: dict = {}
    cast = None if spec.float_dtype is None else getattr(torch, spec.float_dtype)
    for k, t in model.state_dict().items():
        key = _storage_key(t)
        if key in qkeys:
            continue
        if key in canon:
            aliases[k] = canon[key]
            continue
        canon[key] = k
        t = t.detach().to("cpu")
        if cast is not None and t.is_floating_point():
            t = t.to(cast)
        float_tensors[k] = t.clone().contiguous()
    return float_tensors, aliases


def _meta(spec: QuantSpec, layers: dict, skipped: dict, **extra) -> dict:
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "method": spec.method,
        "mu": float(spec.mu) if spec.method == "gq" else 0.0,
        "spec": spec.to_dict(),
        "bits": {n: l.bits for n, l in layers.items()},
        "skipped": skipped,
        "centroid_dtype": "float32",
        "scale_dtype": "float32",
        "index_packing": "b-bit, row-major, LSB-first bit stream in uint8",
        **extra,
    }


def quantize_model(model: nn.Module, spec: QuantSpec | None = None, **overrides) -> PackedModel:
    """Data-free quantization of ``model``'s Linear (and optionally Conv) weights.

    Does not modify ``model``; use :func:`apply_packed` for that.  ``overrides`` replace
    fields of ``spec`` (e.g. ``bits=3``).  Deterministic for given weights and spec."""
    if spec is None:
        spec = QuantSpec(**overrides)
    elif overrides:
        spec = QuantSpec.from_dict({**spec.to_dict(), **overrides})
    t0 = time.perf_counter()
    with torch_threads(spec.num_threads), torch.no_grad():
        pm = _quantize_model(model, spec)
    pm.fit_seconds = time.perf_counter() - t0  # not in meta: keeps packed bytes deterministic
    return pm


def _quantize_model(model: nn.Module, spec: QuantSpec) -> PackedModel:
    targets, skipped = _collect(model, spec)
    layers: dict = {}
    by_bits: dict = {}
    for name, mod, kind, bits, others in targets:
        by_bits.setdefault(bits, []).append((name, mod, kind, others))
    for bits in sorted(by_bits):
        group = by_bits[bits]
        ws = [_as_rows(mod.weight) for _, mod, _, _ in group]
        names = [n for n, _, _, _ in group]
        if spec.method == "uniform":
            results = [(*_uniform_layer(w2, bits, spec.per_channel, spec.group_size), {}) for w2 in ws]
            mu = 0.0
        else:
            results = _gq_layers(
                ws,
                names,
                bits,
                mu=spec.mu,
                per_channel=spec.per_channel,
                centroid_group=spec.centroid_group,
                fit_kwargs=spec.fit_kwargs(),
                seed=spec.seed,
                max_points_per_channel=spec.max_points_per_channel,
                group_size=spec.group_size,
            )
            mu = spec.mu
        for (name, mod, kind, others), (idx, c, s, fit) in zip(group, results):
            layer = make_layer(idx, c, s, bits, tuple(mod.weight.shape), mu, spec.method, kind, spec.group_size)
            layer.tied = list(others)
            layer.fit = fit
            layers[name] = layer
    layers = {n: layers[n] for n, *_ in targets}  # module order
    float_tensors, aliases = _float_state(model, spec, [mod.weight for _, mod, *_ in targets])
    meta = _meta(spec, layers, skipped, mode="data-free")
    return PackedModel(layers, meta, float_tensors, aliases)


class GQLinear(nn.Module):
    """A Linear layer backed by a :class:`PackedLayer`.

    mode="dequant-at-load": the weight is decompressed once, here, and kept as a float
    buffer ``weight`` (fast; same memory as nn.Linear).  mode="on-forward": only the packed
    codes, the decompressed centroid table and the scales are kept, and the float weight is
    rebuilt on every forward (saves weight memory between calls, costs an unpack per call).
    Either way the matmul itself runs in floating point (the input's dtype).
    mode="int4pack" (the uniform quantizer at 4 bits with group-wise scales, on a CPU): the codes are
    kept in torch's int4 layout and torch's int4 kernel multiplies straight from them, with the
    activations in bfloat16 (the kernel's fast path; its float32 path is 8-60x slower than a float32
    matmul here, benchmarks/gq_decode.py); the output returns in the input's dtype."""

    def __init__(
        self,
        layer: PackedLayer,
        bias: torch.Tensor | None = None,
        mode: str = "dequant-at-load",
        dtype=torch.float32,
        device=None,
    ):
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}")
        if len(layer.shape) != 2:
            raise ValueError("GQLinear needs a 2-D weight")
        self.out_features, self.in_features = int(layer.shape[0]), int(layer.shape[1])
        self.mode = mode
        self.bits = int(layer.bits)
        self.shape = tuple(layer.shape)
        self.method = layer.method
        self.group_size = int(layer.group_size)
        if mode == "int4pack":
            why = int4pack_refusal(layer)
            if why:
                raise ValueError(f"decompression int4pack: {why}")
            from .packing import unpack_bits

            codes = unpack_bits(layer.codes, 4, layer.numel).view(self.out_features, self.in_features)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32).contiguous(), 1)
            self.register_buffer("int4_weight", packed)
            scales = (layer.scales.to(torch.float32) / 7).t().contiguous()  # [in / group, out]: code k -> (k-8) s/7
            sz = torch.stack([scales, torch.zeros_like(scales)], dim=-1).to(torch.bfloat16)
            self.register_buffer("scales_and_zeros", sz)
        elif mode == "on-forward":
            self.register_buffer("codes", layer.codes.clone().to(device))
            self.register_buffer("codebook", layer.codebook().to(device))
            self.register_buffer("scales", layer.scales.clone().to(device))
            # 1, 2 or 4 bits with one codebook for the tensor: a byte holds whole codes, so a 256-entry
            # table maps each packed byte to its 8/bits decoded values (one gather, no bit arithmetic)
            if 8 % self.bits == 0 and self.bits < 8 and self.codebook.shape[0] == 1:
                self.register_buffer("byte_table", byte_table(self.codebook[0], self.bits))
        else:
            self.register_buffer("weight", layer.dequantize(dtype=dtype, device=device))
        if bias is not None:
            self.bias = nn.Parameter(bias.detach().clone().to(device), requires_grad=False)
        else:
            self.register_parameter("bias", None)

    @classmethod
    def from_packed(cls, layer: PackedLayer, bias=None, mode="dequant-at-load", **kw):
        return cls(layer, bias=bias, mode=mode, **kw)

    def _int4_matmul(self, x2: torch.Tensor) -> torch.Tensor:
        if x2.device.type != "cpu":
            raise RuntimeError("decompression int4pack runs on a CPU (torch's int4 CPU kernel)")
        return torch.ops.aten._weight_int4pack_mm_for_cpu(
            x2.to(torch.bfloat16), self.int4_weight, self.group_size, self.scales_and_zeros
        )

    def dequantized_weight(self, dtype=None) -> torch.Tensor:
        if self.mode == "int4pack":  # for code that reads .weight: the kernel applied to the identity
            eye = torch.eye(self.in_features, dtype=torch.bfloat16)
            w = self._int4_matmul(eye).t().to(torch.float32).contiguous()
        elif self.mode == "on-forward" and "byte_table" in self._buffers:
            n = self.out_features * self.in_features
            vals = self._buffers["byte_table"].index_select(0, self.codes.long()).reshape(-1)[:n]
            w = apply_scales(vals.view(self.out_features, self.in_features), self.scales, self.group_size)
        elif self.mode == "on-forward":
            w = decode(self.codes, self.codebook, self.scales, self.bits, self.shape, group_size=self.group_size)
        else:
            w = self._buffers["weight"]
        return w if dtype is None else w.to(dtype)

    def __getattr__(self, name):
        # HF code sometimes reads `.weight` (dtype/device); give it the float weight.
        buffers = self.__dict__.get("_buffers", {})
        if name == "weight" and ("codes" in buffers or "int4_weight" in buffers):
            return self.dequantized_weight()
        return super().__getattr__(name)

    def forward(self, x):
        if self.mode == "int4pack":
            y = self._int4_matmul(x.reshape(-1, self.in_features)).to(x.dtype)
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias.to(x.dtype)
        w = self.dequantized_weight(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, w, b)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bits={self.bits}, method={self.method}, mode={self.mode}"
        )


def byte_table(codebook: torch.Tensor, bits: int) -> torch.Tensor:
    """``[256, 8 // bits]``: the decoded values of the codes packed in each byte value (LSB first, as
    ``pack_bits`` writes them)."""
    per = 8 // bits
    b = torch.arange(256, dtype=torch.int64).unsqueeze(1)
    idx = (b >> (torch.arange(per, dtype=torch.int64) * bits)) & ((1 << bits) - 1)
    return codebook.to(torch.float32)[idx]


def _set_submodule(model: nn.Module, name: str, new: nn.Module):
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@torch.no_grad()
def apply_packed(
    model: nn.Module,
    packed: PackedModel,
    mode: str = "dequant-at-load",
    *,
    load_float: bool = True,
    swap: bool = False,
    strict: bool = True,
) -> nn.Module:
    """Put the packed weights into ``model`` (in place; also returned).

    mode="dequant-at-load" (default) overwrites each quantized layer's ``weight`` in place
    with its decompressed float values (the module stays an nn.Linear, so ties, hooks and HF
    code are untouched); with ``swap=True`` it is replaced by a GQLinear holding the float
    weight instead.  mode="on-forward" replaces each quantized nn.Linear by a
    GQLinear that decompresses on every forward; tied weights and conv layers are always
    written in place (they must stay a float parameter for their other user).
    ``load_float`` first copies the packed checkpoint's float tensors (biases, embeddings,
    norms, skipped layers) into the model, so a freshly initialised model of the same
    architecture becomes the quantized model."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}")
    if mode == "int4pack":
        refused = {n: why for n, layer in packed.layers.items() if (why := int4pack_refusal(layer))}
        if refused:
            name, why = next(iter(refused.items()))
            raise ValueError(f"decompression int4pack: {len(refused)} layers cannot use it, e.g. {name}: {why}")
    if load_float and packed.float_tensors:
        sd = model.state_dict()
        for k, t in packed.float_tensors.items():
            if k in sd:
                sd[k].copy_(t)
            elif strict:
                raise KeyError(f"float tensor {k!r} not in model")
        for alias, k in packed.float_aliases.items():
            if alias in sd and k in packed.float_tensors:
                sd[alias].copy_(packed.float_tensors[k])
    params = dict(model.named_parameters(remove_duplicate=False))
    for name, layer in packed.layers.items():
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            if strict:
                raise KeyError(f"layer {name!r} not in model")
            continue
        w = mod.weight
        if tuple(w.shape) != tuple(layer.shape):
            raise ValueError(f"{name}: shape {tuple(w.shape)} != packed {tuple(layer.shape)}")
        in_place = (mode == "dequant-at-load" and not swap) or layer.kind != "linear" or layer.tied
        if in_place:
            deq = layer.dequantize(dtype=w.dtype, device=w.device)
            w.copy_(deq)
            for other in layer.tied:  # when the target model is not tied, write all users
                p = params.get(other)
                if p is not None and p.data_ptr() != w.data_ptr():
                    p.copy_(deq)
        else:
            new = GQLinear(layer, bias=mod.bias, mode=mode, dtype=w.dtype, device=w.device)
            _set_submodule(model, name, new)
    return model


def _unique_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        key = _storage_key(t)
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


def packed_size_report(model: nn.Module, packed: PackedModel) -> dict:
    """Sizes in bytes and compression ratios.

    params_quantized : weights in quantized layers; params_float : the model's other
        parameters (unique).
    bytes_quantized : packed codes + centroid tables + scales (no header).
    bytes_packed_at_rest : size of the checkpoint ``save_packed`` writes (safetensors:
        header + quantized payload + float tensors if the spec included them).
    bytes_in_memory : the model's parameters + buffers as it is now (unique storages).
    bytes_in_memory_dequant_at_load / _on_forward : what apply_packed's modes hold (float32
        weights): everything float / float rest + packed codes, centroid table, decompressed
        table and scales of the swapped Linear layers (conv and tied layers stay float) + one
        transient float weight (the largest) being rebuilt during a forward.
    ratio_vs_fp32, ratio_vs_int8 : quantized layers only: 4 bytes/param, and int8 = 1
        byte/param + one fp32 scale per output channel, over bytes_quantized.
    ratio_vs_fp32_model : whole model at fp32 over bytes_packed_at_rest (if float
        tensors are included; otherwise over bytes_quantized + float params at 4 bytes).
    mean_bits : index bits per quantized weight; bits_per_weight_effective includes the
        centroid tables and scales."""
    from .io import serialize

    pq = sum(l.numel for l in packed.layers.values())
    qnames = {f"{n}.weight" for n in packed.layers}
    qkeys = set()
    for n in packed.layers:
        try:
            w = model.get_submodule(n)._parameters.get("weight")
        except AttributeError:
            w = None
        if w is not None:
            qkeys.add(_storage_key(w))
    float_params = []
    seen = set()
    for k, p in model.named_parameters(remove_duplicate=False):
        key = _storage_key(p)
        if k in qnames or key in qkeys or key in seen:
            continue
        seen.add(key)
        float_params.append(p)
    pf = sum(p.numel() for p in float_params)
    float_bytes = sum(p.numel() * p.element_size() for p in float_params)
    bq = sum(l.nbytes for l in packed.layers.values())
    at_rest = len(serialize(packed))
    rows = sum(l.rows for l in packed.layers.values())  # int8: one fp32 scale per output channel
    fp32_q = 4 * pq
    int8_q = pq + 4 * rows
    in_mem = _unique_bytes(list(model.parameters()) + list(model.buffers()))
    swappable = [l for l in packed.layers.values() if l.kind == "linear" and not l.tied]
    in_place = [l for l in packed.layers.values() if not (l.kind == "linear" and not l.tied)]
    largest = max((l.numel for l in swappable), default=0)
    on_forward = (
        float_bytes
        + sum(l.nbytes + l.centroids.numel() * 4 for l in swappable)
        + sum(4 * l.numel for l in in_place)
        + 4 * largest
    )
    model_fp32 = 4 * (pq + pf)
    denom = at_rest if packed.float_tensors else bq + 4 * pf
    mean_bits = (sum(l.bits * l.numel for l in packed.layers.values()) / pq) if pq else 0.0
    return {
        "params_quantized": int(pq),
        "params_float": int(pf),
        "layers_quantized": len(packed.layers),
        "bytes_quantized": int(bq),
        "bytes_packed_at_rest": int(at_rest),
        "bytes_in_memory": int(in_mem),
        "bytes_in_memory_dequant_at_load": int(float_bytes + 4 * pq),
        "bytes_in_memory_on_forward": int(on_forward),
        "bytes_fp32_quantized_layers": int(fp32_q),
        "bytes_int8_quantized_layers": int(int8_q),
        "bytes_fp32_model": int(model_fp32),
        "ratio_vs_fp32": fp32_q / bq if bq else float("nan"),
        "ratio_vs_int8": int8_q / bq if bq else float("nan"),
        "ratio_vs_fp32_model": model_fp32 / denom if denom else float("nan"),
        "mean_bits": float(mean_bits),
        "bits_per_weight_effective": 8.0 * bq / pq if pq else float("nan"),
    }
