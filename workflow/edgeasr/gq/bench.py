"""Reproduce the numbers in docs/general_quantizer.md.

    python -m edgeasr.gq.bench ablation [--size 768]     # synthetic Gaussian / Laplace weights
    python -m edgeasr.gq.bench ct2 PATH/model.bin         # real weights of a CTranslate2 model
    python -m edgeasr.gq.bench timing --arch base --bits 4 8   # random-init HF Whisper

All three print plain-text tables.  Nothing here is needed by the quantizer itself.
"""

from __future__ import annotations

import argparse
import struct
import time

import numpy as np
import torch
import torch.nn as nn

from .model import quantize_model
from .spec import QuantSpec

VARIANTS = {
    "uniform": dict(method="uniform"),
    "mulaw-fixed": dict(init="mulaw", steps=0),  # mu-law grid, nothing learned
    "gq": dict(),  # defaults: mu=255, learned
    "gq-mu0": dict(mu=0.0),  # learned, no companding
}
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2_variables(path) -> dict:
    """Variables of a CTranslate2 ``model.bin`` (binary version 6) as numpy arrays.

    Format (ctranslate2/specs/model_spec.py ``_serialize``): u32 version, string spec name,
    u32 revision, u32 count, then per variable: string name, u8 rank, u32 dims, u8 dtype id,
    u32 nbytes, raw bytes; strings are u16 length (incl. NUL) + UTF-8 + NUL.  bfloat16 is
    skipped."""
    data = open(path, "rb").read()
    o = 0

    def take(fmt):
        nonlocal o
        v = struct.unpack_from(fmt, data, o)[0]
        o += struct.calcsize(fmt)
        return v

    def string():
        nonlocal o
        n = take("H")
        v = data[o : o + n - 1].decode()
        o += n
        return v

    version = take("I")
    if version != 6:
        raise ValueError(f"unsupported CTranslate2 binary version {version}")
    string()
    take("I")
    out = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dt, nb = take("B"), take("I")
        if dt in _CT2_DTYPES:
            out[name] = np.frombuffer(
                data, dtype=_CT2_DTYPES[dt], count=nb // np.dtype(_CT2_DTYPES[dt]).itemsize, offset=o
            ).reshape(shape)
        o += nb
    return out


def _box(weights: dict) -> nn.Module:
    box = nn.Module()
    for name, w in weights.items():
        lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
        lin.weight.data = torch.from_numpy(np.array(w, dtype=np.float32))
        box.add_module(name.replace("/", "_").replace(".", "_"), lin)
    return box


def _rel_err(box: nn.Module, packed) -> float:
    num = den = 0.0
    with torch.no_grad():
        for name, layer in packed.items():
            w = box.get_submodule(name).weight
            num += float(((layer.dequantize() - w) ** 2).sum())
            den += float((w**2).sum())
    return num / den


def ablation_table(box: nn.Module, bits_list, variants=VARIANTS) -> list:
    rows = []
    for bits in bits_list:
        row = {"bits": bits}
        for label, kw in variants.items():
            t = time.perf_counter()
            pm = quantize_model(box, QuantSpec(bits=bits, include_float=False, **kw))
            row[label] = _rel_err(box, pm)
            row[label + "_s"] = time.perf_counter() - t
        rows.append(row)
    return rows


def _print(rows, variants=VARIANTS):
    print("bits | " + " | ".join(f"{v} rel.sq.err" for v in variants) + " | gq/uniform")
    for r in rows:
        print(f"{r['bits']} | " + " | ".join(f"{r[v]:.3e}" for v in variants) + f" | {r['gq'] / r['uniform']:.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m edgeasr.gq.bench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ablation")
    a.add_argument("--size", type=int, default=768)
    a.add_argument("--bits", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 8])
    c = sub.add_parser("ct2")
    c.add_argument("path")
    c.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8])
    t = sub.add_parser("timing")
    t.add_argument("--arch", choices=["tiny", "base"], default="base")
    t.add_argument("--bits", nargs="+", default=["4", "8", "mixed", "uniform4"])
    t.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.cmd == "ablation":
        g = torch.Generator().manual_seed(0)
        n = args.size
        u = torch.rand(n, n, generator=g) - 0.5
        for label, w in [
            ("gaussian", torch.randn(n, n, generator=g)),
            ("laplacian", -torch.sign(u) * torch.log1p(-2 * u.abs())),
        ]:
            print(f"## {label} {n}x{n}, per-channel max scaling")
            _print(ablation_table(_box({"w": w}), args.bits))
    elif args.cmd == "ct2":
        v = read_ct2_variables(args.path)
        lin = {
            k: a
            for k, a in v.items()
            if k.endswith("/weight") and a.ndim == 2 and "embeddings" not in k and "layer_norm" not in k
        }
        print(f"## {args.path}: {len(lin)} Linear weights, {sum(a.size for a in lin.values()) / 1e6:.2f} M params")
        _print(ablation_table(_box(lin), args.bits))
    else:
        from transformers import WhisperConfig, WhisperForConditionalGeneration

        dims = {"tiny": (384, 4, 6, 1536), "base": (512, 6, 8, 2048)}[args.arch]
        d, L, h, f = dims
        torch.manual_seed(0)
        model = WhisperForConditionalGeneration(
            WhisperConfig(
                vocab_size=51865,
                num_mel_bins=80,
                d_model=d,
                encoder_layers=L,
                decoder_layers=L,
                encoder_attention_heads=h,
                decoder_attention_heads=h,
                encoder_ffn_dim=f,
                decoder_ffn_dim=f,
            )
        ).eval()
        print(
            f"## random-init whisper-{args.arch}: "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params, "
            f"num_threads={args.threads}"
        )
        from .model import packed_size_report

        for b in args.bits:
            if b == "mixed":
                spec = QuantSpec(bits={"model.encoder.*": 4, "model.decoder.*": 6, "*": 4})
            elif b.startswith("uniform"):
                spec = QuantSpec(method="uniform", bits=int(b[7:]))
            elif b.startswith("ch"):
                spec = QuantSpec(bits=int(b[2:]), centroid_group="channel")
            else:
                spec = QuantSpec(bits=int(b))
            spec.num_threads = args.threads
            t0 = time.perf_counter()
            pm = quantize_model(model, spec)
            dt = time.perf_counter() - t0
            r = packed_size_report(model, pm)
            print(
                f"{b}: quantize_model {dt:.1f} s, {r['layers_quantized']} layers, "
                f"{r['params_quantized'] / 1e6:.1f} M quantized params, "
                f"packed {r['bytes_quantized'] / 1e6:.1f} MB, "
                f"x{r['ratio_vs_fp32']:.2f} vs fp32, x{r['ratio_vs_int8']:.2f} vs int8, "
                f"checkpoint {r['bytes_packed_at_rest'] / 1e6:.1f} MB "
                f"(x{r['ratio_vs_fp32_model']:.2f} vs fp32 model)"
            )


if __name__ == "__main__":
    main()
