"""Energy measurement: power loggers around a measurement window, and their parsing.

    from edgeasr.energy import make_meter, summarize, resolve_backend, EnergyError
    backend = resolve_backend("auto")          # "tegrastats" | "nvml" | "rapl" | "none"
    meter = make_meter(backend, log_path=..., markers_path=..., interval_ms=100, idle_s=2.0,
                       tegrastats_path="/usr/bin/tegrastats", use_sudo=False)
    with meter:
        ...load model, warm up...
        meter.begin_window("transcribe"); ...; meter.end_window("transcribe")
    cols = summarize(backend, log_path, markers_path, audio_s=..., n_utterances=...)

See docs/energy.md for what each column means and its resolution and error.
"""

from .errors import EnergyError, EnergyWarning
from .integrate import counter_delta, integrate, stitch_restarts, unwrap_counter
from .markers import read_markers
from .meters import (
    BACKENDS,
    TEGRASTATS_PATH,
    Meter,
    available_rails,
    describe_backends,
    find_tegrastats,
    make_meter,
    resolve_backend,
)
from .rawlog import read_csv_log
from .summarize import DEFAULT_INPUT_RAILS, KEYS, paper_style_energy_j, summarize
from .tegrastats import fit_line_times, parse_tegrastats, parse_tegrastats_line

__all__ = [
    "EnergyError",
    "EnergyWarning",
    "make_meter",
    "summarize",
    "resolve_backend",
    "describe_backends",
    "parse_tegrastats",
    "parse_tegrastats_line",
    "integrate",
    "counter_delta",
    "unwrap_counter",
    "stitch_restarts",
    "fit_line_times",
    "read_markers",
    "read_csv_log",
    "paper_style_energy_j",
    "Meter",
    "BACKENDS",
    "KEYS",
    "DEFAULT_INPUT_RAILS",
    "find_tegrastats",
    "TEGRASTATS_PATH",
    "available_rails",
]
