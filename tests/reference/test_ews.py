"""Causal early-warning indicators (Scheffer et al. 2009) on series with known behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from phasewatch.detect import ews

N, STEP_AT = 500, 400  # points; the planted transition (logistic step) at point 400


def _planted(phis: np.ndarray, seed: int, step_height: float = 5.0) -> np.ndarray:
    """AR(1) noise with coefficient phis[t], on a logistic step centred at STEP_AT."""
    rng = np.random.default_rng(seed)
    x = np.zeros(len(phis))
    for t in range(1, len(phis)):
        x[t] = phis[t] * x[t - 1] + rng.normal(0, 0.1)
    t = np.arange(len(phis))
    return x + step_height / (1 + np.exp(-(t - STEP_AT) / 2.0))


def _ramp(seed: int) -> np.ndarray:
    """The AR coefficient ramps from 0 to 0.98 at the step (critical slowing down)."""
    return _planted(np.minimum(np.linspace(0, 0.98 * N / STEP_AT, N), 0.98), seed)


def _flat(seed: int) -> np.ndarray:
    return _planted(np.full(N, 0.5), seed, step_height=0.0)


# Windows of 80 points (a fifth of the pre-transition series): with shorter ones the null
# maxima of τ reach 0.8 and fewer than half of the ramps warn (measured while choosing).
CFG = ews.EWSConfig(window=80, detrend=80, min_points=80, alpha=0.1)


def test_indicators_equal_ewstools_on_the_same_residuals():
    ewstools = pytest.importorskip("ewstools")
    x = _ramp(0)
    res = ews.causal_residuals(x[None], CFG.detrend)[0]
    ours = ews.rolling_indicators(res[None], CFG.window)
    ts = ewstools.TimeSeries(pd.Series(res))
    ts.compute_var(rolling_window=CFG.window)
    ts.compute_auto(rolling_window=CFG.window, lag=1)
    np.testing.assert_allclose(ours["variance"][0], ts.ews["variance"].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours["ac1"][0], ts.ews["ac1"].to_numpy(), rtol=1e-8)


def test_causal_residuals_remove_a_line_exactly():
    x = 3.0 + 0.5 * np.arange(30.0)
    res = ews.causal_residuals(x[None], 5)[0]
    assert np.isnan(res[:4]).all()
    np.testing.assert_allclose(res[4:], 0.0, atol=1e-12)


def test_expanding_tau_is_kendalls_tau_of_every_prefix():
    y = np.random.default_rng(3).normal(size=40)
    y[:5] = np.nan  # leading NaNs, as indicators have
    tau = ews.expanding_tau(y[None], min_points=4)[0]
    for t in range(8, 40):
        ref = kendalltau(np.arange(5, t + 1), y[5 : t + 1]).statistic
        assert tau[t] == pytest.approx(ref, abs=1e-12)
    assert np.isnan(tau[:8]).all()


def test_lag1_indicator_warns_before_a_planted_transition():
    """AR coefficient ramping to 0.98 at the step: lag-1 autocorrelation trends up and its
    warning (threshold calibrated on constant-coefficient null series at a 10% false-alarm
    rate) fires before the step in most runs (27/30 when written; variance, whose
    trailing detrending removes much of the slow growth, warned in only 8/30)."""
    nulls = np.stack([_flat(s) for s in range(100, 160)])
    ramps = np.stack([_ramp(s) for s in range(30)])
    null_sc, ramp_sc = ews.scores(nulls, CFG), ews.scores(ramps, CFG)
    steps = np.arange(N)
    theta = ews.calibrate(ews.max_score(null_sc["tau_ac1"][:, :STEP_AT]), CFG.alpha)
    warned = [
        ews.first_warning(steps, ramp_sc["tau_ac1"][i], theta, until=STEP_AT - 10)
        for i in range(len(ramps))
    ]
    hits = [w for w in warned if w is not None]
    assert len(hits) >= 24, (theta, warned)  # >= 80% of 30 ramps warn in time
    assert np.median(hits) < STEP_AT - 50  # with a lead, not at the step


def test_constant_coefficient_false_alarms_stay_near_the_calibrated_rate():
    """Threshold from 60 null series; on 150 fresh null series the false-alarm rate is
    alpha = 10% up to sampling error (the calibration quantile from 60 maxima moves the
    rate by ~±4%, the 150 fresh series add ~±2.5%)."""
    calib = ews.scores(np.stack([_flat(s) for s in range(60)]), CFG)
    fresh = ews.scores(np.stack([_flat(s) for s in range(1000, 1150)]), CFG)
    for name in ("ac1", "variance"):
        theta = ews.calibrate(ews.max_score(calib[f"tau_{name}"]), CFG.alpha)
        far = float((ews.max_score(fresh[f"tau_{name}"]) >= theta).mean())
        assert 0.0 < far < 0.22, (name, far)


def test_warnings_are_causal():
    """Changing the series after t leaves every score and warning up to t unchanged —
    including the surrogate threshold, which only sees the burn-in."""
    x = _ramp(7)
    t = 300
    y = x.copy()
    y[t + 1 :] = np.random.default_rng(1).normal(size=N - t - 1) * 50
    a, b = ews.scores(x[None], CFG), ews.scores(y[None], CFG)
    for key in a:
        np.testing.assert_array_equal(a[key][0, : t + 1], b[key][0, : t + 1])
    tha, thb = ews.surrogate_thresholds(x, CFG), ews.surrogate_thresholds(y, CFG)
    assert tha == thb
    steps = np.arange(N)
    for name in ("ac1", "variance"):
        wa = ews.first_warning(steps, a[f"tau_{name}"][0], tha[name], until=t)
        wb = ews.first_warning(steps, b[f"tau_{name}"][0], thb[name], until=t)
        assert wa == wb


def _detect_series(t: int, future: str) -> dict[str, pd.Series]:
    """Three series of a 500-step run logged every step; what follows step t is ``future``:
    ``same``, ``changed`` (a: within a decade → spans decades; b: spans decades → crosses
    <= 0; c: constant → noisy) or ``stopped`` (the run ends at t)."""
    rng = np.random.default_rng(3)
    steps = np.arange(N)
    a = 1.5 + 0.1 * _ramp(7)  # positive, within one decade
    b = 10.0 ** (np.linspace(0, 15, N) + 0.05 * rng.normal(size=N))  # 3 decades by point 100
    c = np.full(N, 0.25)  # a setting, e.g. llc/nbeta
    if future == "changed":
        a[t + 1 :] *= 1e4
        b[t + 1 :] = -1.0 - rng.random(N - t - 1)
        c[t + 1 :] += rng.normal(size=N - t - 1)
    keep = steps <= t if future == "stopped" else steps >= 0
    return {k: pd.Series(v[keep], index=steps[keep]) for k, v in {"a": a, "b": b, "c": c}.items()}


def test_detect_decides_scale_constancy_and_surrogate_length_causally():
    """``detect``'s per-series decisions (log10 scale, constant-series skip, surrogate
    length) come from the burn-in and the planned length: scores, thresholds and warnings up
    to t are the same whether the series go on unchanged, change scale after t, or stop."""
    from phasewatch.detect.run import DetectConfig, series_scores

    cfg, t = DetectConfig(window_frac=0.1, surrogates=50), 300
    runs = {f: series_scores(_detect_series(t, f), N, 0, cfg) for f in ("same", "changed")}
    runs["stopped"] = series_scores(_detect_series(t, "stopped"), N, 0, cfg)
    ref = runs["same"]
    assert set(ref) == {"a", "b"}  # c is constant over its burn-in: skipped in every future
    for future, got in runs.items():
        assert set(got) == set(ref), future
        for key, ss in ref.items():
            upto = ss.steps <= t
            for name, v in ss.scores.items():
                np.testing.assert_array_equal(got[key].scores[name][: upto.sum()], v[upto])
    for future, got in runs.items():
        for key, ss in ref.items():
            th, th_ref = got[key].surrogate_thresholds(), ss.surrogate_thresholds()
            assert th == th_ref, (future, key)
            for name in ews.INDICATORS:
                tau_ref, tau = ss.scores[f"tau_{name}"], got[key].scores[f"tau_{name}"]
                w_ref = ews.first_warning(ss.steps, tau_ref, th_ref[name], until=t)
                assert ews.first_warning(got[key].steps, tau, th[name], until=t) == w_ref
    assert ref["b"].plan.log10 and not ref["a"].plan.log10


def test_calibrate_keeps_the_in_sample_false_alarm_rate_at_most_alpha():
    null = np.linspace(-1, 1, 50)
    for alpha in (0.02, 0.1, 0.3):
        theta = ews.calibrate(null, alpha)
        assert (null >= theta).mean() <= alpha
        assert (null >= theta).mean() > alpha - 1 / 50  # and not needlessly conservative
    with pytest.raises(ValueError, match="no null series"):
        ews.calibrate(np.array([]), 0.1)


def test_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="alpha"):
        ews.EWSConfig(alpha=1.5)
    with pytest.raises(ValueError, match="window"):
        ews.EWSConfig(window=1)
