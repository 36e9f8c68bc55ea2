"""The one reader of CTranslate2's ``model.bin`` (binary versions 1-6: aliases, int8 / int16 with
scales, float16, bfloat16), and the parameter counts and in-memory bytes of a model read from it.

CTranslate2 keeps the weights in the compute type it was asked for: float32/float16/bfloat16 cast all
float variables; int8_<float> quantizes the 2-D linear weights to int8 with one float32 scale per
output row and keeps the rest (embeddings, norms, biases, conv front-end) in <float>.
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Binary versions of ``model.bin`` this reader understands (CTranslate2 writes version 6 since 4.x;
#: 1 has no spec name, 2 adds it, 3 adds aliases, 4 stores a dtype id instead of an item size).
SUPPORTED_BINARY_VERSIONS = (1, 2, 3, 4, 5, 6)

# Order of the DataType enum in include/ctranslate2/types.h (model_spec._dtype_to_type_id).
_DTYPE_BY_ID = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
# Binary versions < 4 store an item size instead of a dtype id (model.cc get_dtype_from_item_size).
_DTYPE_BY_ITEM_SIZE = {4: "float32", 2: "int16", 1: "int8"}
_NUMPY_DTYPE = {
    "float32": np.dtype("<f4"),
    "int8": np.dtype("i1"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),  # raw bits, widened to float32 by _to_float32
}
# ops::Quantize::global_int16_scale: int16 models written before scales were saved.
_GLOBAL_INT16_SCALE = 1000.0


class Ct2FormatError(ValueError):
    """``model.bin`` (or a file next to it) is not a readable CTranslate2 Whisper model."""


@dataclass
class Ct2ModelBin:
    """The parsed content of a CTranslate2 ``model.bin``.

    ``variables`` holds the arrays as stored (dtype included, bfloat16 as raw ``uint16`` bits, see
    ``dtypes``); ``aliases`` maps an alias name to the stored variable it points to.
    """

    path: Path
    binary_version: int
    spec: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    dtypes: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """Follow aliases (``decoder/projection/weight`` -> ``decoder/embeddings/weight``)."""
        seen = set()
        while name in self.aliases and name not in self.variables:
            if name in seen:
                raise Ct2FormatError(f"{self.path}: alias cycle at {name!r}")
            seen.add(name)
            name = self.aliases[name]
        return name

    def has(self, name: str) -> bool:
        return self.resolve(name) in self.variables

    def raw(self, name: str) -> np.ndarray:
        real = self.resolve(name)
        try:
            return self.variables[real]
        except KeyError:
            raise Ct2FormatError(f"{self.path}: variable {name!r} not found") from None

    def scalar(self, name: str, default: Any = None) -> Any:
        if not self.has(name):
            return default
        arr = self.raw(name)
        return arr.reshape(-1)[0].item() if arr.size else default

    def float32(self, name: str) -> np.ndarray:
        """The variable as float32, dequantized with its ``_scale`` when it is int8/int16."""
        real = self.resolve(name)
        arr = self.raw(name)
        dtype = self.dtypes[real]
        if dtype in ("float32", "float16", "bfloat16"):
            return _to_float32(arr, dtype)
        if dtype in ("int8", "int16"):
            # model.cc registers `alias_scale -> variable_scale` for every alias, so look up the
            # scale next to the resolved variable first, then next to the requested name.
            scale = None
            for scale_name in (real + "_scale", name + "_scale"):
                if self.has(scale_name):
                    scale = self.float32(scale_name)
                    break
            if scale is None:
                if dtype == "int8":
                    raise Ct2FormatError(f"{self.path}: int8 variable {name!r} has no {name}_scale")
                scale = np.float32(_GLOBAL_INT16_SCALE)
            values = arr.astype(np.float32)
            scale = np.asarray(scale, dtype=np.float32)
            if scale.ndim == 0 or scale.size == 1:
                return values / scale.reshape(())
            if scale.shape[0] != values.shape[0]:
                raise Ct2FormatError(f"{self.path}: scale of {name!r} has shape {scale.shape}, weight {values.shape}")
            # Per output row (linear [out, in]; conv1d [out, in, k] was reshaped to 2D to quantize).
            return values / scale.reshape((-1,) + (1,) * (values.ndim - 1))
        raise Ct2FormatError(f"{self.path}: variable {name!r} has non-float dtype {dtype}")

    def dtype_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, dtype in self.dtypes.items():
            if self.variables[name].ndim >= 2:
                counts[dtype] = counts.get(dtype, 0) + 1
        return counts


def _to_float32(arr: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(np.float32)


def read_ct2_model_bin(path: str | os.PathLike) -> Ct2ModelBin:
    """Parse a CTranslate2 ``model.bin`` (binary versions 1 to 6) without CTranslate2.

    Raises ``FileNotFoundError`` when it is missing and :class:`Ct2FormatError` (naming the file)
    when it is truncated, has trailing bytes or is not a CTranslate2 model at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CTranslate2 model file not found: {path}")
    data = path.read_bytes()
    size = len(data)
    buf = memoryview(data)
    offset = 0

    def need(n: int, what: str) -> None:
        if offset + n > size:
            raise Ct2FormatError(
                f"{path}: file is truncated: needed {n} bytes for {what} at offset {offset}, "
                f"but the file has only {size} bytes"
            )

    def unpack(fmt: str, what: str) -> int:
        nonlocal offset
        n = struct.calcsize("<" + fmt)
        need(n, what)
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += n
        return value

    def string(what: str) -> str:
        nonlocal offset
        length = unpack("H", what + " length")
        need(length, what)
        raw = bytes(buf[offset : offset + length])
        offset += length
        if not raw or raw[-1] != 0:
            raise Ct2FormatError(f"{path}: malformed string for {what} at offset {offset - length}")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Ct2FormatError(f"{path}: malformed string for {what}: {exc}") from None

    version = unpack("I", "the binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise Ct2FormatError(
            f"{path}: not a CTranslate2 model.bin this reader supports (binary version {version}, "
            f"supported: {SUPPORTED_BINARY_VERSIONS})"
        )
    spec, revision = "", 1
    if version >= 2:
        spec = string("the spec name")
        revision = unpack("I", "the spec revision")
    num_variables = unpack("I", "the variable count")

    variables: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for index in range(num_variables):
        name = string(f"the name of variable {index}")
        rank = unpack("B", f"the rank of {name}")
        shape = tuple(unpack("I", f"the shape of {name}") for _ in range(rank))
        if version >= 4:
            type_id = unpack("B", f"the dtype of {name}")
            if type_id not in _DTYPE_BY_ID:
                raise Ct2FormatError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
            dtype = _DTYPE_BY_ID[type_id]
            num_bytes = unpack("I", f"the byte count of {name}")
        else:
            item_size = unpack("B", f"the item size of {name}")
            if item_size not in _DTYPE_BY_ITEM_SIZE:
                raise Ct2FormatError(f"{path}: variable {name!r} has unknown item size {item_size}")
            dtype = _DTYPE_BY_ITEM_SIZE[item_size]
            num_bytes = unpack("I", f"the element count of {name}") * item_size
        np_dtype = _NUMPY_DTYPE[dtype]
        expected = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
        if expected != num_bytes:
            raise Ct2FormatError(
                f"{path}: variable {name!r} declares {num_bytes} bytes but shape {shape} of {dtype} needs {expected}"
            )
        need(num_bytes, f"the data of {name}")
        arr = np.frombuffer(data, dtype=np_dtype, count=num_bytes // np_dtype.itemsize, offset=offset)
        offset += num_bytes
        variables[name] = arr.reshape(shape)
        dtypes[name] = dtype

    aliases: dict[str, str] = {}
    if version >= 3:
        num_aliases = unpack("I", "the alias count")
        for index in range(num_aliases):
            alias = string(f"the name of alias {index}")
            aliases[alias] = string(f"the target of alias {alias}")
    if offset != size:
        raise Ct2FormatError(
            f"{path}: {size - offset} unexpected trailing bytes after offset {offset} "
            "(corrupt file, or parts joined in the wrong order?)"
        )
    return Ct2ModelBin(path, version, spec, revision, variables, dtypes, aliases)


FLOAT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int16": 2}


@functools.lru_cache(maxsize=8)
def _shapes(model_dir: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
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


def join_model_parts(
    parts: list[str | os.PathLike], support_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> Path:
    """Assemble a CTranslate2 directory whose ``model.bin`` is shipped split in parts.

    Concatenates ``parts`` in order into ``out_dir/model.bin`` (edgeasr.models.join_parts) and copies
    ``config.json``, ``tokenizer.json``, ``vocabulary.txt``/``.json`` and ``preprocessor_config.json``
    (when present) from ``support_dir``.
    """
    from .models import join_parts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    join_parts([Path(p) for p in parts], out / "model.bin")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "preprocessor_config.json"):
        src = Path(support_dir) / name
        if src.is_file():
            shutil.copyfile(src, out / name)
    return out


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------
