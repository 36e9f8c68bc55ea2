"""mu-law companding of weights normalised to [-1, 1].

``compand`` is F(w) = sign(w) * ln(1 + mu |w|) / ln(1 + mu); ``expand`` is its inverse
F^-1(y) = sign(y) * ((1 + mu)^|y| - 1) / mu.  Both map [-1, 1] onto itself, are odd,
strictly increasing, and fix -1, 0 and 1.  ``mu <= 0`` means "no companding" (identity),
which is the limit of F as mu -> 0 and is how the uniform quantizer is stored.
"""

from __future__ import annotations

import math

import torch

__all__ = ["compand", "expand"]


def _as_float(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return x


def compand(x, mu: float = 255.0) -> torch.Tensor:
    """mu-law compress ``x`` (expected in [-1, 1]).  Differentiable; returns a new tensor."""
    x = _as_float(x)
    mu = float(mu)
    if mu <= 0.0:
        return x.clone()
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def expand(y, mu: float = 255.0) -> torch.Tensor:
    """Inverse of :func:`compand`.  Differentiable; returns a new tensor."""
    y = _as_float(y)
    mu = float(mu)
    if mu <= 0.0:
        return y.clone()
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
