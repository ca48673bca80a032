"""Change points (ruptures PELT, penalty c·σ̂²·ln n) on series with known breakpoints."""

from __future__ import annotations

import numpy as np
import pytest

from phasewatch.detect.changepoints import (
    ChangePointConfig,
    change_points,
    noise_sigma,
    penalty_sweep,
    scale_for,
)

STEPS = np.arange(100) * 50  # logged every 50 steps
TRUE = [2000, 3500]  # the planted breakpoints (points 40 and 70)


def _piecewise(seed: int, sigma: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[np.zeros(40), np.full(30, 3.0), np.full(30, -1.0)] + rng.normal(0, sigma, 100)


def test_recovers_planted_breakpoints_within_two_points():
    """Shifts of 3σ and 4σ: all 50 seeds give exactly the two planted changes, each within
    2 logged points (100 steps)."""
    for seed in range(50):
        found = change_points(STEPS, _piecewise(seed))
        assert len(found) == 2, (seed, found)
        assert all(abs(f - t) <= 100 for f, t in zip(found, TRUE)), (seed, found)


def test_pure_noise_has_no_change_points():
    false = sum(
        len(change_points(STEPS, np.random.default_rng(s).normal(size=100))) for s in range(50)
    )
    assert false <= 2  # at most 2 spurious change points over 50 noise series


def test_noise_sigma_is_robust_to_the_jumps():
    sig = [noise_sigma(_piecewise(s, sigma=0.5)) for s in range(30)]
    assert np.mean(sig) == pytest.approx(0.5, rel=0.1)


def test_wide_positive_series_are_analysed_in_log10():
    """A loss that drops three decades: one change, found on the log scale."""
    levels = np.r_[np.zeros(50), np.full(50, -3.0)]
    assert scale_for(10.0**levels) == "log10" and scale_for(np.linspace(1, 2, 10)) == "linear"
    for seed in range(10):
        noise = np.random.default_rng(seed).normal(0, 0.05, 100)
        assert change_points(STEPS, 10.0 ** (levels + noise)) == [2500]


def test_penalty_sweep_is_monotone_and_reports_the_choice():
    table = penalty_sweep(STEPS, _piecewise(3), penalties=(0.25, 1.0, 3.0, 30.0))
    counts = table["n_change_points"].tolist()
    assert counts == sorted(counts, reverse=True) and counts[0] > 2 and counts[2] == 2


def test_short_series_and_bad_config():
    assert change_points(STEPS[:5], np.arange(5.0)) == []
    with pytest.raises(ValueError, match="model"):
        ChangePointConfig(model="normal")
    with pytest.raises(ValueError, match="penalty"):
        ChangePointConfig(penalty=0)
