"""transformers engine: Whisper / SpeechT5 (seq2seq, generate) and CTC models (argmax + tokenizer decode).

Precisions: float dtypes via ``torch_dtype``; ``int8`` via torchao int8 weight-only quantization on a
GPU, or torch's dynamic int8 quantization of ``nn.Linear`` on a CPU (torchao has no fast CPU int8
path); configured quantizers (General Quantizer, uniform k-bit) load a packed checkpoint.
"""

from __future__ import annotations

import numpy as np

from .base import Engine


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name or "float32"]


def ctc_decode(tokenizer, ids) -> str:
    """Greedy CTC: merge repeated frames, drop blanks (the pad token), then the other special tokens.

    The tokenizer's own ``decode(skip_special_tokens=True)`` drops the blank before merging, which
    joins a letter doubled across a blank ("l <pad> l" -> "l"); without skipping, ``<s>`` / ``</s>``
    / ``<unk>`` land in the text."""
    blank = tokenizer.pad_token_id
    out, prev = [], None
    for t in (int(x) for x in ids):
        if t != prev and t != blank:
            out.append(t)
        prev = t
    return tokenizer.decode(out, skip_special_tokens=True, group_tokens=False).strip()


#: Modules whose forward reads their Linear children's raw ``.weight`` / ``.bias`` tensors (WavLM's
#: attention calls ``F.multi_head_attention_forward`` with them), which a dynamic-quantized Linear no
#: longer has: their projections stay in float.
FLOAT_LINEAR_PARENTS = ("WavLMAttention",)


def dynamic_int8(model):
    """torch's dynamic int8 quantization of every ``nn.Linear`` the model's code lets be quantized.

    Returns (model, description); the description says how many Linear layers were quantized and
    which were kept in float, and why."""
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    kept = set()
    for name, mod in model.named_modules():
        if type(mod).__name__ in FLOAT_LINEAR_PARENTS:
            kept |= {f"{name}.{c}" for c, sub in mod.named_children() if isinstance(sub, torch.nn.Linear)}
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    spec = {n: default_dynamic_qconfig for n in linear if n not in kept}
    model = quantize_dynamic(model, spec, dtype=torch.qint8)
    desc = (
        f"torch.ao.quantization.quantize_dynamic qint8 Linear (torch {torch.__version__}): {len(spec)} of "
        f"{len(linear)} Linear layers"
    )
    if kept:
        parents = sorted({type(m).__name__ for m in model.modules() if type(m).__name__ in FLOAT_LINEAR_PARENTS})
        desc += f"; {len(kept)} kept in float32 ({', '.join(parents)} reads their raw weights)"
    return model, desc


class TransformersEngine(Engine):
    name = "transformers"

    def load(self) -> None:
        import torch

        s = self.settings
        torch.set_num_threads(s.threads)
        self.device = "cuda" if s.device in ("cuda", "jetson") else "cpu"
        dtype = _dtype(self.plan.torch_dtype)
        fam = s.family
        if fam == "whisper":
            from transformers import WhisperForConditionalGeneration, WhisperProcessor

            self.processor = WhisperProcessor.from_pretrained(self.model_dir)
            model = WhisperForConditionalGeneration.from_pretrained(self.model_dir, dtype=dtype)
        elif fam == "speecht5":
            from transformers import SpeechT5ForSpeechToText, SpeechT5Processor

            self.processor = SpeechT5Processor.from_pretrained(self.model_dir)
            model = SpeechT5ForSpeechToText.from_pretrained(self.model_dir, dtype=dtype)
        elif fam == "ctc":
            from transformers import AutoModelForCTC, AutoProcessor

            self.processor = AutoProcessor.from_pretrained(self.model_dir)
            model = AutoModelForCTC.from_pretrained(self.model_dir, dtype=dtype)
        else:
            raise ValueError(f"family {fam!r} unknown to the transformers engine")
        model.eval()
        # parameters of the architecture (tied weights once), counted before any quantizer: dynamic
        # int8 quantizes Whisper's proj_out separately from the token embedding it was tied to, which
        # param_bytes then shows
        self._n_params = sum(p.numel() for p in model.parameters())
        method = self.plan.method
        self.quantizer = "none"
        if method == "dynamic-int8":
            model, self.quantizer = dynamic_int8(model)
        model.to(self.device)
        if method == "torchao-int8":
            import torchao
            from torchao.quantization import Int8WeightOnlyConfig, quantize_

            quantize_(model, Int8WeightOnlyConfig())
            self.quantizer = f"torchao {torchao.__version__} Int8WeightOnlyConfig"
        elif method in ("gq", "uniform"):
            from ..gq import apply_packed, load_packed

            packed = load_packed(self.packed_path)
            apply_packed(model, packed, mode=self.decompression)
            self.quantizer = f"edgeasr.gq {method} packed, {self.decompression} ({self.packed_path})"
        self.model = model
        self.dtype = dtype
        self._is_en = fam == "whisper" and getattr(model.generation_config, "is_multilingual", True) is False

    packed_path = None  # set by the cell for gq / uniform precisions
    decompression = "dequant-at-load"  # or "on-forward" (quantizers.<name>.decompression)

    def _features(self, batch: list[np.ndarray]):
        fam = self.settings.family
        audio = [a.astype(np.float32) for a in batch]
        self._batch_audio = audio
        if fam == "whisper":
            if self.settings.options.get("frontend") == "faster-whisper":
                return {"input_features": self._fw_features(audio).to(self.device, self.dtype)}
            feats = self.processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
            return {"input_features": feats.input_features.to(self.device, self.dtype)}
        inputs = self.processor(audio=audio, sampling_rate=16000, return_tensors="pt", padding=True)
        out = {"input_values": inputs["input_values"].to(self.device, self.dtype)}
        if "attention_mask" in inputs:
            out["attention_mask"] = inputs["attention_mask"].to(self.device)
        return out

    def _fw_features(self, audio: list[np.ndarray]):
        """faster-whisper's log-mel front end: the clip alone, last frame dropped, log-mel padded with 0
        to 30 s (docs/ct2-conversion.md). With it the two engines decode the same text."""
        import torch
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.feature_extractor import FeatureExtractor

        if not hasattr(self, "_fw_fe"):
            self._fw_fe = FeatureExtractor(feature_size=self.model.config.num_mel_bins)
        return torch.from_numpy(np.stack([pad_or_trim(self._fw_fe(a)[:, :-1]) for a in audio]))

    def transcribe(self, batch: list[np.ndarray]) -> list[str]:
        import torch

        s = self.settings
        with torch.inference_mode():
            inputs = self._features(batch)
            if s.family == "ctc":
                out = self.model(**inputs)
                ids = torch.argmax(out.logits, dim=-1).cpu().numpy()
                lengths = self._ctc_lengths(inputs, ids.shape[1])
                return [ctc_decode(self.processor.tokenizer, row[:n]) for row, n in zip(ids, lengths)]
            kwargs = dict(num_beams=s.beam_size, do_sample=False, max_new_tokens=s.max_new_tokens)
            if s.family == "whisper":
                kwargs.update(return_timestamps=False)
                if not self._is_en:
                    kwargs.update(language=s.language, task="transcribe")
            ids = self.model.generate(**inputs, **kwargs)
            return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]

    def _ctc_lengths(self, inputs, frames: int) -> list[int]:
        """Output frames that belong to each utterance of a padded batch (the rest decode padding)."""
        mask = inputs.get("attention_mask")
        if mask is None:
            n = [len(a) for a in self._batch_audio]
        else:
            n = mask.sum(-1).tolist()
        f = self.model._get_feat_extract_output_lengths
        import torch

        return [min(frames, int(f(torch.tensor(int(x))))) for x in n]

    def param_count(self) -> int | None:
        return int(self._n_params)

    def param_bytes(self) -> int | None:
        return int(sum(t.numel() * t.element_size() for t in self._tensors()))

    def _tensors(self):
        """Every weight tensor once (tied weights counted once; packed quantized weights included)."""
        import torch

        seen, out = set(), []
        for v in self.model.state_dict(keep_vars=True).values():
            if not isinstance(v, torch.Tensor):
                continue
            t = v
            if hasattr(t, "dequantize") and t.is_quantized:
                key = ("q", t.data_ptr() if hasattr(t, "data_ptr") else id(t))
                if key not in seen:
                    seen.add(key)
                    out.append(t.int_repr() if hasattr(t, "int_repr") else t)
                continue
            try:
                key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
            except Exception:
                key = id(t)
            if key in seen:
                continue
            seen.add(key)
            out.append(t)
        # dynamic-quantized Linear keeps its packed weight outside state_dict tensors
        for mod in self.model.modules():
            w = getattr(mod, "weight", None)
            if callable(w) and hasattr(mod, "_packed_params"):
                try:
                    wt = mod.weight()
                    out.append(wt.int_repr())
                    b = mod.bias()
                    if b is not None:
                        out.append(b)
                except Exception:
                    pass
        return out

    def accel_memory_reset(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak_accel_mem_bytes(self) -> int | None:
        import torch

        if self.device == "cuda":
            return int(torch.cuda.max_memory_allocated())
        return None

    def describe(self) -> dict:
        import torch
        import transformers

        return {
            "compute_type": self.plan.compute_type,
            "quantizer": self.quantizer,
            "backend": f"transformers {transformers.__version__} / torch {torch.__version__}",
        }
