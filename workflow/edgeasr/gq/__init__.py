"""General Quantizer (GQ, arXiv 2210.09188): mu-law companded, learned-centroid sub-8-bit
weight quantization with soft-to-hard annealing, plus a uniform k-bit ablation, a bit-packed
checkpoint format and a decompression path for HF models.  See docs/general_quantizer.md."""

from .companding import compand, expand
from .core import PackedLayer, quantize_tensor, uniform_grid
from .io import load_packed, save_packed
from .model import GQLinear, PackedModel, apply_packed, packed_size_report, quantize_model
from .packing import pack_bits, packed_nbytes, unpack_bits
from .qat import qat_finetune
from .soft import fit_centroids, hard_assign, soft_assign, soft_quantize, temperature
from .spec import QuantSpec

__all__ = [
    "compand",
    "expand",
    "pack_bits",
    "unpack_bits",
    "packed_nbytes",
    "fit_centroids",
    "soft_assign",
    "soft_quantize",
    "hard_assign",
    "temperature",
    "PackedLayer",
    "quantize_tensor",
    "uniform_grid",
    "QuantSpec",
    "PackedModel",
    "quantize_model",
    "GQLinear",
    "apply_packed",
    "packed_size_report",
    "save_packed",
    "load_packed",
    "qat_finetune",
]
