"""The engine interface: every model family and engine fits it, so rules need no special cases.

An engine loads a model folder at a planned precision on a device, then maps a batch of 16 kHz mono
float32 arrays to a list of transcripts. Seq2seq (Whisper, SpeechT5) and CTC (wav2vec2, HuBERT,
WavLM, UniSpeech) models differ only inside the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EngineSettings:
    device: str  # cpu | cuda | jetson (resolved)
    threads: int = 1
    language: str = "en"
    beam_size: int = 1
    max_new_tokens: int = 444
    family: str = "whisper"
    options: dict = field(default_factory=dict)


class Engine:
    name = "base"

    def __init__(self, model_dir, plan, settings: EngineSettings):
        self.model_dir, self.plan, self.settings = model_dir, plan, settings

    def load(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def transcribe(self, batch: list[np.ndarray]) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def param_bytes(self) -> int | None:
        return None

    def param_count(self) -> int | None:
        return None

    def accel_memory_reset(self) -> None:
        pass

    def peak_accel_mem_bytes(self) -> int | None:
        return None

    def describe(self) -> dict:
        """What actually ran (stated in the results): e.g. {"compute_type": "int8_float32"}."""
        return {"compute_type": self.plan.compute_type}

    def close(self) -> None:
        pass


def make_engine(engine: str, model_dir, plan, settings: EngineSettings) -> Engine:
    if engine == "faster-whisper":
        from .faster_whisper_engine import FasterWhisperEngine

        return FasterWhisperEngine(model_dir, plan, settings)
    if engine == "transformers":
        from .transformers_engine import TransformersEngine

        return TransformersEngine(model_dir, plan, settings)
    raise ValueError(f"unknown engine {engine!r}; allowed: faster-whisper, transformers")
