"""Quantization-aware fine-tuning with soft-to-hard annealed General Quantizer weights.

Every quantized Linear/Conv weight is re-parametrised (torch.nn.utils.parametrize) as

    W_soft = scale * F^-1( sum_k p_k(F(W_latent / scale)) c_k ),   p = softmax(-(y - c)^2 / (tau delta^2))

so the task loss is differentiable w.r.t. the centroids c (always trained), the latent float
weights (``train_weights``) and, optionally, every other parameter (``train_other``).  tau is
annealed geometrically from ``tau_start`` to ``tau_end`` over the run; no regulariser is
added.  At the end the assignment is made hard (nearest centroid in companded space), the
model's weights are overwritten with the decompressed hard weights, and the packed model is
returned.  Scales stay at the max magnitudes of the initial weights (latent weights beyond
them saturate).

A long run can keep its progress in a ``ResumeFile``: the model's state (latent weights, centroids, and
the other weights when they train), the optimizer's moments, torch's random state and the step, saved
atomically every few minutes.  A run killed (a Slurm time limit, Ctrl-C, a lost session) and started
again with the same fingerprint goes on from the last save and ends with the same bytes as a run that
was never stopped; a file with another fingerprint is set aside.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from .companding import compand, expand
from .core import make_layer, max_scales, normalise, uniform_grid, uniform_indices
from .model import PackedModel, _collect, _float_state, _meta, apply_packed, quantize_model
from .soft import hard_assign, init_centroids, soft_quantize, torch_threads
from .spec import QuantSpec

__all__ = ["qat_finetune", "ResumeFile", "SoftQuantParam", "UniformSTEParam"]

log = logging.getLogger(__name__)


class ResumeFile:
    """Where one QAT run keeps its progress between saves (see the module's docstring).

    ``fingerprint``: a JSON-able dict naming everything the run's result depends on (spec, recipe, inputs'
    hashes, code); a saved state with another fingerprint is never resumed.  ``every_s``: seconds between
    saves (0: after every step).  ``extra()``: the caller's own state saved with each snapshot (a loss
    curve, elapsed time); it comes back as ``load()["extra"]``.  The file is the caller's to ``remove()``
    once the run's outputs are written.
    """

    def __init__(self, path, fingerprint: dict, every_s: float = 300.0, extra: Callable[[], dict] | None = None):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.every_s = float(every_s)
        self.extra = extra
        self._state: dict | None = None
        self._loaded = False
        self._last = time.monotonic()

    @property
    def stale_path(self) -> Path:
        """Where a saved state that is not resumed is moved."""
        return self.path.with_name(self.path.name + ".stale")

    def load(self) -> dict | None:
        """The saved state when its fingerprint matches, else None (a mismatching file is renamed aside)."""
        if not self._loaded:
            self._loaded = True
            # a save cut short by a kill leaves atomic_path's temporary file (hundreds of MB): remove it
            for tmp in self.path.parent.glob(f".{self.path.stem}.*.partial{self.path.suffix}"):
                tmp.unlink(missing_ok=True)
            if self.path.exists():
                try:
                    state = torch.load(self.path, map_location="cpu", weights_only=False)
                except Exception as e:  # noqa: BLE001 - an unreadable file is not resumed
                    state = None
                    why = f"unreadable ({type(e).__name__}: {e})"
                else:
                    why = "made by another configuration, input or training code"
                if state is not None and state.get("fingerprint") == self.fingerprint:
                    self._state = state
                    log.info("resuming QAT from %s at step %d", self.path, state["step"])
                else:
                    os.replace(self.path, self.stale_path)
                    log.warning(
                        "not resuming from %s: %s; moved to %s, starting afresh", self.path, why, self.stale_path
                    )
        return self._state

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, state: dict) -> None:
        from ..atomic import atomic_path

        state = {**state, "fingerprint": self.fingerprint, "extra": self.extra() if self.extra else {}}
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)
        self._last = time.monotonic()

    def release(self) -> None:
        """Drop the loaded state from memory (the weights are restored by then)."""
        self._state = None

    def remove(self) -> None:
        for p in (self.path, self.stale_path):
            p.unlink(missing_ok=True)


class SoftQuantParam(nn.Module):
    """Parametrization: latent weight -> soft-quantized weight at temperature ``self.tau``."""

    def __init__(
        self,
        centroids: torch.Tensor,
        scales: torch.Tensor,
        mu: float,
        window: int,
        group_size: int = 0,
        window_tol: float | None = None,
    ):
        super().__init__()
        self.centroids = nn.Parameter(centroids.detach().clone().to(torch.float32))
        self.register_buffer("scales", scales.detach().clone().to(torch.float32))
        self.mu = float(mu)
        self.window = window
        self.window_tol = window_tol  # shrink the window where the left-out mass is at most this (soft.window_for)
        self.group_size = int(group_size)
        self.tau = 1.0

    def companded(self, W):
        x, s = normalise(W.reshape(W.shape[0], -1), self.scales, self.group_size)
        return compand(x, self.mu), s

    def forward(self, W):
        y, s = self.companded(W)
        if self.centroids.shape[0] == 1:
            q = soft_quantize(y.reshape(1, -1), self.centroids, self.tau, self.window, self.window_tol).view_as(y)
        else:
            q = soft_quantize(y, self.centroids, self.tau, self.window, self.window_tol)
        return (expand(q, self.mu) * s).view(W.shape).to(W.dtype)


class UniformSTEParam(nn.Module):
    """Parametrization of the uniform ablation's QAT: the latent weight rounded to the symmetric
    max-magnitude grid in the forward pass, the gradient passed straight through (STE) in the backward
    pass. The scales stay at the initial max magnitudes, as gq's do; nothing else is learned."""

    def __init__(self, scales: torch.Tensor, bits: int, group_size: int = 0):
        super().__init__()
        self.register_buffer("scales", scales.detach().clone().to(torch.float32))
        self.bits = int(bits)
        self.group_size = int(group_size)
        self.tau = 1.0  # no temperature: kept so that one loop drives both parametrizations

    def normalised(self, W):
        return normalise(W.reshape(W.shape[0], -1), self.scales, self.group_size)

    def indices(self, W) -> torch.Tensor:
        """The hard codes of ``W`` (index into ``uniform_grid(bits)``)."""
        return uniform_indices(self.normalised(W)[0], self.bits)

    def forward(self, W):
        x, s = self.normalised(W)
        q = uniform_grid(self.bits).to(x.device, torch.float32)[0][self.indices(W)]
        q = x + (q - x).detach()  # straight-through: forward rounds, backward is the identity
        return (q * s).view(W.shape).to(W.dtype)


def qat_finetune(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    batches: Iterable,
    spec: QuantSpec | None = None,
    *,
    epochs: int = 1,
    steps: int | None = None,
    lr: float = 1e-3,
    centroid_lr: float | None = None,
    train_weights: bool = True,
    train_other: bool = False,
    tau_start: float | None = None,
    tau_end: float | None = None,
    init: str = "data-free",
    callback: Callable | None = None,
    num_threads: int | None = None,
    window_tol: float | None = 1e-6,
    resume: ResumeFile | None = None,
) -> PackedModel:
    """Quantization-aware fine-tuning; modifies ``model`` in place, returns the packed model.

    loss_fn(model, batch) -> scalar loss tensor.  ``batches`` is re-iterated for each of
    ``epochs`` passes (or cycled until ``steps`` optimizer steps if given; a one-shot
    iterator needs ``steps`` <= its length).  Centroids start from the data-free fit
    (``init="data-free"``) or the plain mu-law grid (``init="mulaw"``).  Adam; centroid
    learning rate ``centroid_lr`` (default ``lr``) is in companded units.  ``callback(step,
    tau, loss)`` is called after every step.  tau defaults to the spec's schedule.
    ``num_threads`` temporarily sets torch's (process-global) thread count for the run
    (None: leave it).  Latent weights beyond the initial scales saturate; the centroid
    learning rate should shrink with the spacing 2/K at many bits.  ``window_tol``: gq's softmax window
    shrinks from the spec's window to 4 at temperatures where the centroids it leaves out carry at most
    this much probability mass (None: always the spec's window).  ``resume``: a ``ResumeFile`` to go on
    from and to save progress in (the callback is called only for the steps this call runs)."""
    with torch_threads(num_threads):
        return _qat(
            model,
            loss_fn,
            batches,
            spec,
            epochs=epochs,
            steps=steps,
            lr=lr,
            centroid_lr=centroid_lr,
            train_weights=train_weights,
            train_other=train_other,
            tau_start=tau_start,
            tau_end=tau_end,
            init=init,
            callback=callback,
            window_tol=window_tol,
            resume=resume,
        )


def _qat(
    model,
    loss_fn,
    batches,
    spec,
    *,
    epochs,
    steps,
    lr,
    centroid_lr,
    train_weights,
    train_other,
    tau_start,
    tau_end,
    init,
    callback,
    window_tol,
    resume,
) -> PackedModel:
    spec = spec or QuantSpec()
    if spec.method not in ("gq", "uniform"):
        raise ValueError(f"qat_finetune: unknown method {spec.method!r} (gq or uniform)")
    uniform = spec.method == "uniform"
    if uniform and not train_weights:
        raise ValueError("uniform QAT learns the latent weights only: train_weights=False leaves nothing to train")
    tau_start = spec.tau_start if tau_start is None else float(tau_start)
    tau_end = spec.tau_end if tau_end is None else float(tau_end)
    if steps is None:
        if not hasattr(batches, "__len__"):
            raise ValueError("pass steps= when batches has no len()")
        steps = len(batches) * int(epochs)
    steps = int(steps)
    if steps <= 0:
        raise ValueError("no training steps")
    targets, skipped = _collect(model, spec)
    tied = [n for n, _, _, _, others in targets if others]
    if tied:
        raise ValueError(f"QAT does not support tied weights: {tied}")

    def scales_of(mod):  # the max-magnitude scales as they will be stored
        return max_scales(mod.weight.detach().reshape(mod.weight.shape[0], -1), spec.per_channel, spec.group_size)

    if uniform:
        inits = {name: (None, scales_of(mod)) for name, mod, _, _, _ in targets}
    elif init == "data-free":
        init_pm = quantize_model(model, QuantSpec.from_dict({**spec.to_dict(), "include_float": False}))
        inits = {n: (l.centroids, l.scales) for n, l in init_pm.layers.items()}
    elif init == "mulaw":
        inits = {}
        for name, mod, _, bits, _ in targets:
            G = mod.weight.shape[0] if spec.centroid_group == "channel" else 1
            inits[name] = (init_centroids(bits, G), scales_of(mod))
    else:
        raise ValueError("init must be 'data-free' or 'mulaw'")

    flags = {id(p): p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(train_other)
    pqs = {}
    try:
        for name, mod, kind, bits, _ in targets:
            c, s = inits[name]
            if uniform:
                pq = UniformSTEParam(s, bits, spec.group_size).to(mod.weight.device)
            else:
                pq = SoftQuantParam(c, s, spec.mu, spec.window, spec.group_size, window_tol).to(mod.weight.device)
            pq.tau = tau_start
            parametrize.register_parametrization(mod, "weight", pq)
            mod.parametrizations.weight.original.requires_grad_(train_weights)
            pqs[name] = (mod, pq, bits)
        centroids = [pq.centroids for _, pq, _ in pqs.values() if not uniform]
        groups = [{"params": centroids, "lr": lr if centroid_lr is None else centroid_lr}] if centroids else []
        latent = [mod.parametrizations.weight.original for mod, _, _ in pqs.values()]
        if train_weights:
            groups.append({"params": latent, "lr": lr})
        if train_other:
            lat = {id(p) for p in latent} | {id(c) for c in centroids}
            other = [p for p in model.parameters() if id(p) not in lat and p.requires_grad]
            if other:
                groups.append({"params": other, "lr": lr})
        opt = torch.optim.Adam(groups)
        model.train()
        start = 0
        saved = resume.load() if resume is not None else None
        if saved is not None:
            if not 0 < saved["step"] <= steps:
                raise ValueError(f"{resume.path}: its state does not fit this run (step {saved['step']} of {steps})")
            # latent weights, centroids (parameters of the parametrizations) and, with train_other, the rest
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            torch.set_rng_state(saved["rng"])
            start = int(saved["step"])
            saved = None  # with release(): nothing holds the saved copy of the weights while training
            resume.release()

        def stream():
            for _ in itertools.count():
                yield from batches

        it = iter(stream())
        for _ in range(start):  # the batches the saved steps consumed
            next(it)

        def snapshot(done):  # written at once by the caller: views, no copies
            return {
                "step": done,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": torch.get_rng_state(),
            }

        for step in range(start, steps):
            frac = step / max(1, steps - 1)
            tau = tau_start * (tau_end / tau_start) ** frac
            for _, pq, _ in pqs.values():
                pq.tau = tau
            batch = next(it)
            loss = loss_fn(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for c in centroids:
                    c.clamp_(-1.0, 1.0)
            if callback is not None:
                callback(step, tau, float(loss.detach()))
            if resume is not None and step + 1 < steps and resume.due():
                resume.save(snapshot(step + 1))
        # end hard
        layers = {}
        with torch.no_grad():
            for name, (mod, pq, bits) in pqs.items():
                W = mod.parametrizations.weight.original
                kind = "conv" if not isinstance(mod, nn.Linear) else "linear"
                if uniform:
                    layers[name] = make_layer(
                        pq.indices(W),
                        uniform_grid(bits),
                        pq.scales,
                        bits,
                        tuple(W.shape),
                        0.0,
                        "uniform",
                        kind,
                        spec.group_size,
                    )
                    continue
                y, _ = pq.companded(W)
                c = torch.sort(pq.centroids.detach(), dim=-1).values
                idx = hard_assign(y.reshape(-1), c[0]).view_as(y) if c.shape[0] == 1 else hard_assign(y, c)
                layers[name] = make_layer(idx, c, pq.scales, bits, tuple(W.shape), spec.mu, "gq", kind, spec.group_size)
    finally:
        for name, (mod, pq, bits) in pqs.items():
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
        for p in model.parameters():
            if id(p) in flags:
                p.requires_grad_(flags[id(p)])
    model.eval()
    packed_wo_float = PackedModel(layers, {})
    apply_packed(model, packed_wo_float, load_float=False)
    float_tensors, aliases = _float_state(model, spec, [model.get_submodule(n).weight for n in layers])
    meta = _meta(
        spec,
        layers,
        skipped,
        mode="qat",
        qat={
            "steps": steps,
            "lr": lr,
            "centroid_lr": centroid_lr,
            "train_weights": train_weights,
            "train_other": train_other,
            "tau_start": tau_start,
            "tau_end": tau_end,
            "init": init,
            "window_tol": window_tol,
        },
    )
    return PackedModel(layers, meta, float_tensors, aliases)
