"""QuantSpec: what to quantize, how, and with how many bits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from fnmatch import fnmatchcase
from typing import Mapping

__all__ = ["QuantSpec", "DEFAULT_SKIP"]

# Embeddings, norms and the output projection (Whisper's proj_out is tied to
# model.decoder.embed_tokens) stay float.  Only nn.Linear (and, with quantize_conv, Conv1d/2d)
# modules are ever candidates, so nn.Embedding / LayerNorm are never quantized anyway; the
# patterns also keep out Linear layers whose names say they are embeddings or norms.
DEFAULT_SKIP = ("*embed*", "*norm*", "proj_out")


@dataclass
class QuantSpec:
    """Quantization settings.

    method : "gq" (mu-law companding + learned centroids) or "uniform" (ablation).
    bits : an int (all candidate layers) or an ordered mapping fnmatch-pattern -> bits over
        module names, first match wins; a layer no pattern matches, or matched to None,
        stays float (put ``"*": b`` last as the default).  Bits in 1..8.
    mu : mu-law parameter (gq only; the uniform method always stores mu = 0).
    per_channel : one max-magnitude scale per output channel (else one per tensor).
    group_size : > 0: one max-magnitude scale per that many consecutive weights of each row
        (group-wise scales, e.g. 64 or 128; the last group of a row may be shorter), instead of one
        per row; 0 (default): per_channel decides.
    centroid_group : "tensor" (one centroid table per weight tensor, default) or "channel"
        (one per output channel: better fit, K*4 bytes per row of overhead, slower fit).
    skip : fnmatch patterns over module names that stay float.
    steps, tau_start, tau_end, lr, init, fit_space, window, bins : the data-free fit
        (see :func:`edgeasr.gq.soft.fit_centroids`).
    seed : seeds the only random choice (row subsampling in per-channel fits).
    quantize_conv : also quantize nn.Conv1d/Conv2d weights (Whisper's conv front-end);
        they are written back as float (no packed conv module).
    quantize_tied : quantize a Linear whose weight is shared with another module (e.g. a
        proj_out tied to the token embedding).  Quantizing it quantizes both.
    include_float : store the model's remaining float tensors (biases, embeddings, norms,
        skipped layers) in the packed checkpoint, so it is a complete model.
    float_dtype : None keeps their dtype; "float16"/"bfloat16" casts floating tensors.
    num_threads : torch intra-op threads while quantizing (process-global, restored after;
        None leaves the setting alone).  Default 1: on a shared 2-core machine OpenMP
        synchronisation made 2 threads ~10x slower for whisper-base (see docs).
    """

    method: str = "gq"
    bits: int | Mapping[str, int | None] = 4
    mu: float = 255.0
    per_channel: bool = True
    group_size: int = 0
    skip: tuple = DEFAULT_SKIP
    steps: int = 100
    seed: int = 0
    centroid_group: str = "tensor"
    fit_space: str = "weight"
    init: str = "density"
    tau_start: float = 1.0
    tau_end: float = 1e-4
    lr: float = 0.03
    window: int = 8
    bins: int | None = None
    max_points_per_channel: int = 256
    quantize_conv: bool = False
    quantize_tied: bool = False
    include_float: bool = True
    float_dtype: str | None = None
    num_threads: int | None = 1

    def __post_init__(self):
        if self.method not in ("gq", "uniform"):
            raise ValueError("method must be 'gq' or 'uniform'")
        if self.centroid_group not in ("tensor", "channel"):
            raise ValueError("centroid_group must be 'tensor' or 'channel'")
        if self.fit_space not in ("weight", "companded"):
            raise ValueError("fit_space must be 'weight' or 'companded'")
        if self.float_dtype not in (None, "float32", "float16", "bfloat16"):
            raise ValueError("float_dtype must be None, 'float32', 'float16' or 'bfloat16'")
        if isinstance(self.skip, str):
            self.skip = (self.skip,)
        self.skip = tuple(self.skip)
        if isinstance(self.bits, Mapping):
            self.bits = {str(k): (None if v is None else int(v)) for k, v in self.bits.items()}
            vals = list(self.bits.values())
        elif isinstance(self.bits, (list, tuple)):  # [(pattern, bits), ...] from JSON
            self.bits = {str(k): (None if v is None else int(v)) for k, v in self.bits}
            vals = list(self.bits.values())
        else:
            self.bits = int(self.bits)
            vals = [self.bits]
        for v in vals:
            if v is not None and not 1 <= v <= 8:
                raise ValueError(f"bits must be in 1..8 (or None for float), got {v}")
        if self.mu < 0:
            raise ValueError("mu must be >= 0")
        self.group_size = int(self.group_size or 0)
        if self.group_size < 0:
            raise ValueError(f"group_size must be 0 (no groups) or a positive number of weights, got {self.group_size}")

    def is_skipped(self, name: str) -> bool:
        return any(fnmatchcase(name, p) for p in self.skip)

    def bits_for(self, name: str) -> int | None:
        """Bits for module ``name`` (None = stays float).  Ignores ``skip``."""
        if isinstance(self.bits, int):
            return self.bits
        for pattern, b in self.bits.items():
            if fnmatchcase(name, pattern):
                return b
        return None

    def fit_kwargs(self) -> dict:
        return {
            "steps": self.steps,
            "tau_start": self.tau_start,
            "tau_end": self.tau_end,
            "lr": self.lr,
            "space": self.fit_space,
            "init": self.init,
            "window": self.window,
            "bins": self.bins,
            "num_threads": None,
        }

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skip"] = list(self.skip)
        if isinstance(self.bits, dict):  # keep the order explicit in JSON
            d["bits"] = [[k, v] for k, v in self.bits.items()]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "QuantSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
