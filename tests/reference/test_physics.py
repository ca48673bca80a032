"""Temperature fits of the time to transition on runs with a known law (detect/physics.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phasewatch.detect.physics import temperature_fits


def runs(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["weight_decay", "train_frac", "time_to_transition"])


def confounded(b: float = -1.0, noise: float = 0.0, seeds: int = 1) -> pd.DataFrame:
    """t = e^{a_g}·wd^b; the slow setting (train_frac 0.3, a = 8) was run at small weight
    decays only, the fast one (0.5, a = 6) at large ones."""
    rng = np.random.default_rng(0)
    rows = []
    for tf, a, wds in ((0.3, 8.0, (0.1, 0.3, 1.0)), (0.5, 6.0, (1.0, 3.0))):
        for wd in wds:
            for _ in range(seeds):
                rows.append((wd, tf, np.exp(a + b * np.log(wd) + noise * rng.normal())))
    return runs(rows)


def test_power_law_exponent_is_recovered_within_settings():
    d = confounded()
    fit = temperature_fits(d, ["weight_decay"], ["weight_decay", "train_frac"])["weight_decay"]
    pl = fit["power_law"]
    assert pl["exponent"] == pytest.approx(-1.0, abs=1e-9)
    assert pl["ci95"] == pytest.approx([-1.0, -1.0], abs=1e-9)
    assert pl["n"] == 5 and pl["settings"] == 2 and fit["controls"] == ["train_frac"]
    # pooled over the settings the data size's effect is credited to the weight decay
    pooled = temperature_fits(d, ["weight_decay"])["weight_decay"]["power_law"]["exponent"]
    assert pooled < -1.5


def test_arrhenius_exponent_is_recovered():
    d = runs([(x, 0.4, np.exp(3.0 + 2.0 / x)) for x in (0.5, 1.0, 2.0, 4.0)])
    fit = temperature_fits(d, ["weight_decay"], ["weight_decay"])["weight_decay"]["arrhenius"]
    assert fit["exponent"] == pytest.approx(2.0, abs=1e-9)
    assert fit["intercept"] == pytest.approx(3.0, abs=1e-9)


def test_noisy_fit_interval_covers_the_truth():
    d = confounded(noise=0.2, seeds=8)
    pl = temperature_fits(d, ["weight_decay"], ["weight_decay", "train_frac"])["weight_decay"]
    lo, hi = pl["power_law"]["ci95"]
    assert lo < -1.0 < hi and hi - lo < 0.6


def test_settings_with_one_value_are_left_out():
    d = pd.concat([confounded(), runs([(1.0, 0.7, 50.0), (1.0, 0.7, 60.0)])])
    pl = temperature_fits(d, ["weight_decay"], ["weight_decay", "train_frac"])["weight_decay"]
    assert pl["power_law"]["n"] == 5 and pl["power_law"]["exponent"] == pytest.approx(-1.0)
    # no setting with two values: no fit
    assert temperature_fits(runs([(1.0, 0.3, 5.0), (1.0, 0.5, 9.0)]), ["weight_decay"]) == {}
