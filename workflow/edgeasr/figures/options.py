"""The ``figures:`` config section: defaults, descriptions and checks (:func:`resolve_options`)."""

from __future__ import annotations

import math

from .constants import ENERGY_METRICS, MEMORY_METRICS

DEFAULT_OPTIONS: dict = {
    "formats": ["png", "svg"],
    "dpi": 150,
    "show_paper": True,
    "fig4_noisy_amplitude": 0.1,
    "fig8_precision": "auto",
    "energy_metric": "energy_j",
    "memory_metric": "peak_rss_mb",
    "rtf_include_load": False,
    "snr_ci_style": "band",
    "pareto_x": "auto",
    "pareto_by_condition": False,
    "precision_effect_condition": "clean",
}
OPTION_DESCRIPTIONS = {
    "formats": "file formats written for every figure (png, svg, pdf)",
    "dpi": "resolution of raster formats (50-600)",
    "show_paper": "draw the study's values (Jetson Orin Nano) as a separate marker layer",
    "fig4_noisy_amplitude": "Fig. 4 'noisy' = the `uniform` condition whose noise_amplitude is closest to this",
    "fig8_precision": "precision shown in Fig. 8; `auto` = fp16 when any clean fp16 cell ran, else the "
    "precision with most clean cells that ran",
    "energy_metric": "energy column plotted and used in findings: energy_j, energy_above_idle_j, paper_style_energy_j",
    "memory_metric": "memory column plotted: peak_rss_mb (host) or peak_accel_mem_mb (accelerator)",
    "rtf_include_load": "Fig. 7: add model load time to the RTF, as the study did",
    "snr_ci_style": "bootstrap-interval style in the WER-vs-SNR figure: band or bars",
    "pareto_x": "cost axis of the Pareto front: auto (energy when measured, else time), energy, time",
    "pareto_by_condition": "also draw one Pareto panel per noise condition",
    "precision_effect_condition": "condition shown in the precision-effect heat map, or `all` (one panel each)",
}
OPTION_CHOICES = {
    "fig8_precision": None,  # free text (any precision name) or auto
    "energy_metric": ENERGY_METRICS,
    "memory_metric": MEMORY_METRICS,
    "snr_ci_style": ("band", "bars"),
    "pareto_x": ("auto", "energy", "time"),
}
FORMATS = ("png", "svg", "pdf")


def _parse_bool(value, key):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"figures option {key}: expected true/false, got {value!r}")


def coerce_option(key: str, value):
    """Check one option (from config or ``--option k=v``) and return it with the default's type."""
    if key not in DEFAULT_OPTIONS:
        raise ValueError(f"unknown figures option {key!r}; known: {', '.join(sorted(DEFAULT_OPTIONS))}")
    default = DEFAULT_OPTIONS[key]
    if isinstance(default, bool):
        return _parse_bool(value, key)
    if key == "formats":
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        items = [str(i).strip().lower().lstrip(".") for i in items if str(i).strip()]
        bad = [i for i in items if i not in FORMATS]
        if not items or bad:
            raise ValueError(f"figures option formats: expected a non-empty list of {FORMATS}, got {value!r}")
        return list(dict.fromkeys(items))
    if key == "dpi":
        try:
            dpi = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"figures option dpi: expected an integer 50-600, got {value!r}") from None
        if not 50 <= dpi <= 600 or isinstance(value, bool):
            raise ValueError(f"figures option dpi: expected an integer 50-600, got {value!r}")
        return dpi
    if isinstance(default, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"figures option {key}: expected a number, got {value!r}") from None
        if not number > 0 or not math.isfinite(number):
            raise ValueError(f"figures option {key}: expected a positive number, got {value!r}")
        return number
    text = str(value).strip()
    choices = OPTION_CHOICES.get(key)
    if choices and text not in choices:
        raise ValueError(f"figures option {key}: expected one of {', '.join(choices)}, got {value!r}")
    if not text:
        raise ValueError(f"figures option {key}: empty value")
    return text


def resolve_options(config_section: dict | None) -> dict:
    """Defaults overlaid with a ``figures:`` config section; every value checked (clear error if bad)."""
    section = dict(config_section or {})
    out = dict(DEFAULT_OPTIONS)
    for key, value in section.items():
        out[key] = coerce_option(key, value)
    return out
