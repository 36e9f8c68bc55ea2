"""Numerical integration of power samples and of cumulative energy counters.

Both functions treat the signal as piecewise linear between samples, which is the
only assumption a sampled power log supports; window edges that fall between two
samples are interpolated linearly.
"""

from __future__ import annotations

import numpy as np

from .errors import EnergyError

__all__ = ["integrate", "counter_delta", "unwrap_counter", "stitch_restarts", "samples_in"]


def _clean(t_s, y) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t_s, dtype=float).ravel()
    v = np.asarray(y, dtype=float).ravel()
    if t.shape != v.shape:
        raise EnergyError(f"timestamps ({t.size}) and values ({v.size}) differ in length")
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    if t.size == 0:
        raise EnergyError("no finite samples to integrate")
    if np.any(np.diff(t) < 0):
        i = int(np.argmax(np.diff(t) < 0))
        raise EnergyError(f"timestamps go backwards at sample {i + 1} ({t[i]!r} -> {t[i + 1]!r})")
    return t, v


def _coverage(t: np.ndarray, v: np.ndarray, t0: float, t1: float, extrapolate: bool):
    if t0 >= t[0] and t1 <= t[-1]:
        return t, v
    if not extrapolate:
        raise EnergyError(
            f"window [{t0:.6f}, {t1:.6f}] is not covered by the samples "
            f"[{t[0]:.6f}, {t[-1]:.6f}] (missing {max(0.0, t[0] - t0):.3f} s before, "
            f"{max(0.0, t1 - t[-1]):.3f} s after)"
        )
    # hold the edge values (zero-order) outside the sampled range
    t = np.concatenate([[min(t0, t[0])], t, [max(t1, t[-1])]])
    v = np.concatenate([[v[0]], v, [v[-1]]])
    return t, v


def integrate(t_s, power_w, t0: float, t1: float, *, extrapolate: bool = False) -> float:
    """Energy (J) of a power trace (W at timestamps s) between t0 and t1.

    Trapezoids on the real (possibly irregular) timestamps; the power at t0 and t1 is
    interpolated linearly between the neighbouring samples, so a window that starts or
    ends between two samples gets exactly its share. Non-finite samples are dropped.
    A window outside the sampled range raises EnergyError unless ``extrapolate`` is
    true, in which case the first/last sample is held constant.
    """
    t0, t1 = float(t0), float(t1)
    if not (np.isfinite(t0) and np.isfinite(t1)):
        raise EnergyError(f"window edges must be finite, got [{t0}, {t1}]")
    if t1 < t0:
        raise EnergyError(f"window ends before it begins: [{t0}, {t1}]")
    t, p = _clean(t_s, power_w)
    if t1 == t0:
        return 0.0
    t, p = _coverage(t, p, t0, t1, extrapolate)
    p0 = float(np.interp(t0, t, p))
    p1 = float(np.interp(t1, t, p))
    inside = (t > t0) & (t < t1)
    tt = np.concatenate([[t0], t[inside], [t1]])
    pp = np.concatenate([[p0], p[inside], [p1]])
    return float(np.sum((pp[1:] + pp[:-1]) * 0.5 * np.diff(tt)))


def counter_delta(t_s, cumulative_j, t0: float, t1: float, *, extrapolate: bool = False) -> float:
    """Energy (J) between t0 and t1 from a cumulative energy counter (J at timestamps s).

    The counter is interpolated linearly at both edges. It must never decrease: unwrap a
    wrapping counter first (``unwrap_counter``) and join a restarted one
    (``stitch_restarts``); a decrease raises EnergyError. With ``extrapolate`` the
    counter is extended at the mean rate of its first/last interval.
    """
    t0, t1 = float(t0), float(t1)
    if t1 < t0:
        raise EnergyError(f"window ends before it begins: [{t0}, {t1}]")
    t, e = _clean(t_s, cumulative_j)
    down = np.flatnonzero(np.diff(e) < 0)
    if down.size:
        i = int(down[0])
        raise EnergyError(
            f"energy counter decreases at sample {i + 1} ({e[i]!r} -> {e[i + 1]!r} "
            f"at t={t[i + 1]!r}): it restarted or wrapped; join it with "
            f"stitch_restarts or unwrap_counter first"
        )
    if t0 >= t[0] and t1 <= t[-1]:
        return float(np.interp(t1, t, e) - np.interp(t0, t, e))
    if not extrapolate or t.size < 2:
        _coverage(t, e, t0, t1, False)  # raises with the message
    # convert to power per interval and integrate with held edge power
    dt = np.diff(t)
    ok = dt > 0
    tm = t[1:][ok]
    p = np.diff(e)[ok] / dt[ok]
    # energy inside the covered part plus held rates outside
    lo, hi = max(t0, t[0]), min(t1, t[-1])
    inner = float(np.interp(hi, t, e) - np.interp(lo, t, e)) if hi > lo else 0.0
    before = max(0.0, t[0] - t0) * float(p[0]) if tm.size else 0.0
    after = max(0.0, t1 - t[-1]) * float(p[-1]) if tm.size else 0.0
    return inner + before + after


def unwrap_counter(raw, max_range) -> np.ndarray:
    """Unwrap a counter that restarts at 0 after ``max_range`` (RAPL energy_uj).

    Returns the cumulative increase since the first sample. At most one wrap between
    two samples is assumed (RAPL wraps after minutes even at hundreds of watts).
    """
    r = np.asarray(raw, dtype=float)
    d = np.diff(r)
    if max_range is not None and float(max_range) > 0:
        d = np.where(d < 0, d + float(max_range), d)
    elif np.any(d < 0):
        raise EnergyError("counter decreased but its wrap-around range is unknown")
    return np.concatenate([[0.0], np.cumsum(d)])


def stitch_restarts(t_s, raw) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """Join a cumulative counter that restarts (NVML's total energy counts "since the
    driver was last reloaded": a driver reload or GPU reset sends it back to ~0).

    Returns (energy since the first sample, [(k, gap_energy), ...]) where each restart
    happened between samples k-1 and k (the counter went down there). Before a restart
    the increase is the counter's own; after it, the increase counts from the counter's
    new value at sample k. What happened between samples k-1 and k is not in the
    counter (the reload instant is unknown, and its value need not start from exactly 0),
    so that gap is *estimated* as its length times the mean power of the neighbouring
    intervals (k-2..k-1 and k..k+1, whichever exist), the piecewise-linear assumption
    made everywhere else; raises EnergyError when no neighbouring interval exists.
    Timestamps must be finite and sorted (as ``_clean`` leaves them).
    """
    t = np.asarray(t_s, dtype=float).ravel()
    v = np.asarray(raw, dtype=float).ravel()
    if t.size != v.size:
        raise EnergyError(f"timestamps ({t.size}) and values ({v.size}) differ in length")
    if v.size == 0:
        return v.copy(), []
    d = np.diff(v)
    dt = np.diff(t)
    restarts = [int(i) + 1 for i in np.flatnonzero(d < 0)]

    def rate(j):  # mean power over interval j (samples j..j+1); None if unusable
        if 0 <= j < d.size and (j + 1) not in restarts and dt[j] > 0:
            return d[j] / dt[j]
        return None

    out = []
    for k in restarts:
        near = [r for r in (rate(k - 2), rate(k)) if r is not None]
        if not near:
            raise EnergyError(
                f"energy counter restarted at sample {k} with no neighbouring interval to estimate the gap from"
            )
        d[k - 1] = float(np.mean(near)) * dt[k - 1]
        out.append((k, float(d[k - 1])))
    return np.concatenate([[0.0], np.cumsum(d)]), out


def samples_in(t_s, t0: float, t1: float) -> int:
    """Number of samples with t0 <= t <= t1."""
    t = np.asarray(t_s, dtype=float)
    return int(np.count_nonzero((t >= t0) & (t <= t1)))
