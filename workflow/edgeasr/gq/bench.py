"""Reproduce the numbers in docs/general_quantizer.md.

    python -m edgeasr.gq.bench ablation [--size 768]     # synthetic Gaussian / Laplace weights
    python -m edgeasr.gq.bench ct2 PATH/model.bin         # real weights of a CTranslate2 model
    python -m edgeasr.gq.bench timing --arch base --bits 4 8   # random-init HF Whisper
    python -m edgeasr.gq.bench drift MODEL_DIR QUANTIZED_DIR gq5:gq5-kd [...] [--json F]
                                                          # what training moved (a study's checkpoints)

All print plain-text tables.  Nothing here is needed by the quantizer itself.
"""

from __future__ import annotations

import argparse
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


def read_ct2_variables(path) -> dict:
    """The variables of a CTranslate2 ``model.bin`` as float32 arrays (read by edgeasr.ct2_reader)."""
    from ..ct2_reader import Ct2FormatError, read_ct2_model_bin

    m = read_ct2_model_bin(path)
    out = {}
    for name in m.variables:
        try:
            out[name] = m.float32(name)
        except Ct2FormatError:  # integer settings such as decoder/activation, not weights
            continue
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


def weight_drift(reference: dict, before, after, part=lambda name: name.split(".")[1]) -> dict:
    """What training moved, per part of the model (default: a Whisper's ``encoder`` / ``decoder``).

    ``reference``: the float weights by module name + ``.weight``; ``before`` / ``after``: two packed
    models of the same layers (e.g. the data-free fit and its trained twin).  Per part: weights, the
    percentage whose decompressed value changed, and the relative error ||W_q - W|| / ||W|| (%) of
    each model against the float weights."""
    if set(before.layers) != set(after.layers):
        raise ValueError("the two packed models quantize different layers")
    acc: dict = {}
    for name, lb in sorted(before.layers.items()):
        wb, wa = lb.dequantize(), after.layers[name].dequantize()
        w = reference[name + ".weight"].float().reshape(wb.shape)
        a = acc.setdefault(part(name), [0, 0, 0.0, 0.0, 0.0])
        a[0] += wb.numel()
        a[1] += int((wb != wa).sum())
        a[2] += float(((wb - w) ** 2).sum())
        a[3] += float(((wa - w) ** 2).sum())
        a[4] += float((w**2).sum())
    return {
        k: {
            "weights": n,
            "changed_pct": 100 * c / n,
            "rel_err_before_pct": 100 * (eb / ww) ** 0.5,
            "rel_err_after_pct": 100 * (ea / ww) ** 0.5,
        }
        for k, (n, c, eb, ea, ww) in acc.items()
    }


def _drift(args) -> None:
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    from ..atomic import write_json
    from .io import load_packed

    files = sorted(Path(args.model_dir).glob("*.safetensors"))
    if not files:
        raise SystemExit(f"{args.model_dir}: no *.safetensors weights (a converted-transformers model folder)")
    ref = {}
    for f in files:
        ref.update(load_file(f))
    out = {"pairs": {}}
    if args.json and Path(args.json).exists():
        out = json.loads(Path(args.json).read_text())
    out.update({"torch": torch.__version__, "measured": time.strftime("%Y-%m-%d")})
    for pair in args.pairs:
        a, sep, b = pair.partition(":")
        if not sep:
            raise SystemExit(f"pair {pair!r}: write BEFORE:AFTER, e.g. gq5:gq5-kd")
        d = weight_drift(ref, *(load_packed(Path(args.quantized_dir) / f"{x}.gq") for x in (a, b)))
        out["pairs"][f"{Path(args.model_dir).parent.name}/{pair}"] = d
        for part, r in d.items():
            print(
                f"{pair} {part}: {r['changed_pct']:.1f} % of {r['weights']} weights changed; error to float "
                f"{r['rel_err_before_pct']:.2f} % -> {r['rel_err_after_pct']:.2f} %"
            )
    if args.json:
        write_json(args.json, out)


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
    dr = sub.add_parser("drift")
    dr.add_argument("model_dir", help="the float model (resources/models/<model>/converted-transformers)")
    dr.add_argument("quantized_dir", help="its packed checkpoints (resources/models/<model>/quantized)")
    dr.add_argument("pairs", nargs="+", help="BEFORE:AFTER checkpoint names, e.g. gq5:gq5-kd")
    dr.add_argument("--json", help="add the results to this JSON file")
    args = ap.parse_args(argv)
    if args.cmd == "drift":
        _drift(args)
    elif args.cmd == "ablation":
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
