"""Behavioural onsets of a run and the series its signals are read from.

Three onset definitions of a target metric (e.g. ``test/acc``), all recorded in
``events.json`` with the one chosen for lead times:

* ``threshold``: the first logged step with ``target op threshold`` (default);
* ``max_slope``: the step of the steepest move towards the threshold, on a 3-point moving
  average of the target;
* ``change_point``: the change point of the target (PELT, see ``changepoints``) with the
  largest mean shift towards the threshold.

Whether a run *transitions* at all is decided by the threshold crossing: a run that never
crosses has no onset under any definition (it is a null run of the lead-time benchmark).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from phasewatch.config import require_choice
from phasewatch.detect.changepoints import ChangePointConfig, change_points, scale_for
from phasewatch.detect.onsets import first_crossing
from phasewatch.errors import ConfigError

ONSETS = ("threshold", "max_slope", "change_point")
_INDEXED = re.compile(r"/\d+$")  # per-index families (fourier/embed_norm/17, heads/x/L0H1)


@dataclass(frozen=True)
class Target:
    """The behaviour whose onset signals should anticipate.

    Attributes:
        key: metric key (``test/acc``).
        threshold: crossing level, in the metric's units.
        op: ``>=`` (rises to) or ``<=`` (falls to).
        onset: definition used for lead times: threshold, max_slope or change_point.
    """

    key: str = "test/acc"
    threshold: float = 0.99
    op: str = ">="
    onset: str = "threshold"

    def __post_init__(self) -> None:
        require_choice("op", self.op, (">=", "<="))
        require_choice("onset", self.onset, ONSETS)


def run_series(metrics: pd.DataFrame, signals: pd.DataFrame | None = None) -> dict[str, pd.Series]:
    """Every scalar series of a run, indexed by step: metrics and signals (step, key, value),
    skipping per-index families (keys ending in ``/<int>``) and series with < 2 values."""
    frames = [metrics[["step", "key", "value"]]]
    if signals is not None and not signals.empty:
        frames.append(signals[["step", "key", "value"]])
    long = pd.concat(frames, ignore_index=True)
    out = {}
    for key, g in long.groupby("key", sort=True):
        if _INDEXED.search(str(key)):
            continue
        s = g.drop_duplicates("step", keep="last").set_index("step")["value"].sort_index()
        s = s[np.isfinite(s.to_numpy(dtype=float))]
        if len(s) >= 2:
            out[str(key)] = s.astype(float)
    return out


def require_key(series: dict[str, pd.Series], key: str) -> pd.Series:
    """``series[key]``.

    Raises:
        ConfigError: naming the keys present when ``key`` is missing.
    """
    if key not in series:
        raise ConfigError(f"target={key!r} is not a metric of this run; present: {sorted(series)}")
    return series[key]


def _sign(target: Target) -> float:
    return 1.0 if target.op == ">=" else -1.0


def threshold_onset(s: pd.Series, target: Target) -> int | None:
    """The first logged step with ``target.key op threshold`` (None if never)."""
    return first_crossing(s, target.op, target.threshold)


def max_slope_onset(s: pd.Series, target: Target) -> int:
    """The logged step where the series (a centred 3-point rolling mean, indexed by step)
    moves fastest towards the target's direction (``op``)."""
    smooth = s.rolling(3, center=True, min_periods=1).mean()
    return int((_sign(target) * smooth.diff()).idxmax())


def change_point_onset(s: pd.Series, target: Target, cfg: ChangePointConfig) -> int | None:
    """The change point (step) with the largest shift of segment means towards the target's
    direction, on a log10 scale where :func:`scale_for` picks it; None without change
    points."""
    cps = change_points(s.index.to_numpy(), s.to_numpy(), cfg)
    if not cps:
        return None
    x = np.log10(s) if scale_for(s.to_numpy()) == "log10" else s
    bounds = [s.index[0], *cps, s.index[-1] + 1]
    means = [x[(x.index >= a) & (x.index < b)].mean() for a, b in zip(bounds[:-1], bounds[1:])]
    shifts = _sign(target) * np.diff(means)
    return int(cps[int(np.argmax(shifts))])


def target_onsets(
    s: pd.Series,
    target: Target,
    cfg: ChangePointConfig | None = None,
    start: int = 0,
    *,
    with_change_point: bool = True,
) -> dict[str, Any]:
    """All three onset definitions of ``s`` from step ``start`` on (None for every one if the
    threshold is never reached), and ``step``: the one ``target.onset`` chooses.
    ``with_change_point=False`` leaves the ``change_point`` onset None (not computed: it
    needs ruptures, about a second of imports) unless ``target.onset`` is ``change_point``."""
    s = s[s.index >= start]
    crossed = threshold_onset(s, target)
    wanted = with_change_point or target.onset == "change_point"
    if crossed is None:
        found: dict[str, int | None] = dict.fromkeys(ONSETS)
    else:
        found = {
            "threshold": crossed,
            "max_slope": max_slope_onset(s, target),
            "change_point": (
                change_point_onset(s, target, cfg or ChangePointConfig()) if wanted else None
            ),
        }
    return {
        "key": target.key,
        "op": target.op,
        "threshold": target.threshold,
        "definition": target.onset,
        "step": found[target.onset],
        "all": found,
    }
