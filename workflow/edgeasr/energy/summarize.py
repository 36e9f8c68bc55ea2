"""From a raw power log and the meter's markers to the cells-table energy columns."""
from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import EnergyError, EnergyWarning
from .integrate import counter_delta, integrate, samples_in, unwrap_counter
from .markers import find_idle, find_windows, first, read_markers
from .rawlog import read_csv_log
from .tegrastats import parse_tegrastats

__all__ = ["summarize", "load_traces", "choose_rails", "paper_style_energy_j", "KEYS",
           "DEFAULT_INPUT_RAILS", "Trace", "PAPER_IDLE_MW", "PAPER_GPU_LOAD_PCT",
           "PAPER_RAIL"]

KEYS = ("energy_backend", "energy_rail", "energy_j", "mean_power_w", "idle_power_w",
        "energy_above_idle_j", "energy_j_per_audio_s", "energy_j_per_utterance",
        "paper_style_energy_j", "window_s", "energy_samples")

# the board's total input rail, first present wins (Orin: VDD_IN; AGX Orin: VIN_SYS_5V0;
# Nano/TX1 on JetPack 4: POM_5V_IN); Xavier has none (see choose_rails)
DEFAULT_INPUT_RAILS = ("VDD_IN", "VIN_SYS_5V0", "VIN", "POM_5V_IN")

# the reference study's own recipe, kept only for comparison
PAPER_RAIL = "VDD_CPU_GPU_CV"
PAPER_IDLE_MW = 515.0
PAPER_GPU_LOAD_PCT = 40.0
PAPER_SECONDS_PER_SAMPLE = 1.0


@dataclass
class Trace:
    """One rail: ``kind`` "power" (values W) or "energy" (cumulative J), times in s."""
    rail: str
    kind: str
    t: np.ndarray
    v: np.ndarray
    spacing_s: float

    def energy(self, t0: float, t1: float, tol_s: float, path) -> float:
        if self.t.size == 0:
            raise EnergyError(f"{path}: rail {self.rail} has no sample")
        short = max(self.t[0] - t0, t1 - self.t[-1], 0.0)
        if short > tol_s:
            raise EnergyError(
                f"{path}: rail {self.rail}: the window [{t0:.3f}, {t1:.3f}] lies {short:.3f} s "
                f"outside the samples [{self.t[0]:.3f}, {self.t[-1]:.3f}] (logger started late, "
                f"stopped early or died?)")
        if short > 0:
            warnings.warn(f"{path}: rail {self.rail}: window edge {short * 1000:.0f} ms beyond "
                          f"the samples; edge value held", EnergyWarning, stacklevel=3)
        f = integrate if self.kind == "power" else counter_delta
        return f(self.t, self.v, t0, t1, extrapolate=short > 0)

    def count(self, t0: float, t1: float) -> int:
        return samples_in(self.t, t0, t1)


def _spacing(t: np.ndarray) -> float:
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else float("nan")


def load_traces(backend: str, log_path, markers: list[dict], interval_ms=None):
    """-> (traces {rail: Trace}, clock key of the markers ("wall_s"/"mono_s"), extra)

    ``extra`` holds the tegrastats DataFrame (``df``) for the paper-style figure."""
    log_path = Path(log_path)
    extra: dict = {}
    traces: dict[str, Trace] = {}
    if backend == "tegrastats":
        ms = first(markers, "meter_start") or {}
        start = first(markers, "logger_start")
        stop = first(markers, "logger_stop")
        start_w = start["wall_s"] if start else None
        df = parse_tegrastats(log_path, interval_ms or ms.get("interval_ms"),
                              start_wall_s=start_w,
                              stop_wall_s=stop["wall_s"] if stop else None,
                              utc_offset_s=ms.get("utc_offset_s"))
        extra["df"] = df
        for c in df.columns:
            if c.startswith("power_mw__"):
                ok = df[c].notna().to_numpy()
                t = df["t_s"].to_numpy()[ok]
                traces[c[len("power_mw__"):]] = Trace(c[len("power_mw__"):], "power", t,
                                                      df[c].to_numpy()[ok] / 1000.0, _spacing(t))
        return traces, "wall_s", extra
    if backend in ("nvml", "rapl", "ina3221"):
        meta, df = read_csv_log(log_path)
        if meta.get("backend") != backend:
            raise EnergyError(f"{log_path}: written by backend {meta.get('backend')!r}, "
                              f"not {backend!r}")
        t_all = df["t_mono_s"].to_numpy()
        ranges = meta.get("max_energy_range_uj") or {}
        for c in df.columns:
            if "__" not in c:
                continue
            q, rail = c.split("__", 1)
            ok = df[c].notna().to_numpy()
            t, v = t_all[ok], df[c].to_numpy()[ok]
            if q == "energy_mj":
                tr = Trace(rail, "energy", t, (v - v[0]) / 1000.0 if v.size else v, _spacing(t))
            elif q == "energy_uj":
                tr = Trace(rail, "energy", t, unwrap_counter(v, ranges.get(rail)) / 1e6
                           if v.size else v, _spacing(t))
            elif q == "power_mw":
                if rail in traces:  # a counter for this rail was read already: prefer it
                    continue
                tr = Trace(rail, "power", t, v / 1000.0, _spacing(t))
            else:
                continue
            traces[rail] = tr
        extra["meta"] = meta
        return traces, "mono_s", extra
    raise EnergyError(f"summarize: unknown energy backend {backend!r}")


def choose_rails(rails, available: list[str], backend: str) -> list[str]:
    """Rails counted in energy_j. ``rails``: None (default), "NAME", "A+B" or [names]."""
    if not available:
        raise EnergyError("the log holds no power rail (e.g. Jetson Thor's tegrastats prints "
                          "none: use another backend)")
    if rails:
        want = rails.split("+") if isinstance(rails, str) else list(rails)
        want = [w.strip() for w in want if w and w.strip()]
        lookup = {a.upper(): a for a in available}
        out = []
        for w in want:
            if w in available:
                out.append(w)
            elif w.upper() in lookup:
                out.append(lookup[w.upper()])
            else:
                raise EnergyError(f"rail {w!r} is not in the log; rails present: "
                                  f"{', '.join(available)}")
        return out
    if backend in ("tegrastats", "ina3221"):
        for r in DEFAULT_INPUT_RAILS:
            if r in available:
                return [r]
        warnings.warn(f"no board input rail ({', '.join(DEFAULT_INPUT_RAILS)}) in the log (e.g. "
                      f"AGX Xavier): energy_j counts the SUM of the rails present "
                      f"({'+'.join(available)}), which leaves out whatever they do not cover; "
                      f"energy_rail records it. Set the rails explicitly to choose.",
                      EnergyWarning, stacklevel=3)
        return list(available)
    if backend == "rapl":
        pk = [r for r in available if r.lower().startswith("package")]
        if pk:
            return pk
        warnings.warn(f"no RAPL package domain; counting {available[0]}", EnergyWarning,
                      stacklevel=3)
        return [available[0]]
    return [available[0]]


def paper_style_energy_j(df: pd.DataFrame | None, t0: float, t1: float) -> float | None:
    """The study's figure: sum over samples in the window with GPU load > 40 % of
    (VDD_CPU_GPU_CV - 515 mW) x 1 s. None where the rail or the GPU load is absent."""
    col = f"power_mw__{PAPER_RAIL}"
    if df is None or col not in df.columns or df["gpu_load_pct"].isna().all():
        return None
    sel = (df["t_s"] >= t0) & (df["t_s"] <= t1) & (df["gpu_load_pct"] > PAPER_GPU_LOAD_PCT) \
        & df[col].notna()
    return float(((df.loc[sel, col] - PAPER_IDLE_MW) / 1000.0 * PAPER_SECONDS_PER_SAMPLE).sum())


def _div(a, b):
    if a is None or b is None:
        return None
    try:
        b = float(b)
    except (TypeError, ValueError):
        return None
    if not b > 0 or not math.isfinite(b):
        return None
    return float(a) / b


def summarize(backend: str, log_path, markers_path, audio_s: float | None = None,
              n_utterances: int | None = None, rails=None, interval_ms: float | None = None,
              window: str = "transcribe") -> dict:
    """Energy columns for one cell.

    Keys: ``energy_backend``, ``energy_rail`` (the rail counted, "A+B" for a sum),
    ``energy_j`` (J on that rail inside the window), ``mean_power_w``, ``idle_power_w``
    (mean power between idle_begin and idle_end), ``energy_above_idle_j``
    (energy_j - idle_power_w * window_s), ``energy_j_per_audio_s``,
    ``energy_j_per_utterance`` (energy_j divided; audio_s and n_utterances are per
    window), ``paper_style_energy_j`` (tegrastats only), ``window_s``, ``energy_samples``
    (samples of the counted rail inside the window), then ``energy_j__<RAIL>`` for every
    other rail in the log. When the window was measured several times (several windows
    with that name), each value is the median over them and energy_samples their sum.
    Backend ``none``: every value empty (None), energy_rail "".
    ``interval_ms``: the sampling interval; the one the meter recorded in its markers wins
    (with a warning when they differ). ``rails``: None (the board's default, see
    choose_rails), "RAIL", "A+B" (a sum) or a list (a sum).
    """
    b = (backend or "").strip().lower()
    row: dict = {k: None for k in KEYS}
    row["energy_backend"] = b or "none"
    row["energy_rail"] = ""
    if b in ("", "none"):
        row["energy_backend"] = "none"
        return row
    markers_path = Path(markers_path)
    markers = read_markers(markers_path)
    ms = first(markers, "meter_start")
    if b == "auto":
        if not ms:
            raise EnergyError(f"{markers_path}: no meter_start marker to tell the backend")
        b = ms["backend"]
        row["energy_backend"] = b
        if b == "none":
            return row
    if ms and ms.get("backend") not in (None, b):
        raise EnergyError(f"{markers_path}: measured with backend {ms.get('backend')!r}, "
                          f"summarized as {b!r}")
    wins_all = find_windows(markers, markers_path)
    if window in wins_all:
        wins = wins_all[window]
    elif len(wins_all) == 1:
        (other, wins), = wins_all.items()
        warnings.warn(f"{markers_path}: no window {window!r}; using the only window {other!r}",
                      EnergyWarning, stacklevel=2)
    else:
        raise EnergyError(f"{markers_path}: no window {window!r} (windows: "
                          f"{', '.join(wins_all) or 'none'})")

    if ms and ms.get("interval_ms"):
        if interval_ms and abs(float(interval_ms) - float(ms["interval_ms"])) > 1e-9:
            warnings.warn(f"{markers_path}: the meter sampled every {ms['interval_ms']} ms, "
                          f"not {interval_ms} ms as given; using the meter's", EnergyWarning,
                          stacklevel=2)
        interval_ms = float(ms["interval_ms"])
    traces, clock, extra = load_traces(b, log_path, markers, interval_ms)
    counted = choose_rails(rails, list(traces), b)
    row["energy_rail"] = "+".join(counted)
    others = [r for r in traces if not (len(counted) == 1 and r == counted[0])]

    def tol(tr: Trace) -> float:
        sp = tr.spacing_s if math.isfinite(tr.spacing_s) else 0.0
        return 1.5 * max(sp, (float(interval_ms) / 1000.0) if interval_ms else 0.0)

    idle = find_idle(markers)
    idle_power = None
    if idle is not None:
        i0, i1 = idle[0][clock], idle[1][clock]
        if i1 > i0:
            idle_power = sum(traces[r].energy(i0, i1, tol(traces[r]), log_path)
                             for r in counted) / (i1 - i0)

    per = []
    for wb, we in wins:
        t0, t1 = wb[clock], we[clock]
        if not t1 > t0:
            raise EnergyError(f"{markers_path}: line {we['_line']}: window of zero length")
        w = t1 - t0
        e = sum(traces[r].energy(t0, t1, tol(traces[r]), log_path) for r in counted)
        d = {
            "energy_j": e,
            "mean_power_w": e / w,
            "idle_power_w": idle_power,
            "energy_above_idle_j": None if idle_power is None else e - idle_power * w,
            "energy_j_per_audio_s": _div(e, audio_s),
            "energy_j_per_utterance": _div(e, n_utterances),
            "paper_style_energy_j": (paper_style_energy_j(extra.get("df"), wb["wall_s"], we["wall_s"])
                                     if b == "tegrastats" else None),
            "window_s": w,
            "energy_samples": traces[counted[0]].count(t0, t1),
        }
        for r in others:
            d[f"energy_j__{r}"] = traces[r].energy(t0, t1, tol(traces[r]), log_path)
        per.append(d)

    for k in per[0]:
        vals = [p[k] for p in per]
        if k == "energy_samples":
            row[k] = int(sum(vals))
        elif any(v is None for v in vals):
            row[k] = None
        else:
            row[k] = float(statistics.median(vals))
    return row
