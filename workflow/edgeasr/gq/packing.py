"""Bit-packing of b-bit indices (b = 1..8) into a flat uint8 stream.

Format: element i occupies stream bits [i*b, (i+1)*b), least-significant bit first, and
stream bit j is bit (j % 8) of byte j // 8 (i.e. numpy ``packbits(bitorder="little")``
applied to the little-endian bit expansion of every index).  The stream is padded with zero
bits to a whole byte, so ``n`` indices take ``ceil(n * b / 8)`` bytes.  Pure torch, so the
same code unpacks on CPU or GPU (used by ``GQLinear`` in "on-forward" mode).
"""

from __future__ import annotations

import torch

__all__ = ["pack_bits", "unpack_bits", "packed_nbytes"]


def packed_nbytes(n: int, bits: int) -> int:
    return (int(n) * int(bits) + 7) // 8


def _check_bits(bits: int) -> int:
    bits = int(bits)
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    return bits


def pack_bits(indices, bits: int) -> torch.Tensor:
    """Pack integer ``indices`` (any shape, values in [0, 2**bits)) into a 1-D uint8 tensor."""
    bits = _check_bits(bits)
    idx = torch.as_tensor(indices).reshape(-1)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= (1 << bits)):
        raise ValueError(f"indices out of range for {bits} bits")
    idx = idx.to(torch.uint8)
    n = idx.numel()
    if bits == 8:
        return idx.clone()
    if 8 % bits == 0:  # 1, 2, 4 bits: whole indices per byte, no stream expansion needed
        per = 8 // bits
        pad = (-n) % per
        if pad:
            idx = torch.cat([idx, idx.new_zeros(pad)])
        shifts = torch.arange(0, 8, bits, dtype=torch.int32, device=idx.device)
        return (idx.reshape(-1, per).to(torch.int32) << shifts).sum(dim=1, dtype=torch.int32).to(torch.uint8)
    shifts = torch.arange(bits, dtype=torch.uint8, device=idx.device)
    stream = ((idx.unsqueeze(1) >> shifts) & 1).reshape(-1)  # [n*bits], LSB first
    pad = (-stream.numel()) % 8
    if pad:
        stream = torch.cat([stream, stream.new_zeros(pad)])
    weights = (1 << torch.arange(8, dtype=torch.int32, device=idx.device)).to(torch.uint8)
    out = (stream.reshape(-1, 8) * weights).sum(dim=1, dtype=torch.int32).to(torch.uint8)
    assert out.numel() == packed_nbytes(n, bits)
    return out


def unpack_bits(packed, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``n`` indices as a 1-D uint8 tensor.

    Index with ``.long()`` of the result (a uint8 index tensor would be read as a mask).
    """
    bits = _check_bits(bits)
    packed = torch.as_tensor(packed).reshape(-1)
    if packed.dtype != torch.uint8:
        raise TypeError("packed stream must be uint8")
    n = int(n)
    if packed.numel() < packed_nbytes(n, bits):
        raise ValueError("packed stream too short")
    if bits == 8:
        return packed[:n].clone()
    if 8 % bits == 0:
        shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=packed.device)
        mask = (1 << bits) - 1
        return ((packed[: packed_nbytes(n, bits)].unsqueeze(1) >> shifts) & mask).reshape(-1)[:n]
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    stream = ((packed.unsqueeze(1) >> shifts) & 1).reshape(-1)[: n * bits]
    weights = (1 << torch.arange(bits, dtype=torch.int32, device=packed.device)).to(torch.uint8)
    return (stream.reshape(n, bits) * weights).sum(dim=1, dtype=torch.int32).to(torch.uint8)
