"""The ``loss_covariance`` trajectory signal against known answers.

Known answers: covariances with a planted spectrum (isotropic of rank r: PR = r and heat
capacity 0; rank 1: PR = 1; spectrum (3, 1): PR = 1.6 and C_V = ¾·¼·log²3), linear
trends (rank 1 when mean-centred, nothing left when linearly detrended), and a planted
second-order transition: per-sample losses driven by the order parameter of a slowly
swept supercritical pitchfork dx = (μ(τ)x − x³)dτ + σ dW, whose fluctuations peak where
μ crosses 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import phasewatch.signals  # noqa: F401  (registers the signals)
from phasewatch.errors import ConfigError
from phasewatch.signals.base import get
from phasewatch.signals.precursors.loss_covariance import (
    LossCovarianceSettings,
    covariance_spectrum,
    spectrum_stats,
)
from phasewatch.signals.trajectory import History, NotApplicable

GEN = torch.Generator().manual_seed(0)


def planted(spectrum: list[float], w: int, n: int, seed: int = 0) -> np.ndarray:
    """(w, n) losses whose window covariance has exactly the eigenvalues ``spectrum``:
    L = 1 + U diag(√((w−1)λ)) Vᵀ with U (w, r) orthonormal and orthogonal to the ones
    vector (zero-mean columns), V (n, r) orthonormal."""
    rng = np.random.default_rng(seed)
    r = len(spectrum)
    a = np.concatenate([np.ones((w, 1)), rng.standard_normal((w, r))], axis=1)
    u = np.linalg.qr(a)[0][:, 1:]  # orthonormal, orthogonal to 1
    v = np.linalg.qr(rng.standard_normal((n, r)))[0]
    return 1.0 + u @ np.diag(np.sqrt((w - 1) * np.asarray(spectrum))) @ v.T


def table(losses: np.ndarray, steps: np.ndarray | None = None) -> pd.DataFrame:
    """A tidy ``per_sample_loss`` table (step, sample, loss) of a (T, n) loss matrix."""
    t, n = losses.shape
    steps = np.arange(t) * 10 if steps is None else steps
    return pd.DataFrame(
        {
            "step": np.repeat(steps, n),
            "sample": np.tile(np.arange(n), t),
            "loss": losses.ravel(),
        }
    )


def history(df: pd.DataFrame, step: int) -> History:
    return History(
        step=step,
        metrics=pd.DataFrame(columns=["step", "key", "value"]),
        tables={"per_sample_loss": df},
    )


@pytest.mark.parametrize("n", [6, 40])  # W > n: n × n covariance; W < n: W × W Gram dual
@pytest.mark.parametrize("rank", [1, 2, 5])
def test_isotropic_rank_r_has_participation_ratio_r_and_zero_heat_capacity(n, rank):
    s = spectrum_stats(covariance_spectrum(planted([0.7] * rank, 16, n)))
    assert s["participation_ratio"] == pytest.approx(rank, abs=1e-9)
    assert s["heat_capacity"] == pytest.approx(0.0, abs=1e-9)
    assert s["total_variance"] == pytest.approx(0.7 * rank, rel=1e-9)
    assert s["top_eig"] == pytest.approx(0.7, rel=1e-9)


@pytest.mark.parametrize("n", [6, 40])
def test_two_level_spectrum_matches_closed_form(n):
    s = spectrum_stats(covariance_spectrum(planted([3.0, 1.0], 16, n)))
    assert s["participation_ratio"] == pytest.approx(16 / 10, rel=1e-9)
    # C_V = p1 p2 (log p1 − log p2)² for two levels p = (¾, ¼)
    assert s["heat_capacity"] == pytest.approx(0.75 * 0.25 * math.log(3) ** 2, rel=1e-9)
    assert (s["total_variance"], s["top_eig"]) == pytest.approx((4.0, 3.0), rel=1e-9)


def test_gram_dual_matches_direct_covariance():
    rng = np.random.default_rng(1)
    losses = rng.gamma(2.0, size=(12, 30))
    want = np.sort(np.linalg.eigvalsh(np.cov(losses, rowvar=False)))[::-1][:11]
    got = covariance_spectrum(losses)
    assert got.shape == (11,)  # rank W − 1
    np.testing.assert_allclose(got, want, rtol=1e-9)
    np.testing.assert_allclose(
        covariance_spectrum(losses[:, :8]),
        np.linalg.eigvalsh(np.cov(losses[:, :8], rowvar=False))[::-1],
        rtol=1e-9,
    )


def test_linear_trends_are_rank_one_centred_and_vanish_detrended():
    w, slopes = 16, np.array([0.5, -1.0, 2.0, 0.25])
    losses = 3.0 + np.outer(np.arange(w), slopes)
    s = spectrum_stats(covariance_spectrum(losses, "none"))
    # Var(k) over k = 0..W−1 with ddof 1 is W(W+1)/12
    assert s["total_variance"] == pytest.approx(w * (w + 1) / 12 * (slopes**2).sum(), rel=1e-9)
    assert s["participation_ratio"] == pytest.approx(1.0, abs=1e-9)
    assert s["heat_capacity"] == pytest.approx(0.0, abs=1e-9)
    assert covariance_spectrum(losses, "linear").size == 0


def pitchfork_losses(seeds, *, checkpoints=200, dt=5.0, sub=50, sigma=0.05, n=16, noise=0.2):
    """Per-sample losses driven by a swept pitchfork, one (checkpoints, n) matrix per seed.

    μ(τ) rises linearly from −1 to +1 over the run, crossing 0 at checkpoint
    ``checkpoints // 2``; the order parameter x (Euler–Maruyama, ``sub`` steps per
    checkpoint interval ``dt``) drives every sample, ℓ_i = b_i + a_i x + noise·ε_i. The
    sweep is slow (relaxation time 1/|μ| <= 5 checkpoints away from the crossing), so the
    fluctuations of x are largest around μ = 0.
    """
    rng = np.random.default_rng(list(seeds))
    s = len(seeds)
    x, xs, h = np.zeros(s), [], dt / sub
    span = checkpoints * dt
    for k in range(checkpoints):
        for j in range(sub):
            mu = 2 * (k + j / sub) * dt / span - 1
            x = x + (mu * x - x**3) * h + sigma * math.sqrt(h) * rng.standard_normal(s)
        xs.append(x)
    xs = np.stack(xs, axis=1)  # (seeds, checkpoints)
    a, b = rng.uniform(0.5, 1.5, (s, 1, n)), rng.uniform(0.5, 2.0, (s, 1, n))
    return b + xs[:, :, None] * a + noise * rng.standard_normal((s, checkpoints, n))


def test_heat_capacity_peaks_at_the_planted_pitchfork_bifurcation():
    """For each of 5 seeds, the argmax over t of the heat capacity (and of the total
    variance) lies within 15 checkpoints (|Δμ| <= 0.15 on a sweep of range 2) of the
    crossing, shifted by the trailing window's lag (W − 1)/2. Measured offsets over 10
    seeds: −9.5 to +12.5 checkpoints. The peak stands out of the non-critical first and
    last quarters of the run (measured peak / median 1.5–3.9) and the participation ratio
    drops there (one collective mode takes over)."""
    checkpoints, w = 200, 10
    crossing = checkpoints // 2 + (w - 1) / 2
    quarter = checkpoints // 4
    for losses in pitchfork_losses(range(5), checkpoints=checkpoints):
        # the signal's value at t (equal to the registered signal's, tested below)
        steps = np.arange(w - 1, checkpoints)
        rows = [spectrum_stats(covariance_spectrum(losses[t - w + 1 : t + 1])) for t in steps]
        hc, tv, pr = (
            np.array([r[k] for r in rows])
            for k in ("heat_capacity", "total_variance", "participation_ratio")
        )
        assert abs(steps[hc.argmax()] - crossing) <= 15, steps[hc.argmax()]
        assert abs(steps[tv.argmax()] - crossing) <= 15, steps[tv.argmax()]
        for calm in (hc[:quarter], hc[-quarter:]):
            assert 1.4 * np.median(calm) < hc.max() < 10 * np.median(calm)
        assert pr[hc.argmax()] < 0.8 * np.median(pr[:quarter])


def test_value_at_t_ignores_everything_logged_after_t():
    rng = np.random.default_rng(3)
    losses = rng.gamma(2.0, size=(40, 12))
    future = losses.copy()
    future[25:] = rng.gamma(5.0, size=(15, 12))
    fn, t = get("loss_covariance"), 24 * 10
    a = fn.run(history(table(losses), t), LossCovarianceSettings(), generator=GEN).values
    b = fn.run(history(table(future), t), LossCovarianceSettings(), generator=GEN).values
    assert a == b
    c = fn.run(history(table(future), 25 * 10), LossCovarianceSettings(), generator=GEN).values
    assert c != a


def test_registered_signal_reads_the_last_window_of_the_history():
    rng = np.random.default_rng(4)
    losses = rng.gamma(2.0, size=(30, 20))
    spec = get("loss_covariance")
    assert spec.kind == "trajectory" and spec.needs == ("samples",)
    settings = spec.settings({"window": 8, "detrend": "linear"})
    out = spec.run(history(table(losses), 20 * 10), settings, generator=GEN)
    want = spectrum_stats(covariance_spectrum(losses[13:21], "linear"))
    assert out.values == {f"loss_covariance/{k}": v for k, v in want.items()}
    assert out.warnings == []


def test_too_few_checkpoints_is_not_applicable_naming_what_it_needs():
    losses = np.random.default_rng(5).gamma(2.0, size=(10, 4))
    with pytest.raises(NotApplicable, match=r">= 16 checkpoints.*has 10"):
        get("loss_covariance").run(
            history(table(losses), 1000), LossCovarianceSettings(), generator=GEN
        )
    empty = History(step=5, metrics=pd.DataFrame(columns=["step", "key", "value"]))
    with pytest.raises(NotApplicable, match="per_sample_loss"):
        get("loss_covariance").run(empty, LossCovarianceSettings(), generator=GEN)


def test_constant_losses_give_nan_ratios_and_a_warning():
    out = get("loss_covariance").run(
        history(table(np.full((16, 5), 0.3)), 150), LossCovarianceSettings(), generator=GEN
    )
    assert out.values["loss_covariance/total_variance"] == 0.0
    assert math.isnan(out.values["loss_covariance/participation_ratio"])
    assert math.isnan(out.values["loss_covariance/heat_capacity"])
    assert "constant" in out.warnings[0]


def test_samples_missing_or_infinite_at_a_checkpoint_are_dropped_with_a_warning():
    losses = planted([1.0, 1.0], 16, 6)
    df = table(losses)
    df = df[~((df["sample"] == 5) & (df["step"] == 30))]
    df.loc[(df["sample"] == 2) & (df["step"] == 60), "loss"] = np.inf
    out = get("loss_covariance").run(history(df, 150), LossCovarianceSettings(), generator=GEN)
    assert "2 probe sample(s) missing or not finite" in out.warnings[0]
    want = spectrum_stats(covariance_spectrum(losses[:, [0, 1, 3, 4]]))
    assert out.values["loss_covariance/total_variance"] == pytest.approx(want["total_variance"])


@pytest.mark.parametrize(
    "bad", [{"window": 2}, {"window": 3, "detrend": "linear"}, {"detrend": "quadratic"}]
)
def test_invalid_settings_name_the_field(bad):
    with pytest.raises(ConfigError, match=next(iter(bad)) if "window" in bad else "detrend"):
        LossCovarianceSettings(**bad)


def test_row_order_of_the_table_does_not_matter():
    """Sorted tables take a searchsorted fast path, shuffled ones a hashing path."""
    losses = np.random.default_rng(6).gamma(2.0, size=(30, 9))
    df = table(losses)
    shuffled = df.sample(frac=1.0, random_state=0)
    fn, s = get("loss_covariance"), LossCovarianceSettings(window=5)
    for t in (40, 45, 150, 290, 10_000):
        a = fn.run(history(df, t), s, generator=GEN).values
        assert a == fn.run(history(shuffled, t), s, generator=GEN).values
    with pytest.raises(NotApplicable, match="has 4 by step 30"):
        fn.run(history(shuffled, 30), s, generator=GEN)
