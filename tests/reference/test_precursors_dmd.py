"""The ``dmd`` trajectory signal against known answers.

Known answers: snapshots of a linear system z_k = C x_k, x_{k+1} = A x_k (exact DMD of
its Hankel matrix recovers A's eigenvalues with zero residual); per-sample losses from a
location-scale family whose location and scale follow linear dynamics (their quantile
coordinates do too, so the residual is zero) and the same with the dynamics switched
mid-run (residual large exactly while the window straddles the switch); effective ranks of
rank-1 and flat-spectrum matrices; the 1-D Wasserstein-2 distance of shifted
distributions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import phasewatch.signals  # noqa: F401  (registers the signals)
from phasewatch.errors import ConfigError
from phasewatch.signals.base import get
from phasewatch.signals.precursors.dmd import (
    DMDSettings,
    dmd_of_losses,
    effective_rank,
    exact_dmd,
    hankel,
    quantile_coordinates,
)
from phasewatch.signals.trajectory import History, NotApplicable

GEN = torch.Generator().manual_seed(0)


def table(losses: np.ndarray, steps: np.ndarray | None = None) -> pd.DataFrame:
    """A tidy ``per_sample_loss`` table (step, sample, loss) of a (T, n) loss matrix."""
    t, n = losses.shape
    steps = np.arange(t) * 10 if steps is None else steps
    return pd.DataFrame(
        {"step": np.repeat(steps, n), "sample": np.tile(np.arange(n), t), "loss": losses.ravel()}
    )


def history(df: pd.DataFrame, step: int) -> History:
    empty = pd.DataFrame(columns=["step", "key", "value"])
    return History(step=step, metrics=empty, tables={"per_sample_loss": df})


def linear_system(steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Snapshots (steps, 6) of x_{k+1} = A x_k observed through a random C (6 × 4), and
    A's eigenvalues: a damped rotation 0.97·e^{±0.3i}, a decay 0.9, a growth 1.02."""
    rng = np.random.default_rng(seed)
    c, s = np.cos(0.3), np.sin(0.3)
    a = np.zeros((4, 4))
    a[:2, :2] = 0.97 * np.array([[c, -s], [s, c]])
    a[2, 2], a[3, 3] = 0.9, 1.02
    obs, x, zs = rng.standard_normal((6, 4)), rng.standard_normal(4), []
    for _ in range(steps):
        zs.append(obs @ x)
        x = a @ x
    return np.array(zs), np.linalg.eigvals(a)


def location_scale_losses(steps: int, switch: int | None = None, n: int = 200) -> np.ndarray:
    """(steps, n) losses ℓ_i(k) = 1 + a_k + b_k u_i with u_i fixed draws and
    (a, b) decaying by (0.9, 0.95) per checkpoint — after checkpoint ``switch`` by
    (0.7, 0.8). Sorting preserves the sample order (b > 0), so the quantile coordinates
    are 1 + a_k + b_k Q_u: a linear system with eigenvalues {1, 0.9, 0.95} (then
    {1, 0.7, 0.8}) observed through a rank-2 map; the Hankel matrix has rank 3."""
    u = np.random.default_rng(7).standard_normal(n)
    a, b, rows = 0.5, 1.0, []
    for k in range(steps):
        rows.append(1 + a + b * u)
        fast = switch is not None and k >= switch
        a, b = (a * 0.7, b * 0.8) if fast else (a * 0.9, b * 0.95)
    return np.array(rows)


def test_linear_system_has_zero_residual_and_its_spectral_radius():
    z, eig = linear_system(16)
    fit = exact_dmd(hankel(z, 4), rank=4)
    assert 0 <= fit.residual < 1e-8
    assert fit.rank == 4
    assert fit.spectral_radius == pytest.approx(1.02, abs=1e-8)
    np.testing.assert_allclose(np.sort_complex(fit.eigenvalues), np.sort_complex(eig), atol=1e-8)


def test_residual_at_a_planted_switch_of_a_linear_system():
    """x_{k+1} = A₁x_k until k = 25, then A₂ (both two damped rotations, the second
    faster): the residual is ≈ 0 while the window sees one system and large while it
    straddles the switch (values at 26..39 for W = 16, d = 4)."""

    def rotations(t1: float, t2: float) -> np.ndarray:
        a = np.zeros((4, 4))
        for i, (th, r) in enumerate([(t1, 0.97), (t2, 0.99)]):
            a[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = r * np.array(
                [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
            )
        return a

    rng = np.random.default_rng(0)
    a1, a2 = rotations(0.3, 0.1), rotations(1.2, 0.6)
    obs, x, zs = rng.standard_normal((6, 4)), rng.standard_normal(4), []
    for k in range(60):
        zs.append(obs @ x)
        x = (a2 if k >= 25 else a1) @ x
    z = np.array(zs)
    res = {t: exact_dmd(hankel(z[t - 15 : t + 1], 4), rank=4).residual for t in range(15, 60)}
    assert max(res[t] for t in range(15, 26)) < 1e-8
    assert all(res[t] > 0.03 for t in range(26, 40))
    assert 0.1 < max(res.values()) < 0.5  # measured 0.22
    assert max(res[t] for t in range(40, 60)) < 1e-8


def test_truncating_below_the_system_order_leaves_a_residual():
    z, _ = linear_system(16)
    assert 1e-3 < exact_dmd(hankel(z, 4), rank=2).residual <= 1


def test_losses_with_linear_quantile_dynamics_have_zero_residual():
    losses = location_scale_losses(16)
    fit = dmd_of_losses(losses, DMDSettings(rank=3))
    assert fit.residual < 1e-8 and fit.rank == 3
    assert fit.spectral_radius == pytest.approx(1.0, abs=1e-8)  # the constant level
    eig = np.sort(np.abs(fit.eigenvalues))
    np.testing.assert_allclose(eig, [0.9, 0.95, 1.0], atol=1e-8)


def test_log_probabilities_give_the_same_values_as_losses():
    losses = np.random.default_rng(2).gamma(2.0, size=(16, 50))
    a, b = dmd_of_losses(losses, DMDSettings()), dmd_of_losses(-losses, DMDSettings())
    assert a.residual == pytest.approx(b.residual, rel=1e-9, abs=1e-15)
    assert a.spectral_radius == pytest.approx(b.spectral_radius, rel=1e-9)
    assert a.effective_rank == pytest.approx(b.effective_rank, rel=1e-9)


def test_residual_is_large_while_the_window_straddles_a_regime_change():
    """Dynamics switch after checkpoint 30; the window of W = 16 straddles the switch for
    the values at checkpoints 31..44 and lies on one side of it otherwise. The residual is
    relative to the whole quantile profile, whose constant level (1 nat) dominates here,
    hence the small but, against the 1e-16 floor, unmistakable values."""
    switch, settings = 30, DMDSettings(rank=3)
    losses = location_scale_losses(80, switch=switch)
    df, fn = table(losses), get("dmd")
    res = {
        k: fn.run(history(df, 10 * k), settings, generator=GEN).values["dmd/residual"]
        for k in range(15, 80)
    }
    straddling = [res[k] for k in range(switch + 1, switch + settings.window - 1)]
    assert max(res[k] for k in range(15, switch + 1)) < 1e-8  # before
    assert all(1e-4 < r <= 1 for r in straddling)
    assert 3e-3 < max(straddling) < 3e-2  # measured 6.0e-3
    assert max(res[k] for k in range(switch + settings.window - 1, 80)) < 1e-8  # well after


def test_effective_rank_of_rank_one_and_flat_spectra():
    # a Hankel matrix of z_k = 0.9^k v is v_d ⊗ (0.9^k): rank 1
    z = np.outer(0.9 ** np.arange(16), np.random.default_rng(0).standard_normal(5))
    fit = exact_dmd(hankel(z, 4), rank=4)
    assert fit.effective_rank == pytest.approx(1.0, abs=1e-9)
    assert fit.rank == 1 and fit.residual < 1e-8
    assert fit.spectral_radius == pytest.approx(0.9, abs=1e-9)
    assert effective_rank(np.array([2.0, 2.0, 2.0, 0.0])) == pytest.approx(3.0, rel=1e-12)
    assert effective_rank(np.zeros(3)) == 1.0


def test_quantile_coordinates_measure_wasserstein_distance():
    x = np.random.default_rng(1).standard_normal(1000)
    z = quantile_coordinates(np.stack([x, x + 0.3]), 16)
    assert z.shape == (2, 16)
    assert np.linalg.norm(z[1] - z[0]) == pytest.approx(0.3, rel=1e-12)  # W2 of a shift


def test_hankel_stacks_delays_in_time_order():
    z = np.arange(12.0).reshape(6, 2)  # snapshots (0,1), (2,3), ...
    h = hankel(z, 3)
    assert h.shape == (6, 4)
    np.testing.assert_array_equal(h[:, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(h[:, 3], [6, 7, 8, 9, 10, 11])
    with pytest.raises(ValueError, match="delays"):
        hankel(z, 7)


def test_value_at_t_ignores_everything_logged_after_t():
    losses = location_scale_losses(40)
    future = losses.copy()
    future[25:] = np.random.default_rng(3).gamma(2.0, size=(15, losses.shape[1]))
    fn = get("dmd")
    a = fn.run(history(table(losses), 240), DMDSettings(), generator=GEN).values
    b = fn.run(history(table(future), 240), DMDSettings(), generator=GEN).values
    assert a == b
    assert fn.run(history(table(future), 250), DMDSettings(), generator=GEN).values != a


def test_registered_signal_matches_the_pure_functions():
    spec = get("dmd")
    assert spec.kind == "trajectory" and spec.needs == ("samples",)
    losses = np.random.default_rng(4).gamma(2.0, size=(30, 40))
    settings = spec.settings({"window": 12, "delays": 3, "quantiles": 8, "rank": 2})
    out = spec.run(history(table(losses), 200), settings, generator=GEN)
    fit = dmd_of_losses(losses[9:21], settings)
    assert out.values == {
        "dmd/residual": fit.residual,
        "dmd/spectral_radius": fit.spectral_radius,
        "dmd/effective_rank": fit.effective_rank,
        "dmd/rank": 2.0,
    }
    assert out.warnings == []


def test_uneven_checkpoints_are_measured_with_a_warning():
    losses = location_scale_losses(16)
    steps = np.r_[np.arange(15) * 10, 200]
    out = get("dmd").run(history(table(losses, steps), 200), DMDSettings(), generator=GEN)
    assert "unevenly spaced" in out.warnings[0]


def test_too_few_checkpoints_is_not_applicable_naming_what_it_needs():
    df = table(location_scale_losses(9))
    with pytest.raises(NotApplicable, match=r">= 16 checkpoints.*has 9 by step 80"):
        get("dmd").run(history(df, 80), DMDSettings(), generator=GEN)


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"delays": 0}, "delays"),
        ({"window": 5, "delays": 4}, "window"),
        ({"quantiles": 0}, "quantiles"),
        ({"rank": 12}, "rank"),  # = window − delays: the residual would be identically 0
        ({"rtol": 0.0}, "rtol"),
    ],
)
def test_invalid_settings_name_the_field(bad, field):
    with pytest.raises(ConfigError, match=field):
        DMDSettings(**bad)
