"""Packed checkpoint I/O: one safetensors file.

Tensors: ``q/<layer>/codes`` (uint8), ``q/<layer>/centroids`` (float32 [G, K], companded
space), ``q/<layer>/scales`` (float32 [R], [1] or [R, groups]) for every quantized layer, and
``f/<state-dict name>`` for the float tensors kept alongside (if the spec included them).
The safetensors metadata entry ``"edgeasr.gq"`` holds a JSON header: format name and version,
method, mu, the full QuantSpec, per-layer {bits, shape, mu, method, kind, centroid_groups,
per_channel, group_size, tied}, skipped layers and why, float-tensor aliases, storage dtypes.  The file's
bytes are a pure function of the packed model (sorted JSON, no timestamps).
"""

from __future__ import annotations

import json
import os

import safetensors.torch as st
from safetensors import safe_open

from .core import PackedLayer
from .model import FORMAT_NAME, FORMAT_VERSION, PackedModel

__all__ = ["save_packed", "load_packed", "serialize", "deserialize"]

_KEY = "edgeasr.gq"


def _tensors_and_header(packed: PackedModel):
    tensors = {}
    layers = {}
    for name, l in packed.layers.items():
        tensors[f"q/{name}/codes"] = l.codes.contiguous()
        tensors[f"q/{name}/centroids"] = l.centroids.contiguous()
        tensors[f"q/{name}/scales"] = l.scales.contiguous()
        layers[name] = l.meta()
    for k, t in packed.float_tensors.items():
        tensors[f"f/{k}"] = t.contiguous()
    header = {
        **packed.meta,
        "layers": layers,
        "float_aliases": packed.float_aliases,
        "float_tensors": list(packed.float_tensors),
    }
    return tensors, {_KEY: json.dumps(header, sort_keys=True)}


def serialize(packed: PackedModel) -> bytes:
    """The exact bytes :func:`save_packed` writes."""
    tensors, meta = _tensors_and_header(packed)
    return st.save(tensors, metadata=meta)


def save_packed(packed: PackedModel, path) -> int:
    """Write the packed checkpoint (atomically: temp file + rename); returns its size."""
    from ..atomic import atomic_path

    data = serialize(packed)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return len(data)


def _from(tensors: dict, header: dict) -> PackedModel:
    if header.get("format") != FORMAT_NAME:
        raise ValueError("not an edgeasr.gq packed checkpoint")
    if int(header.get("version", -1)) > FORMAT_VERSION:
        raise ValueError(f"packed format version {header['version']} is newer than supported")
    layers = {}
    for name, m in header["layers"].items():
        layers[name] = PackedLayer(
            codes=tensors[f"q/{name}/codes"],
            centroids=tensors[f"q/{name}/centroids"],
            scales=tensors[f"q/{name}/scales"],
            bits=int(m["bits"]),
            shape=tuple(m["shape"]),
            mu=float(m["mu"]),
            method=m["method"],
            kind=m.get("kind", "linear"),
            tied=list(m.get("tied", [])),
            fit=dict(m.get("fit", {})),
            group_size=int(m.get("group_size", 0)),
        )
    floats = {k: tensors[f"f/{k}"] for k in header.get("float_tensors", [])}
    meta = {k: v for k, v in header.items() if k not in ("layers", "float_aliases", "float_tensors")}
    return PackedModel(layers, meta, floats, header.get("float_aliases", {}))


def deserialize(data: bytes) -> PackedModel:
    import struct

    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(json.loads(data[8 : 8 + n].decode())["__metadata__"][_KEY])
    return _from(st.load(data), header)


def load_packed(path) -> PackedModel:
    with safe_open(os.fspath(path), framework="pt") as f:
        header = json.loads(f.metadata()[_KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return _from(tensors, header)
