"""From a raw power log and the meter's markers to the cells-table energy columns."""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import EnergyError, EnergyWarning
from .integrate import counter_delta, integrate, samples_in, stitch_restarts, unwrap_counter
from .markers import find_idle, find_windows, first, read_markers
from .rawlog import read_csv_log
from .tegrastats import parse_tegrastats

__all__ = [
    "summarize",
    "load_traces",
    "choose_rails",
    "paper_style_energy_j",
    "KEYS",
    "DEFAULT_INPUT_RAILS",
    "Trace",
    "PAPER_IDLE_MW",
    "PAPER_GPU_LOAD_PCT",
    "PAPER_RAIL",
    "CLOCK_STEP_TOL_S",
]

KEYS = (
    "energy_backend",
    "energy_rail",
    "energy_j",
    "mean_power_w",
    "idle_power_w",
    "energy_above_idle_j",
    "energy_j_per_audio_s",
    "energy_j_per_utterance",
    "paper_style_energy_j",
    "window_s",
    "energy_samples",
    "energy_counter_resets",
    "energy_clock_step_s",
)

# the board's total input rail, first present wins: VDD_IN (Orin Nano/NX, TX2), POM_5V_IN
# (Nano, TX1 on JetPack 4), VIN (Thor's carrier INA238, read by jetson-stats). AGX Orin and
# AGX Xavier have none: their rails are summed (see choose_rails). AGX Orin's VIN_SYS_5V0 is
# NOT an input rail: it is the 5 V system rail, beside VDD_GPU_SOC and VDD_CPU_CV.
# Source: jetson-stats, jtop/core/power.py total_power(), and its issues #51 and #344.
DEFAULT_INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")

# wall-clock time minus monotonic time is constant unless the clock is stepped (NTP's
# slewing moves both clocks alike); a window whose two lengths differ by more than this
# (or by more than one sampling interval) saw a step
CLOCK_STEP_TOL_S = 0.1

# the reference study's own recipe, kept only for comparison
PAPER_RAIL = "VDD_CPU_GPU_CV"
PAPER_IDLE_MW = 515.0
PAPER_GPU_LOAD_PCT = 40.0
PAPER_SECONDS_PER_SAMPLE = 1.0


@dataclass
class Trace:
    """One rail: ``kind`` "power" (values W) or "energy" (cumulative J), times in s.
    ``restarts``: (time before, time after) of each counter restart joined in ``v``."""

    rail: str
    kind: str
    t: np.ndarray
    v: np.ndarray
    spacing_s: float
    restarts: list = field(default_factory=list)

    def energy(self, t0: float, t1: float, tol_s: float, path) -> float:
        if self.t.size == 0:
            raise EnergyError(f"{path}: rail {self.rail} has no sample")
        short = max(self.t[0] - t0, t1 - self.t[-1], 0.0)
        if short > tol_s:
            raise EnergyError(
                f"{path}: rail {self.rail}: the window [{t0:.3f}, {t1:.3f}] lies {short:.3f} s "
                f"outside the samples [{self.t[0]:.3f}, {self.t[-1]:.3f}] (logger started late, "
                f"stopped early or died?)"
            )
        if short > 0:
            warnings.warn(
                f"{path}: rail {self.rail}: window edge {short * 1000:.0f} ms beyond the samples; edge value held",
                EnergyWarning,
                stacklevel=3,
            )
        f = integrate if self.kind == "power" else counter_delta
        return f(self.t, self.v, t0, t1, extrapolate=short > 0)

    def count(self, t0: float, t1: float) -> int:
        return samples_in(self.t, t0, t1)

    def restarts_in(self, t0: float, t1: float) -> int:
        """Counter restarts whose gap overlaps [t0, t1]."""
        return sum(1 for a, b in self.restarts if b > t0 and a < t1)


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
        # undated lines are spread between the logger's start and stop: by the monotonic
        # clock (the stop as the wall clock would read it had it not stepped since the start)
        stop_w = start_w + (stop["mono_s"] - start["mono_s"]) if start and stop else None
        df = parse_tegrastats(
            log_path,
            interval_ms or ms.get("interval_ms"),
            start_wall_s=start_w,
            stop_wall_s=stop_w,
            utc_offset_s=ms.get("utc_offset_s"),
        )
        clock = "wall_s"
        if df.attrs["timing"] != "dates-fit" and start is not None:
            df["t_s"] = df["t_s"] - start["wall_s"] + start["mono_s"]  # onto the monotonic clock
            clock = "mono_s"
        extra["df"] = df
        for c in df.columns:
            if c.startswith("power_mw__"):
                ok = df[c].notna().to_numpy()
                t = df["t_s"].to_numpy()[ok]
                traces[c[len("power_mw__") :]] = Trace(
                    c[len("power_mw__") :], "power", t, df[c].to_numpy()[ok] / 1000.0, _spacing(t)
                )
        return traces, clock, extra
    if backend in ("nvml", "rapl", "ina3221"):
        meta, df = read_csv_log(log_path)
        if meta.get("backend") != backend:
            raise EnergyError(f"{log_path}: written by backend {meta.get('backend')!r}, not {backend!r}")
        t_all = df["t_mono_s"].to_numpy()
        ranges = meta.get("max_energy_range_uj") or {}
        for c in df.columns:
            if "__" not in c:
                continue
            q, rail = c.split("__", 1)
            ok = df[c].notna().to_numpy()
            t, v = t_all[ok], df[c].to_numpy()[ok]
            if q == "energy_mj":
                e, restarts = stitch_restarts(t, v / 1000.0)
                for k, gap_j in restarts:
                    warnings.warn(
                        f"{log_path}: line {int(df['line_no'].to_numpy()[ok][k])}: the {rail} energy "
                        f"counter went down ({v[k - 1] / 1000:.3f} J -> {v[k] / 1000:.3f} J): it "
                        f"restarted (driver reload, GPU reset?). Counted as the energy before plus "
                        f"the energy after; the {t[k] - t[k - 1]:.3f} s between the samples around "
                        f"it is estimated from the neighbouring power ({gap_j:.3f} J)",
                        EnergyWarning,
                        stacklevel=3,
                    )
                tr = Trace(
                    rail, "energy", t, e, _spacing(t), restarts=[(float(t[k - 1]), float(t[k])) for k, _ in restarts]
                )
            elif q == "energy_uj":
                tr = Trace(rail, "energy", t, unwrap_counter(v, ranges.get(rail)) / 1e6 if v.size else v, _spacing(t))
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
        raise EnergyError(
            "the log holds no power rail (e.g. Jetson Thor's tegrastats prints none: use another backend)"
        )
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
                raise EnergyError(f"rail {w!r} is not in the log; rails present: {', '.join(available)}")
        return out
    if backend in ("tegrastats", "ina3221"):
        for r in DEFAULT_INPUT_RAILS:
            if r in available:
                return [r]
        warnings.warn(
            f"no board input rail ({', '.join(DEFAULT_INPUT_RAILS)}) in the log (AGX "
            f"Orin, AGX Xavier): energy_j counts the SUM of the rails present "
            f"({'+'.join(available)}), as jetson-stats does, which leaves out whatever "
            f"they do not cover; energy_rail records it. Set the rails explicitly to "
            f"choose.",
            EnergyWarning,
            stacklevel=3,
        )
        return list(available)
    if backend == "rapl":
        pk = [r for r in available if r.lower().startswith("package")]
        if pk:
            return pk
        warnings.warn(f"no RAPL package domain; counting {available[0]}", EnergyWarning, stacklevel=3)
        return [available[0]]
    return [available[0]]


def paper_style_energy_j(df: pd.DataFrame | None, t0: float, t1: float) -> float | None:
    """The study's figure: sum over samples in the window with GPU load > 40 % of
    (VDD_CPU_GPU_CV - 515 mW) x 1 s. None where the rail or the GPU load is absent."""
    col = f"power_mw__{PAPER_RAIL}"
    if df is None or col not in df.columns or df["gpu_load_pct"].isna().all():
        return None
    sel = (df["t_s"] >= t0) & (df["t_s"] <= t1) & (df["gpu_load_pct"] > PAPER_GPU_LOAD_PCT) & df[col].notna()
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


def summarize(
    backend: str,
    log_path,
    markers_path,
    audio_s: float | None = None,
    n_utterances: int | None = None,
    rails=None,
    interval_ms: float | None = None,
    window: str = "transcribe",
) -> dict:
    """Energy columns for one cell.

    Keys: ``energy_backend``, ``energy_rail`` (the rail counted, "A+B" for a sum),
    ``energy_j`` (J on that rail inside the window), ``mean_power_w``, ``idle_power_w``
    (mean power between idle_begin and idle_end), ``energy_above_idle_j``
    (energy_j - idle_power_w * window_s), ``energy_j_per_audio_s``,
    ``energy_j_per_utterance`` (energy_j divided; audio_s and n_utterances are per
    window), ``paper_style_energy_j`` (tegrastats only), ``window_s``, ``energy_samples``
    (samples of the counted rail inside the window), ``energy_counter_resets`` (restarts
    of the counted rail's energy counter inside the windows, joined: see
    ``stitch_restarts``; None without a counter), ``energy_clock_step_s`` (the wall-clock
    step inside a window, wall length minus monotonic length, the largest in size; 0
    normally), then ``energy_j__<RAIL>`` for every other rail in the log. When the window
    was measured several times (several windows with that name), each value is the median
    over them and energy_samples their sum.
    Clock steps: a log timed by the wall clock (tegrastats' dates) cannot be cut where the
    wall clock stepped inside the window (NTP syncing a board without an RTC battery):
    such a window is left out with an EnergyWarning, and with no window left the energy
    columns are empty (None), never a figure integrated across the step.
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
        raise EnergyError(f"{markers_path}: measured with backend {ms.get('backend')!r}, summarized as {b!r}")
    wins_all = find_windows(markers, markers_path)
    if window in wins_all:
        wins = wins_all[window]
    elif len(wins_all) == 1:
        ((other, wins),) = wins_all.items()
        warnings.warn(
            f"{markers_path}: no window {window!r}; using the only window {other!r}", EnergyWarning, stacklevel=2
        )
    else:
        raise EnergyError(f"{markers_path}: no window {window!r} (windows: {', '.join(wins_all) or 'none'})")

    if ms and ms.get("interval_ms"):
        if interval_ms and abs(float(interval_ms) - float(ms["interval_ms"])) > 1e-9:
            warnings.warn(
                f"{markers_path}: the meter sampled every {ms['interval_ms']} ms, "
                f"not {interval_ms} ms as given; using the meter's",
                EnergyWarning,
                stacklevel=2,
            )
        interval_ms = float(ms["interval_ms"])
    traces, clock, extra = load_traces(b, log_path, markers, interval_ms)
    counted = choose_rails(rails, list(traces), b)
    row["energy_rail"] = "+".join(counted)
    others = [r for r in traces if not (len(counted) == 1 and r == counted[0])]
    interval_s = float(interval_ms) / 1000.0 if interval_ms else 0.0

    def tol(tr: Trace) -> float:
        sp = tr.spacing_s if math.isfinite(tr.spacing_s) else 0.0
        return 1.5 * max(sp, interval_s)

    refuse = _clock_check(markers, markers_path, clock, max(CLOCK_STEP_TOL_S, interval_s))
    idle = find_idle(markers)
    idle_power = None
    if idle is not None and not refuse(idle[0], idle[1], "the idle period"):
        i0, i1 = idle[0][clock], idle[1][clock]
        if i1 > i0:
            idle_power = sum(traces[r].energy(i0, i1, tol(traces[r]), log_path) for r in counted) / (i1 - i0)

    per = []
    resets = 0
    for n, (wb, we) in enumerate(wins, 1):
        if refuse(wb, we, f"window {window!r} #{n}"):
            continue
        t0, t1 = wb[clock], we[clock]
        if not t1 > t0:
            raise EnergyError(f"{markers_path}: line {we['_line']}: window of zero length")
        w = t1 - t0
        e = sum(traces[r].energy(t0, t1, tol(traces[r]), log_path) for r in counted)
        resets += sum(traces[r].restarts_in(t0, t1) for r in counted)
        d = {
            "energy_j": e,
            "mean_power_w": e / w,
            "idle_power_w": idle_power,
            "energy_above_idle_j": None if idle_power is None else e - idle_power * w,
            "energy_j_per_audio_s": _div(e, audio_s),
            "energy_j_per_utterance": _div(e, n_utterances),
            "paper_style_energy_j": (paper_style_energy_j(extra.get("df"), t0, t1) if b == "tegrastats" else None),
            "window_s": w,
            "energy_samples": traces[counted[0]].count(t0, t1),
        }
        for r in others:
            d[f"energy_j__{r}"] = traces[r].energy(t0, t1, tol(traces[r]), log_path)
        per.append(d)

    row["energy_clock_step_s"] = max((_step(wb, we) for wb, we in wins), key=abs)
    if any(traces[r].kind == "energy" for r in counted):
        row["energy_counter_resets"] = resets
    if not per:  # every window refused: empty, never a guess
        row.update({f"energy_j__{r}": None for r in others})
        row["idle_power_w"] = idle_power
        return row
    for k in per[0]:
        vals = [p[k] for p in per]
        if k == "energy_samples":
            row[k] = int(sum(vals))
        elif any(v is None for v in vals):
            row[k] = None
        else:
            row[k] = float(statistics.median(vals))
    return row


def _step(b: dict, e: dict) -> float:
    """How far the wall clock stepped between two markers (0 when it did not)."""
    for m in (b, e):
        if "wall_s" not in m or "mono_s" not in m:
            raise EnergyError(f"marker on line {m.get('_line')} lacks wall_s or mono_s")
    return (e["wall_s"] - b["wall_s"]) - (e["mono_s"] - b["mono_s"])


def _clock_check(markers: list[dict], path, clock: str, tol_s: float):
    """-> refuse(begin, end, what): True (with a warning) for a period that cannot be cut
    from a log timed by the wall clock because the clock stepped.

    A step forward inside the period would be integrated across as if it had lasted; a step
    back anywhere makes the log's dates ambiguous (two stretches of the log carry the same
    times), so every period is refused. A log timed by the monotonic clock is never refused.
    """
    if clock != "wall_s":
        return lambda b, e, what: False
    jumps = [(a, b, _step(a, b)) for a, b in zip(markers, markers[1:]) if abs(_step(a, b)) > tol_s]
    for a, b, st in jumps:
        warnings.warn(
            f"{path}: the wall clock stepped by {st:+.3f} s between markers "
            f"{a['event']} (line {a['_line']}) and {b['event']} (line {b['_line']}) "
            f"(NTP sync? a board without an RTC battery syncs after boot); wait for "
            f"`timedatectl` to report a synchronized clock before measuring",
            EnergyWarning,
            stacklevel=3,
        )
    back = [st for _, _, st in jumps if st < 0]

    def refuse(b: dict, e: dict, what: str) -> bool:
        st = _step(b, e)
        if back:
            why = f"the wall clock stepped back by {-min(back):.3f} s while logging"
        elif abs(st) > tol_s:
            why = (
                f"the wall clock stepped by {st:+.3f} s inside it ({e['wall_s'] - b['wall_s']:.3f} s "
                f"by the wall clock, {e['mono_s'] - b['mono_s']:.3f} s by the monotonic clock)"
            )
        else:
            return False
        warnings.warn(
            f"{path}: {what} (marker lines {b['_line']}-{e['_line']}): {why}; the log is "
            f"timed by the wall clock, so its energy cannot be measured: left out "
            f"(empty when nothing is left)",
            EnergyWarning,
            stacklevel=3,
        )
        return True

    return refuse
