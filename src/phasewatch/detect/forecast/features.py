"""Causal features of one run at a decision step t.

Everything here is computed from the rows logged at steps <= t: the run's scalar series
(metrics and signals, :func:`phasewatch.detect.transitions.run_series`) are cut at t
*before* anything else, including the choice of scale (log10 or linear, decided from the
values up to t). ``tests/unit/test_forecast.py`` alters a run after t and checks that no
feature at t moves.

For each series x (from the analysis start s to t, transformed by its scale):

* ``last``: x at the last logged step <= t;
* ``change``: last − x at s (the change since the start event);
* ``slope``: the least-squares slope of x against step over the last ``window`` points,
  per 1,000 steps;
* ``tau_variance``, ``tau_ac1``: Kendall's τ of the rolling variance and lag-1
  autocorrelation of the causally detrended x (critical slowing down, Scheffer et al. 2009;
  :mod:`phasewatch.detect.ews`) at t.

A feature is named ``<series key>|<statistic>``; a series with too few points for a
statistic gives NaN for it (the forecaster imputes NaN with the training mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from phasewatch.config import require
from phasewatch.detect import ews
from phasewatch.detect.changepoints import scale_for
from phasewatch.detect.transitions import run_series

STATS = ("last", "change", "slope", "tau_variance", "tau_ac1")


@dataclass(frozen=True)
class DecisionRule:
    """The step at which a run-level forecast is made, fixed before looking at outcomes.

    ``t = onset(event) + offset_frac · planned_steps`` (``event`` an onset name in
    ``events.json``, e.g. ``memorisation``), or ``t = offset_frac · planned_steps`` when
    ``event`` is empty.

    Attributes:
        event: onset name the decision is anchored to ('' = the start of training).
        offset_frac: offset as a fraction of the run's planned steps, in [0, 1).
    """

    event: str = "memorisation"
    offset_frac: float = 0.1

    def __post_init__(self) -> None:
        require(0 <= self.offset_frac < 1, "offset_frac", "a float in [0, 1)", self.offset_frac)

    def step(self, onsets: dict[str, dict], planned: int) -> int | None:
        """The decision step of a run with these onsets and ``planned`` steps; None when the
        anchoring event never happened."""
        base = 0
        if self.event:
            base = (onsets.get(self.event) or {}).get("step")
            if base is None:
                return None
        return int(base + round(self.offset_frac * planned))

    def describe(self) -> str:
        """The rule in words, for tables and the protocol."""
        anchor = f"onset of {self.event}" if self.event else "step 0"
        return f"{anchor} + {self.offset_frac:g} x planned steps"


@dataclass(frozen=True)
class FeatureConfig:
    """Windows of the features, in logged points.

    Attributes:
        window: points of the slope and of the indicators' rolling windows (>= 3).
        min_points: indicator values before τ is defined (>= 3).
    """

    window: int = 10
    min_points: int = 8

    def __post_init__(self) -> None:
        require(self.window >= 3, "window", "an integer >= 3", self.window)
        require(self.min_points >= 3, "min_points", "an integer >= 3", self.min_points)


def _scaled(values: np.ndarray) -> np.ndarray:
    if scale_for(values) != "log10":
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def series_features(s: pd.Series, start: int, t: int, cfg: FeatureConfig) -> dict[str, float]:
    """The :data:`STATS` of one series (values indexed by step) between ``start`` and ``t``.

    Args:
        s: values indexed by step (any steps: those after ``t`` are dropped first).
        start: first step of the analysis (the anchoring event's onset).
        t: the decision step.
        cfg: the windows.
    """
    s = s[(s.index >= start) & (s.index <= t)].dropna()
    out = dict.fromkeys(STATS, float("nan"))
    if len(s) < 2:
        return out
    steps = s.index.to_numpy(dtype=float)
    x = _scaled(s.to_numpy(dtype=float))
    out["last"], out["change"] = float(x[-1]), float(x[-1] - x[0])
    k = min(cfg.window, len(x))
    if k >= 3 and np.ptp(steps[-k:]) > 0 and np.isfinite(x[-k:]).all():
        out["slope"] = float(np.polyfit(steps[-k:], x[-k:], 1)[0] * 1_000)
    ecfg = ews.EWSConfig(window=cfg.window, detrend=cfg.window, min_points=cfg.min_points)
    if len(x) >= ecfg.burn_in + cfg.min_points and np.isfinite(x).all():
        sc = ews.scores(x[None], ecfg)
        out["tau_variance"] = float(sc["tau_variance"][0, -1])
        out["tau_ac1"] = float(sc["tau_ac1"][0, -1])
    return out


def run_features(
    metrics: pd.DataFrame,
    signals: pd.DataFrame | None,
    start: int,
    t: int,
    cfg: FeatureConfig,
) -> dict[str, float]:
    """``{"<key>|<stat>": value}`` for every scalar series of a run, from rows <= ``t``.

    Args:
        metrics: tidy ``(step, key, value)`` metrics of the run.
        signals: its signals table (``step, key, value, …``) or None.
        start: first step of the analysis.
        t: the decision step (rows after it are dropped before anything is computed).
        cfg: the windows.
    """
    m = metrics[metrics["step"] <= t]
    sig = None if signals is None else signals[signals["step"] <= t]
    out: dict[str, float] = {}
    for key, s in run_series(m, sig).items():
        for stat, v in series_features(s, start, t, cfg).items():
            out[f"{key}|{stat}"] = v
    return out
