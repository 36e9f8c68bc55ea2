"""Why (and how much) the packed-in-memory mode costs: decode time per layer against the matmul it feeds.

    python benchmarks/gq_decode.py [--model-dir resources/models/whisper-tiny.en/converted-transformers]
                                   [--audio FILE ...] [--threads 2] [--out docs/gq_decode.json]

Part 1, one Linear layer of whisper-base's shape (2048 x 512) at 4 bits: the time to rebuild its float
weight from the packed codes (the general bit-unpacking path and the byte-table path that 1/2/4-bit
layers with one codebook take), next to the matmul itself at one decoder token (GEMV, 1 x 512) and at a
whole encoder window (1500 x 512). Part 2, with --model-dir and --audio: a real Whisper quantized to
gq4 (data-free), greedy transcription of the files in each decompression mode: seconds, RTFx and peak
weight bytes held in memory, and whether both modes decode the same text. Part 3: torch's own 4-bit weight
kernel (aten._weight_int4pack_mm_for_cpu) against the fp32 matmul, per layer shape of tiny and base.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time


def _time(f, repeats: int = 30) -> float:
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def layer_part(threads: int) -> dict:
    import torch

    from edgeasr.gq.core import decode, quantize_tensor
    from edgeasr.gq.model import GQLinear

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    w = torch.randn(2048, 512) * 0.05
    out = {}
    for method in ("gq", "uniform"):
        layer = quantize_tensor(w, bits=4, method=method)
        dense = GQLinear(layer, mode="dequant-at-load")
        packed = GQLinear(layer, mode="on-forward")
        assert torch.equal(dense.dequantized_weight(), packed.dequantized_weight())
        tok, win = torch.randn(1, 512), torch.randn(1500, 512)
        out[method] = {
            "decode_bit_unpack_ms": _time(lambda: decode(packed.codes, packed.codebook, packed.scales, 4, (2048, 512))),
            "decode_byte_table_ms": _time(packed.dequantized_weight),
            "matmul_1_token_ms": _time(lambda: dense(tok)),
            "matmul_1500_frames_ms": _time(lambda: dense(win), repeats=10),
        }
    return out


def int4_kernel_part(threads: int) -> dict:
    """torch's own 4-bit weight kernel on this CPU (aten._weight_int4pack_mm_for_cpu, the one torchao's
    int4 weight-only layout calls): the only kernel in torch that multiplies straight from packed 4-bit
    codes. It takes affine uint4 codes with a scale per group of 32-256 weights, so it fits the uniform
    quantizer with group-wise scales exactly (code k stands for (k - 8) * s / 7); gq's learned,
    non-uniform levels do not fit it. Timed against the fp32 matmul of the same weights, per layer shape
    of whisper-tiny (384 wide) and whisper-base (512 wide), at one decoder token, five (a beam of five)
    and a whole encoder window (1500 frames); the outputs must match the fp32 matmul."""
    import torch
    import torch.nn.functional as F

    from edgeasr.gq.core import decode, quantize_tensor
    from edgeasr.gq.packing import unpack_bits

    if not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"):
        return {"available": False, "torch": torch.__version__}
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    out = {"available": True}
    for n, k in ((384, 384), (1536, 384), (384, 1536), (512, 512), (2048, 512), (512, 2048)):
        layer = quantize_tensor(torch.randn(n, k) * 0.05, bits=4, method="uniform", group_size=64)
        w = decode(layer.codes, layer.centroids, layer.scales, 4, (n, k), group_size=64)
        codes = unpack_bits(layer.codes, 4, n * k).view(n, k).to(torch.int32)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
        scales = (layer.scales / 7).t().contiguous()  # [k / 64, n]
        sz = torch.stack([scales, torch.zeros_like(scales)], dim=-1)
        row = {"weight_bytes_fp32": n * k * 4, "weight_bytes_int4pack": packed.numel() * packed.element_size()}
        for m in (1, 5, 1500):
            x = torch.randn(m, k)
            ref = F.linear(x, w)
            got = torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, 64, sz)
            assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max())), "int4 kernel differs"
            reps = 5 if m == 1500 else 50
            row[f"fp32_matmul_{m}_ms"] = _time(lambda: F.linear(x, w), reps)
            row[f"int4pack_{m}_ms"] = _time(lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, 64, sz), reps)
            xb, szb = x.to(torch.bfloat16), sz.to(torch.bfloat16)
            row[f"int4pack_bf16_{m}_ms"] = _time(
                lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(xb, packed, 64, szb), reps
            )
        out[f"{n}x{k}"] = row
    return out


def model_part(model_dir: str, audio: list[str], threads: int) -> dict:
    import copy

    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from edgeasr.audio import read_audio
    from edgeasr.gq import QuantSpec, apply_packed, packed_size_report, quantize_model

    torch.set_num_threads(threads)
    proc = WhisperProcessor.from_pretrained(model_dir)
    base = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    packed = quantize_model(base, QuantSpec(method="gq", bits=4))
    waves = [read_audio(p)[0] for p in audio]
    audio_s = sum(len(w) for w in waves) / 16000
    feats = [proc.feature_extractor(w, sampling_rate=16000, return_tensors="pt").input_features for w in waves]
    rows, texts = {}, {}
    for mode in ("dequant-at-load", "on-forward"):
        model = apply_packed(copy.deepcopy(base), packed, mode=mode)
        with torch.no_grad():
            model.generate(feats[0], num_beams=1, max_new_tokens=128)  # warm-up
            t0 = time.perf_counter()
            outs = [model.generate(f, num_beams=1, max_new_tokens=128) for f in feats]
            dt = time.perf_counter() - t0
        texts[mode] = [proc.batch_decode(o, skip_special_tokens=True)[0] for o in outs]
        rows[mode] = {
            "transcribe_s": dt,
            "rtfx": audio_s / dt,
            # the model's weight bytes in this mode (computed from the tensors it holds, not a measured RSS)
            "weight_bytes_in_memory": packed_size_report(model, packed)[
                "bytes_in_memory_on_forward" if mode == "on-forward" else "bytes_in_memory_dequant_at_load"
            ],
        }
        del model
    return {
        "audio_s": audio_s,
        "files": len(audio),
        "modes": rows,
        "same_text": texts["dequant-at-load"] == texts["on-forward"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir")
    ap.add_argument("--audio", nargs="*", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    import torch

    import edgeasr

    res = {"layer_2048x512_4bit": layer_part(args.threads), "int4_kernel": int4_kernel_part(args.threads)}
    if args.model_dir and args.audio:
        res["whisper_gq4"] = {"model_dir": args.model_dir, **model_part(args.model_dir, args.audio, args.threads)}
    res["machine"] = {
        "cpu": _cpu(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "edgeasr": edgeasr.__version__,
    }
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


def _cpu() -> str:
    try:
        return next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
