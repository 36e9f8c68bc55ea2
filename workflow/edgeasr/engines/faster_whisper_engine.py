"""faster-whisper (CTranslate2) engine: Whisper models in CTranslate2 format."""

from __future__ import annotations

import numpy as np

from .base import Engine


class FasterWhisperEngine(Engine):
    name = "faster-whisper"

    def load(self) -> None:
        from faster_whisper import WhisperModel

        s = self.settings
        device = "cuda" if s.device in ("cuda", "jetson") else "cpu"
        self.model = WhisperModel(
            str(self.model_dir),
            device=device,
            compute_type=self.plan.compute_type,
            cpu_threads=s.threads,
            num_workers=1,
        )
        self._lang = s.language if self.model.model.is_multilingual else None

    def transcribe(self, batch: list[np.ndarray]) -> list[str]:
        if len(batch) == 1:
            return [self._one(batch[0])]
        return self._batched(batch)

    def _one(self, audio: np.ndarray) -> str:
        # greedy, English, no VAD, no timestamps, no conditioning, and none of faster-whisper's
        # heuristics that drop or re-decode a window (no-speech skip, log-prob / compression-ratio
        # fallback): one plain decoding pass per utterance, as the transformers engine does
        segments, _ = self.model.transcribe(
            audio.astype(np.float32),
            language=self._lang,
            task="transcribe",
            beam_size=self.settings.beam_size,
            best_of=1,
            temperature=0.0,
            vad_filter=False,
            without_timestamps=True,
            condition_on_previous_text=False,
            max_new_tokens=self.settings.max_new_tokens,
            no_speech_threshold=None,
            log_prob_threshold=None,
            compression_ratio_threshold=None,
        )
        return "".join(seg.text for seg in segments).strip()

    def _batched(self, batch: list[np.ndarray]) -> list[str]:
        """Several utterances (each <= 30 s) in one CTranslate2 generate call."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        m = self.model
        tok = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, task="transcribe", language=self._lang)
        prompt = m.get_prompt(tok, previous_tokens=[], without_timestamps=True)
        n_frames = m.feature_extractor.nb_max_frames
        feats = []
        for a in batch:
            f = m.feature_extractor(a.astype(np.float32))[:, :n_frames]
            feats.append(np.pad(f, ((0, 0), (0, n_frames - f.shape[1]))))
        enc = m.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(feats), np.float32)), to_cpu=False
        )
        res = m.model.generate(
            enc,
            [prompt] * len(batch),
            beam_size=self.settings.beam_size,
            max_length=min(self.settings.max_new_tokens + len(prompt), 448),
            suppress_blank=True,
            suppress_tokens=[-1],
            return_scores=False,
        )
        return [tok.decode([t for t in r.sequences_ids[0] if t < tok.eot]).strip() for r in res]

    def param_count(self) -> int | None:
        from ..ct2_reader import ct2_param_count

        return ct2_param_count(self.model_dir)

    def param_bytes(self) -> int | None:
        from ..ct2_reader import ct2_param_bytes

        return ct2_param_bytes(self.model_dir, self.plan.compute_type)

    def peak_accel_mem_bytes(self) -> int | None:
        if self.settings.device == "cpu":
            return None
        from ..provenance import nvml_process_memory

        return nvml_process_memory()

    def describe(self) -> dict:
        import ctranslate2

        return {"compute_type": self.plan.compute_type, "backend": f"ctranslate2 {ctranslate2.__version__}"}
