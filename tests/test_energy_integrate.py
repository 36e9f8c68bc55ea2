"""Integration of power traces and energy counters against known integrals."""

import numpy as np
import pytest

from edgeasr.energy import EnergyError, counter_delta, integrate, unwrap_counter


def rel(a, b):
    return abs(a - b) / abs(b)


def test_constant_power_window_between_samples():
    t = np.arange(0, 10.01, 0.1)
    p = np.full_like(t, 4.0)
    assert integrate(t, p, 1.234, 7.891) == pytest.approx(4.0 * (7.891 - 1.234), rel=1e-12)


def test_ramp_is_exact_with_edges_between_samples():
    t = np.arange(0, 20.0001, 0.25)
    p = 2.0 + 0.5 * t  # W
    t0, t1 = 3.1, 17.93  # both between samples
    exact = 2.0 * (t1 - t0) + 0.25 * (t1**2 - t0**2)
    assert rel(integrate(t, p, t0, t1), exact) < 1e-9


def test_step_sampled_finely_within_half_percent():
    # 3 W until 5 s, 8 W after: sampled every 50 ms, the trapezoid smears the step over one
    # interval, an error of (8-3) * 0.05 / 2 J at most, well under 0.5 % of the 55 J
    t = np.arange(0, 10.0001, 0.05)
    p = np.where(t < 5.0 - 1e-9, 3.0, 8.0)
    exact = 3.0 * 5.0 + 8.0 * 5.0
    assert rel(integrate(t, p, 0.0, 10.0), exact) < 0.005


def test_irregular_intervals():
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.01, 0.3, 400))
    f = lambda x: 5.0 + np.sin(x / 3.0)  # smooth power
    F = lambda x: 5.0 * x - 3.0 * np.cos(x / 3.0)
    t0, t1 = t[3] + 0.004, t[-5] - 0.017
    assert rel(integrate(t, f(t), t0, t1), F(t1) - F(t0)) < 0.005
    # piecewise-linear signal on irregular knots: exact
    p = rng.uniform(1, 10, t.size)
    tt = np.linspace(t[0], t[-1], 200001)
    ref = np.trapezoid(np.interp(tt, t, p), tt) if hasattr(np, "trapezoid") else np.trapz(np.interp(tt, t, p), tt)
    assert rel(integrate(t, p, t[0], t[-1]), ref) < 1e-4


def test_baseline_subtraction():
    t = np.arange(0, 30.0001, 0.1)
    p = np.where((t >= 10) & (t <= 20), 9.0, 2.5)
    idle = integrate(t, p, 1.0, 9.0) / 8.0
    e = integrate(t, p, 11.05, 18.95)
    assert idle == pytest.approx(2.5)
    assert e - idle * (18.95 - 11.05) == pytest.approx(6.5 * 7.9, rel=1e-9)


def test_uncovered_window_raises_and_extrapolate_holds():
    t, p = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 4.0])
    with pytest.raises(EnergyError, match="not covered"):
        integrate(t, p, 0.5, 3.0)
    assert integrate(t, p, 0.5, 3.5, extrapolate=True) == pytest.approx(1.0 + 2.0 + 3.0 + 2.0)
    with pytest.raises(EnergyError, match="backwards"):
        integrate([0, 2, 1], [1, 1, 1], 0, 1)
    with pytest.raises(EnergyError, match="ends before"):
        integrate(t, p, 2.5, 1.5)


def test_nan_samples_are_skipped_not_zero():
    t = np.arange(0, 5.0001, 0.5)
    p = np.full_like(t, 3.0)
    p[4] = np.nan
    assert integrate(t, p, 0, 5) == pytest.approx(15.0)


def test_counter_delta_interpolates_edges():
    t = np.arange(0, 10.0001, 0.5)
    e = 7.0 * t + 100.0  # 7 W
    assert counter_delta(t, e, 1.23, 8.77) == pytest.approx(7.0 * 7.54)
    with pytest.raises(EnergyError):
        counter_delta(t, e, -1.0, 5.0)
    assert counter_delta(t, e, -1.0, 11.0, extrapolate=True) == pytest.approx(7.0 * 12.0)


def test_unwrap_counter_wraps_at_max_range():
    rng = 1_000_000
    raw = [999_000, 999_900, 200, 1_100, 500]  # two wraps
    assert list(unwrap_counter(raw, rng)) == [0, 900, 1_000 + 200, 2_100, 2_100 + 999_400]
    with pytest.raises(EnergyError):
        unwrap_counter([5, 3], None)
