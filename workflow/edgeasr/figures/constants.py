"""Names and numbers shared by the figure modules: the cells table's schema, the study's conventions, labels."""

from __future__ import annotations

from ..aggregate import RUN_COLUMNS, VERSION_COLUMNS
from ..energy.summarize import KEYS as ENERGY_KEYS

STATUSES = ("ok", "failed", "unsupported")
CLEAN = "clean"
STUDY_NOISY_KIND = "uniform"  # the study's "noisy" set: additive uniform noise, amplitude 0.1
PAPER_DEVICE = "Jetson Orin Nano"
PAPER_LABEL = f"study (arXiv 2405.01004), measured on a {PAPER_DEVICE}"
PAPER_AUDIO_S = 328.3  # the study's test set: LibriSpeech dev-clean 3752/4944, 70 utterances
PAPER_PRECISION = {"float16": "fp16", "float32": "fp32", "int8": "int8", "fp16": "fp16", "fp32": "fp32"}
PAPER_CONDITION = {"clean": CLEAN, "noisy": STUDY_NOISY_KIND}
# Parameter counts of the study's Whisper models (millions, from the Whisper model card), used only to
# order the study's own values in the findings table.
STUDY_MODEL_PARAMS_M = {"whisper-tiny": 39, "whisper-base": 74, "whisper-small": 244, "whisper-medium": 769}
PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")
BASELINE_PRECISION = "fp32"
ENERGY_METRICS = ("energy_j", "energy_above_idle_j", "paper_style_energy_j")
MEMORY_METRICS = ("peak_rss_mb", "peak_accel_mem_mb")
EFFECT_METRICS = ("wer_pct", "rtf", "peak_rss_mb", "peak_accel_mem_mb") + ENERGY_METRICS
# findings: "fp16 roughly halves the energy" counts as supported when the median fp16/fp32 energy ratio
# is at most this (the study's own ratios are 0.46-0.52).
FP16_HALVES_MAX_RATIO = 0.65

REQUIRED_COLUMNS = ("model", "engine", "precision", "condition", "status")
NUMERIC_COLUMNS = (
    "model_params_m",
    "snr_db",
    "noise_amplitude",
    "weight_bits",
    *RUN_COLUMNS,  # defined once (edgeasr.aggregate.RUN_COLUMNS)
    "param_bytes",
    "disk_bytes",
    "wer_pct",
    "wer_ci_low_pct",
    "wer_ci_high_pct",
    "cer_pct",
    # the energy step's numeric columns, defined once (edgeasr.energy.summarize.KEYS)
    *(k for k in ENERGY_KEYS if k not in ("energy_backend", "energy_rail")),
)
TEXT_COLUMNS = (
    "paper_model",
    "noise_kind",
    "status_reason",
    "device",
    "device_name",
    "compute_type",
    "precision_method",
    "energy_backend",
    "energy_rail",
    *VERSION_COLUMNS,  # defined once (edgeasr.aggregate.VERSION_COLUMNS)
    "host",
    "cpu_model",
    "gpu_model",
    "git_commit",
    "config_hash",
    "finished_utc",
)

METRIC_LABELS = {
    "wer_pct": "WER (%)",
    "rtf": "real-time factor (processing s / audio s)",
    "rtf_with_load": "real-time factor incl. model load",
    "peak_rss_mb": "peak host memory, RSS (MB)",
    "peak_accel_mem_mb": "peak accelerator memory (MB)",
    "energy_j": "energy in the transcription window (J)",
    "energy_above_idle_j": "energy above idle (J)",
    "paper_style_energy_j": "energy, the study's method (J)",
    "transcribe_s": "transcription time (s)",
}
METRIC_SHORT = {
    "wer_pct": "WER",
    "rtf": "RTF",
    "peak_rss_mb": "memory (RSS)",
    "peak_accel_mem_mb": "accel. memory",
    "energy_j": "energy",
    "energy_above_idle_j": "energy above idle",
    "paper_style_energy_j": "energy (study method)",
}
