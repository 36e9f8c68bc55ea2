"""Parameter counts and in-memory parameter bytes of a CTranslate2 model, from its model.bin.

CTranslate2 keeps the weights in the compute type it was asked for: float32/float16/bfloat16 cast all
float variables; int8_<float> quantizes the 2-D linear weights to int8 with one float32 scale per
output row and keeps the rest (embeddings, norms, biases, conv front-end) in <float>.
"""

from __future__ import annotations

import functools
from pathlib import Path

FLOAT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int16": 2}


@functools.lru_cache(maxsize=8)
def _shapes(model_dir: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from .ct2_to_hf import read_ct2_model_bin

    m = read_ct2_model_bin(Path(model_dir) / "model.bin")
    out = []
    for name, arr in m.variables.items():
        if (
            name.endswith("_scale")
            or arr.ndim == 0
            or m.dtypes[name] not in ("float32", "float16", "bfloat16", "int8", "int16")
        ):
            continue
        if arr.size <= 1:
            continue  # scalars such as num_heads
        out.append((name, tuple(arr.shape)))
    return tuple(out)


def ct2_param_count(model_dir) -> int:
    return int(sum(_prod(s) for _, s in _shapes(str(model_dir))))


def ct2_param_bytes(model_dir, compute_type: str) -> int:
    if compute_type.startswith("int8"):
        rest = compute_type.split("_", 1)[1] if "_" in compute_type else "float32"
        fb = FLOAT_BYTES.get(rest, 4)
        total = 0
        for name, s in _shapes(str(model_dir)):
            if len(s) == 2 and name.endswith("weight") and "embeddings" not in name:
                total += _prod(s) + 4 * s[0]
            else:
                total += _prod(s) * fb
        return int(total)
    return int(ct2_param_count(model_dir) * FLOAT_BYTES.get(compute_type, 4))


def _prod(s) -> int:
    out = 1
    for d in s:
        out *= int(d)
    return out
