"""Parsing of tegrastats logs (Jetson), by rail name, for every known output format.

Formats handled (see tests and /work/shared/fixtures/tegrastats/formats.txt): JetPack 4
to 7; rails with or without the ``mW`` unit; two or three numbers per rail
(current/average[/max]: the FIRST number is the current draw); ``GR3D_FREQ`` load as a
scalar (``37%``), with a clock (``0%@305``), with a clock array (``12%@[1300,1300]``),
without a load figure (``@[1000,1000]``, Thor) or absent; upper- or lower-case names;
with or without the leading ``MM-DD-YYYY HH:MM:SS`` date.

Things that look like rails but are not: ``RAM 3503/7337MB`` and ``SWAP 430/3668MB``
(memory, the unit is MB/kB), ``CPU [..]`` (the CPU load array; on Xavier ``CPU 385/385``
without brackets IS a rail), temperatures ``GPU@28C`` / ``cpu@52.9C/52.9C``.
"""

from __future__ import annotations

import calendar
import math
import re
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import EnergyError, EnergyWarning

__all__ = ["parse_tegrastats_line", "parse_tegrastats", "fit_line_times", "DATE_FORMAT"]

DATE_FORMAT = "%m-%d-%Y %H:%M:%S"

_NUM = r"(\d+(?:\.\d+)?)"
_UNIT = r"(?:[mM][wW])?"
_DATE_RE = re.compile(r"^\s*(\d{2})-(\d{2})-(\d{4})\s+(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?=\s|$)")
# NAME cur[mW]/avg[mW][/max[mW]] followed by whitespace or end of line: "7337MB" fails the
# lookahead, so RAM/SWAP never match; temperatures have no space before their number.
_RAIL_RE = re.compile(
    r"(?:(?<=\s)|^)([A-Za-z][A-Za-z0-9_]*)\s+"
    + _NUM
    + _UNIT
    + "/"
    + _NUM
    + _UNIT
    + r"(?:/"
    + _NUM
    + _UNIT
    + r")?(?=\s|$)"
)
_RAM_RE = re.compile(r"(?:(?<=\s)|^)RAM\s+(\d+)/(\d+)([kKmMgG]?)B\b")
_GR3D_RE = re.compile(r"(?:(?<=\s)|^)GR3D_FREQ\s+(?:(\d+(?:\.\d+)?)%)?(?:@\[?[\d,]*\]?)?", re.I)
_TEMP_RE = re.compile(r"(?:(?<=\s)|^)([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C(?:/-?\d+(?:\.\d+)?C)?(?=\s|$)")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "MTS", "LFB", "CACHED"}
_MB = {"": 1.0 / 1e6, "K": 1.0 / 1024, "M": 1.0, "G": 1024.0}


def parse_tegrastats_line(line: str) -> dict:
    """Parse one tegrastats line.

    Returns a dict with:
      ``date`` (``MM-DD-YYYY HH:MM:SS`` string or None), ``date_naive_s`` (the date as
      seconds since the epoch read as UTC, i.e. without time-zone; None without date),
      ``power_mw`` {RAIL: current mW}, ``power_avg_mw`` {RAIL: average mW},
      ``power_max_mw`` {RAIL: max mW, 3-number formats only},
      ``ram_used_mb``, ``ram_total_mb``, ``gpu_load_pct`` (None when absent),
      ``temps_c`` {sensor: °C}, and ``ok`` (the line carried rails or RAM).
    Rail names are upper-cased (``vdd_in`` -> ``VDD_IN``).
    """
    s = line.rstrip("\r\n")
    out: dict = {
        "date": None,
        "date_naive_s": None,
        "power_mw": {},
        "power_avg_mw": {},
        "power_max_mw": {},
        "ram_used_mb": None,
        "ram_total_mb": None,
        "gpu_load_pct": None,
        "temps_c": {},
        "ok": False,
    }
    m = _DATE_RE.match(s)
    if m:
        mo, d, y, hh, mi, ss, frac = m.groups()
        try:
            naive = calendar.timegm((int(y), int(mo), int(d), int(hh), int(mi), int(ss), 0, 0, 0))
            if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(hh) < 24 and int(mi) < 60 and int(ss) < 61):
                raise ValueError
            out["date"] = f"{mo}-{d}-{y} {hh}:{mi}:{ss}"
            out["date_naive_s"] = float(naive) + (float("0." + frac) if frac else 0.0)
        except (ValueError, OverflowError):
            pass
        s_body = s[m.end() :]
    else:
        s_body = s
    for name, cur, avg, mx in _RAIL_RE.findall(s_body):
        key = name.upper()
        if key in _NOT_RAILS:
            continue
        out["power_mw"][key] = float(cur)
        out["power_avg_mw"][key] = float(avg)
        if mx:
            out["power_max_mw"][key] = float(mx)
    m = _RAM_RE.search(s_body)
    if m:
        f = _MB[m.group(3).upper()]
        out["ram_used_mb"] = float(m.group(1)) * f
        out["ram_total_mb"] = float(m.group(2)) * f
    m = _GR3D_RE.search(s_body)
    if m and m.group(1) is not None:
        out["gpu_load_pct"] = float(m.group(1))
    for name, val in _TEMP_RE.findall(s_body):
        out["temps_c"][name] = float(val)
    out["ok"] = bool(out["power_mw"]) or out["ram_used_mb"] is not None
    return out


# ---------------------------------------------------------------- timestamps

JITTER_S = 0.02  # slack on each line's second: a line may be printed this late/early


def _width(i: np.ndarray, d: np.ndarray, b: float) -> tuple[float, float]:
    lo = float(np.max(d - JITTER_S - b * i))
    hi = float(np.min(d + 1.0 + JITTER_S - b * i))
    return lo, hi


def _fit_segment(i: np.ndarray, d: np.ndarray, hint: float | None = None):
    """Best (a, b) with d_k <= a + b*i_k < d_k + 1 for all k (give or take JITTER_S), or
    None if infeasible.

    The feasible set is convex; its width in ``a`` is a concave function of the period
    ``b``, maximised by golden-section search; ``a`` is the middle of the widest range.
    With a ``hint`` (the requested interval) the period must lie within x0.5..x2 of it,
    and within -20 %/+25 % where the dates allow.
    """
    if i.size == 1:
        return float(d[0]) + 0.5, 0.0
    span_i = float(i[-1] - i[0])
    span_d = float(d[-1] - d[0])
    b_lo = max(1e-6, (span_d - 1.0 - 2 * JITTER_S) / span_i)
    b_hi = (span_d + 1.0 + 2 * JITTER_S) / span_i
    ranges = [(b_lo, b_hi)]
    if hint:
        ranges = [(max(b_lo, 0.8 * hint), min(b_hi, 1.25 * hint)), (max(b_lo, 0.5 * hint), min(b_hi, 2.0 * hint))]
    for lo_b, hi_b in ranges:
        if hi_b <= lo_b:
            continue
        fit = _golden(i, d, lo_b, hi_b, hint)
        if fit is not None:
            return fit
    return None


def _golden(i, d, lo_b, hi_b, hint):
    def w(b):
        lo, hi = _width(i, d, b)
        # among equally wide periods (few constraints) prefer the requested interval
        return hi - lo - (1e-3 * abs(b - hint) if hint else 0.0)

    g = (math.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi_b - g * (hi_b - lo_b), lo_b + g * (hi_b - lo_b)
    f1, f2 = w(x1), w(x2)
    for _ in range(80):
        if f1 < f2:
            lo_b, x1, f1 = x1, x2, f2
            x2 = lo_b + g * (hi_b - lo_b)
            f2 = w(x2)
        else:
            hi_b, x2, f2 = x2, x1, f1
            x1 = hi_b - g * (hi_b - lo_b)
            f1 = w(x1)
    b = (lo_b + hi_b) / 2.0
    lo, hi = _width(i, d, b)
    if hi - lo < -1e-9:
        return None
    return (lo + hi) / 2.0, b


def fit_line_times(slots, dates_s, period_hint_s: float | None = None) -> tuple[np.ndarray, int]:
    """Sub-second times for lines whose dates have 1 s resolution.

    tegrastats prints a line every ``interval`` (plus a little drift), stamped with the
    whole second it was printed in. Model: t_k = a + b * slot_k with
    date_k <= t_k < date_k + 1 for every line. Every second boundary crossed by the log
    narrows the feasible (a, b) set, so with a 100 ms interval the phase is known to
    about one interval and the period (drift included) to ~1 s / log length. Where the
    constraints cannot all hold (the logger stalled, the clock stepped) the log is cut
    into the longest feasible consecutive segments, each fitted alone.

    ``period_hint_s`` (the requested interval) bounds the period to x0.5..x2 of it, to
    -20 %/+25 % where the dates allow, and breaks ties. Returns (times, number_of_segments); times
    are in the same clock as ``dates_s``.
    """
    i = np.asarray(slots, dtype=float)
    d = np.asarray(dates_s, dtype=float)
    n = i.size
    out = np.empty(n)
    s = 0
    nseg = 0
    while s < n:
        fit = _fit_segment(i[s:], d[s:], period_hint_s)
        e = n
        if fit is None:
            good, bad = s + 1, n  # [s, good) feasible, [s, bad) not
            while bad - good > 1:
                mid = (good + bad) // 2
                if _fit_segment(i[s:mid], d[s:mid], period_hint_s) is not None:
                    good = mid
                else:
                    bad = mid
            e = good
            fit = _fit_segment(i[s:e], d[s:e], period_hint_s)
        a, b = fit
        out[s:e] = a + b * i[s:e]
        nseg += 1
        s = e
    return out, nseg


# ---------------------------------------------------------------- whole log


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise EnergyError(f"tegrastats log {path} does not exist") from None
    except OSError as e:
        raise EnergyError(f"tegrastats log {path} cannot be read: {e}") from None
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise EnergyError(
            f"tegrastats log {path} is empty: the logger wrote no sample (was tegrastats "
            f"started, with the rights it needs? see docs/energy.md)"
        )
    parts = text.split("\n")
    lines = [(k + 1, p) for k, p in enumerate(parts)]
    if parts[-1] == "":
        lines.pop()
    elif parts[-1].strip():
        no = len(parts)
        warnings.warn(
            f"{path}: line {no}: truncated last line (no end of line; the logger "
            f"was stopped while writing it), ignored: {parts[-1][:80]!r}",
            EnergyWarning,
            stacklevel=3,
        )
        lines.pop()
    return lines


def _samples(path: Path, lines: list[tuple[int, str]]) -> tuple[list[dict], int]:
    """The parsed sample lines and the number of sampling slots (garbled lines count as a slot)."""
    recs = []
    garbled = []
    slot = 0
    for no, text in lines:
        st = text.strip()
        if not st or st.startswith("#"):
            continue
        r = parse_tegrastats_line(text)
        r["line_no"] = no
        r["slot"] = slot
        slot += 1
        if not r["ok"]:
            garbled.append((no, st))
            continue
        recs.append(r)
    for no, st in garbled[:10]:
        warnings.warn(
            f"{path}: line {no}: not a tegrastats sample (garbled?), skipped: {st[:80]!r}", EnergyWarning, stacklevel=3
        )
    if len(garbled) > 10:
        warnings.warn(f"{path}: {len(garbled) - 10} more garbled lines skipped", EnergyWarning, stacklevel=3)
    if not recs:
        raise EnergyError(f"tegrastats log {path}: no line could be parsed as a sample ({len(garbled)} garbled lines)")
    return recs, slot


def _rails(path: Path, recs: list[dict]) -> list[str]:
    """Every rail in order of appearance; warns about lines lacking one of the usual (most common) set."""
    sets = Counter(frozenset(r["power_mw"]) for r in recs)
    usual = max(sets.items(), key=lambda kv: (kv[1], len(kv[0])))[0]
    rails: list[str] = []
    for r in recs:
        rails.extend(k for k in r["power_mw"] if k not in rails)
    damaged = [(r["line_no"], sorted(usual - set(r["power_mw"]))) for r in recs if not usual <= set(r["power_mw"])]
    for no, miss in damaged[:10]:
        warnings.warn(
            f"{path}: line {no}: rail(s) {', '.join(miss)} missing or unreadable "
            f"(garbled line?); those values are left empty",
            EnergyWarning,
            stacklevel=3,
        )
    if len(damaged) > 10:
        warnings.warn(f"{path}: {len(damaged) - 10} more lines with missing rails", EnergyWarning, stacklevel=3)
    return rails


def _times_from_dates(path: Path, recs: list[dict], interval_ms, start_wall_s, utc_offset_s):
    """Sub-second epoch times for dated logs; returns ``(t, recs, segments, utc_offset_s)``.

    Lines dated before the logger started (tegrastats appends to its log) are dropped.
    """
    slots = np.array([r["slot"] for r in recs], dtype=float)
    have = np.array([r["date_naive_s"] is not None for r in recs])
    dn = np.array([np.nan if r["date_naive_s"] is None else r["date_naive_s"] for r in recs], dtype=float)
    if utc_offset_s is None and start_wall_s is not None:
        utc_offset_s = round((dn[have][0] - float(start_wall_s)) / 900.0) * 900.0
    if utc_offset_s is None:
        first = time.strptime(recs[int(np.argmax(have))]["date"], DATE_FORMAT)
        utc_offset_s = dn[have][0] - time.mktime(first)
    d_epoch = dn - float(utc_offset_s)
    if start_wall_s is not None:
        stale = have & (d_epoch < float(start_wall_s) - 2.0)
        if stale.any():
            first_no = recs[int(np.argmax(stale))]["line_no"]
            warnings.warn(
                f"{path}: {int(stale.sum())} line(s) dated before the logger "
                f"started (first: line {first_no}); stale lines of an earlier "
                f"run? ignored",
                EnergyWarning,
                stacklevel=3,
            )
            keep = ~stale
            recs = [r for r, k in zip(recs, keep) if k]
            if not recs:
                raise EnergyError(f"tegrastats log {path}: every line predates the logger's start")
            slots, have, d_epoch = slots[keep], have[keep], d_epoch[keep]
    t_fit, nseg = fit_line_times(slots[have], d_epoch[have], float(interval_ms) / 1000.0 if interval_ms else None)
    t = np.empty(slots.size)
    t[have] = t_fit
    if not have.all():
        # undated lines between dated ones: interpolate on the slot index
        t[~have] = np.interp(slots[~have], slots[have], t_fit)
        if have.sum() >= 2:
            b = (t_fit[-1] - t_fit[0]) / max(1.0, slots[have][-1] - slots[have][0])
            lo = slots < slots[have][0]
            hi = slots > slots[have][-1]
            t[lo] = t_fit[0] - b * (slots[have][0] - slots[lo])
            t[hi] = t_fit[-1] + b * (slots[hi] - slots[have][-1])
    if nseg > 1:
        warnings.warn(
            f"{path}: sampling was irregular (logger stalled or clock stepped): line times fitted in {nseg} segments",
            EnergyWarning,
            stacklevel=3,
        )
    if interval_ms and have.sum() >= 20 and nseg == 1 and t_fit.size > 1:
        per = float(np.median(np.diff(t_fit)))
        if np.isfinite(per) and abs(per * 1000.0 / float(interval_ms) - 1.0) > 0.25:
            warnings.warn(
                f"{path}: lines are {per * 1000:.0f} ms apart, not the {float(interval_ms):.0f} ms requested",
                EnergyWarning,
                stacklevel=3,
            )
    return t, recs, nseg, utc_offset_s


def _times_without_dates(path: Path, slots: np.ndarray, nslots: int, interval_ms, start_wall_s, stop_wall_s):
    """Times for undated logs, from the meter's start/stop markers or the interval; returns ``(t, timing)``."""
    if start_wall_s is not None and stop_wall_s is not None and stop_wall_s > start_wall_s:
        per = (float(stop_wall_s) - float(start_wall_s)) / nslots
        if interval_ms and abs(per * 1000.0 / float(interval_ms) - 1.0) > 0.25:
            warnings.warn(
                f"{path}: {nslots} lines over {stop_wall_s - start_wall_s:.2f} s is "
                f"{per * 1000:.0f} ms per line, not the {float(interval_ms):.0f} ms "
                f"requested: times are approximate",
                EnergyWarning,
                stacklevel=3,
            )
        return float(start_wall_s) + (slots + 0.5) * per, "markers"
    if interval_ms:
        base = float(start_wall_s) if start_wall_s is not None else 0.0
        off = 0.5 if start_wall_s is not None else 0.0
        return base + (slots + off) * float(interval_ms) / 1000.0, "interval"
    raise EnergyError(
        f"tegrastats log {path} has no dates: interval_ms (and the meter's "
        f"start/stop markers) are needed to time its samples"
    )


def parse_tegrastats(
    path,
    interval_ms: float | None = None,
    *,
    start_wall_s: float | None = None,
    stop_wall_s: float | None = None,
    utc_offset_s: float | None = None,
) -> pd.DataFrame:
    """Parse a tegrastats log into one row per sample.

    Columns: ``t_s`` (epoch seconds, sub-second, see below), ``line_no`` (1-based line in
    the file), ``power_mw__<RAIL>`` per rail (current draw, mW; NaN where a line lacks
    the rail), ``ram_used_mb``, ``ram_total_mb``, ``gpu_load_pct``.

    Timestamps: lines with a date (local time, 1 s resolution) are converted with
    ``utc_offset_s`` (the logger's UTC offset, recorded by the meter; else the offset is
    inferred from ``start_wall_s`` to the nearest 15 min; else this machine's local time)
    and refined to sub-second times by ``fit_line_times``. Lines without a date are
    spread evenly between ``start_wall_s`` and ``stop_wall_s`` (one line per period, each
    at the middle of its period), or at ``start_wall_s + (k + 0.5) * interval`` without a
    stop time; without ``start_wall_s`` they are ``k * interval`` seconds from 0.
    Blank lines and lines starting with ``#`` are skipped; garbled lines are skipped
    with an EnergyWarning naming the line (they still count as a sampling slot).
    ``df.attrs`` holds ``timing`` (how t_s was obtained) and ``segments``.
    """
    path = Path(path)
    recs, nslots = _samples(path, _read_lines(path))
    rails = _rails(path, recs)
    nseg = 0
    if any(r["date_naive_s"] is not None for r in recs):
        t, recs, nseg, utc_offset_s = _times_from_dates(path, recs, interval_ms, start_wall_s, utc_offset_s)
        timing = "dates-fit"
    else:
        slots = np.array([r["slot"] for r in recs], dtype=float)
        t, timing = _times_without_dates(path, slots, nslots, interval_ms, start_wall_s, stop_wall_s)
    data: dict = {"t_s": t, "line_no": np.array([r["line_no"] for r in recs], dtype=int)}
    for k in rails:
        data[f"power_mw__{k}"] = np.array([r["power_mw"].get(k, np.nan) for r in recs], dtype=float)
    for k in ("ram_used_mb", "ram_total_mb", "gpu_load_pct"):
        data[k] = np.array([np.nan if r[k] is None else r[k] for r in recs], dtype=float)
    df = pd.DataFrame(data)
    df.attrs.update(
        {"timing": timing, "segments": nseg, "rails": rails, "path": str(path), "utc_offset_s": utc_offset_s}
    )
    return df
