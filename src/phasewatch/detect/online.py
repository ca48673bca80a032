"""Causal early warnings computed *during* training, point by point (used by ``Watcher``).

The same code path as ``phasewatch detect`` on a single run (:mod:`.run`, :mod:`.ews`),
fed incrementally: each series gets its :class:`~phasewatch.detect.run.SeriesPlan` from
its first points (:func:`~phasewatch.detect.run.plan_series`), its thresholds from AR(1)
surrogates of its burn-in as long as the planned run
(:meth:`~phasewatch.detect.run.SeriesScores.surrogate_thresholds`), and each new point's
residual, rolling variance, lag-1 autocorrelation and Kendall τ from the functions of
:mod:`.ews` applied to the trailing windows only. Those functions give every point a value
that depends on its own window alone (fixed-order sums, exact integer pair counts), so the
warnings found online are exactly those ``detect`` finds afterwards on the stored run —
``tests/unit/test_detect_online.py`` checks equality on a run directory.

Series follow :func:`~phasewatch.detect.transitions.run_series`: per-index families (keys
ending in ``/<int>``) are ignored, non-finite values skipped, and the analysis starts at
``start`` (``detect``'s start event; 0 for a watched run, which has no onsets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from phasewatch.detect import ews
from phasewatch.detect.run import SPACING_POINTS, DetectConfig, SeriesPlan, SeriesScores
from phasewatch.detect.run import plan_series as _plan_series
from phasewatch.detect.transitions import _INDEXED


@dataclass(frozen=True)
class EarlyWarning:
    """A calibrated early warning: τ of ``indicator`` on ``key`` reached ``threshold``.

    Attributes:
        step: the training step of the point at which τ first reached the threshold.
        key: the series (``test/loss``, ``geometry/norm/total``).
        indicator: ``variance`` (rolling variance) or ``ac1`` (lag-1 autocorrelation).
        tau: Kendall τ of the indicator's trend at ``step``, in [−1, 1].
        threshold: θ calibrated on AR(1) surrogates of the series' burn-in.
    """

    step: int
    key: str
    indicator: str
    tau: float
    threshold: float

    def __str__(self) -> str:
        what = "rolling variance" if self.indicator == "variance" else "lag-1 autocorrelation"
        return (
            f"early warning at step {self.step:,}: {what} of {self.key} is rising "
            f"(Kendall τ {self.tau:.3f} >= calibrated threshold {self.threshold:.3f})"
        )


class OnlineSeries:
    """One series analysed as it is logged (see module docstring)."""

    def __init__(self, key: str, planned: int, cfg: DetectConfig) -> None:
        self.key, self.planned, self.cfg = key, planned, cfg
        self.steps: list[int] = []
        self.raw: list[float] = []
        self.plan: SeriesPlan | None = None
        self.skipped = False  # constant burn-in: never analysed
        self.done = 0  # points whose indicators are computed
        self.x = np.empty(0)
        self.cols: dict[str, np.ndarray] = {}
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.thresholds: dict[str, float] = {}
        self.fired: dict[str, int] = {}

    def add(self, step: int, value: float) -> None:
        """Queue a point (steps must increase; non-finite values are skipped)."""
        if np.isfinite(value) and (not self.steps or step > self.steps[-1]):
            self.steps.append(int(step))
            self.raw.append(float(value))

    def _try_plan(self) -> bool:
        if self.plan is not None or self.skipped:
            return self.plan is not None
        if len(self.steps) < SPACING_POINTS:
            return False
        c = self.cfg.ews_for_steps(np.asarray(self.steps[:SPACING_POINTS]), self.planned)
        if len(self.steps) < c.burn_in:
            return False
        plan = _plan_series(np.asarray(self.steps), np.asarray(self.raw), self.planned, self.cfg)
        if plan is None:
            self.skipped = True
            return False
        self.plan = plan
        burn = plan.transform(np.asarray(self.raw[: c.burn_in]))
        self.thresholds = SeriesScores(np.empty(0), burn, {}, plan.cfg, plan).surrogate_thresholds()
        return True

    def update(self) -> list[EarlyWarning]:
        """Compute the indicators of every queued point; return the warnings that fired."""
        if not self._try_plan() or self.done == len(self.raw):
            return []
        c, a, n = self.plan.cfg, self.done, len(self.raw)
        self.x = np.concatenate([self.x, self.plan.transform(np.asarray(self.raw[a:n]))])
        lo = max(0, a - (c.detrend - 1))  # the trailing windows of the new points only
        res = ews.causal_residuals(self.x[None, lo:], c.detrend)[0, a - lo :]
        self._extend("residual", res)
        lo = max(0, a - (c.window - 1))
        ind = ews.rolling_indicators(self.cols["residual"][None, lo:], c.window)
        new: list[EarlyWarning] = []
        for name in ews.INDICATORS:
            self._extend(name, ind[name][0, a - lo :])
            y = self.cols[name]
            valid = np.isfinite(y[a:])
            s = self.sums.get(name, 0.0) + np.cumsum(ews.pair_counts(y[None], a)[0])
            m = self.counts.get(name, 0) + np.cumsum(valid)
            tau = ews.tau_from_counts(s, m, valid, c.min_points)
            self.sums[name], self.counts[name] = float(s[-1]), int(m[-1])
            self._extend(f"tau_{name}", tau)
            new += self._fire(name, a, tau)
        self.done = n
        return new

    def _extend(self, name: str, values: np.ndarray) -> None:
        self.cols[name] = np.concatenate([self.cols.get(name, np.empty(0)), values])

    def _fire(self, name: str, a: int, tau: np.ndarray) -> list[EarlyWarning]:
        theta = self.thresholds[name]
        if name in self.fired:
            return []
        hit = np.flatnonzero(np.isfinite(tau) & (tau >= theta))
        if not len(hit):
            return []
        i = a + int(hit[0])
        self.fired[name] = self.steps[i]
        return [EarlyWarning(self.steps[i], self.key, name, float(tau[hit[0]]), theta)]

    def scores(self) -> SeriesScores | None:
        """The series' :class:`SeriesScores` as ``detect`` computes them (None if ``detect``
        would skip it: not planned, or too short for one τ value)."""
        if self.plan is None or self.done < self.plan.cfg.burn_in + self.plan.cfg.min_points:
            return None
        order = ["residual", *ews.INDICATORS, *(f"tau_{n}" for n in ews.INDICATORS)]
        sc = {k: self.cols[k][: self.done] for k in order}  # ews.scores' order
        steps = np.asarray(self.steps[: self.done], dtype=np.int64)
        return SeriesScores(steps, self.x[: self.done], sc, self.plan.cfg, self.plan)


class OnlineDetector:
    """Causal early warnings of many series, fed as training goes.

    Args:
        planned: planned number of training steps (sets the windows, as ``train.steps``
            does for ``detect``).
        cfg: the detect settings (defaults as ``phasewatch detect``).
        start: step from which series are analysed.
        on_warning: called with each :class:`EarlyWarning` when it fires.
    """

    def __init__(
        self,
        planned: int,
        cfg: DetectConfig | None = None,
        *,
        start: int = 0,
        on_warning: Callable[[EarlyWarning], object] | None = None,
    ) -> None:
        self.planned, self.cfg, self.start = planned, cfg or DetectConfig(), start
        self.on_warning = on_warning
        self.series: dict[str, OnlineSeries] = {}
        self.warnings: list[EarlyWarning] = []

    def add(self, step: int, values: dict[str, float]) -> None:
        """Queue the values logged at ``step`` (call :meth:`update` to analyse them)."""
        if step < self.start:
            return
        for key, v in values.items():
            if _INDEXED.search(key):
                continue
            if key not in self.series:
                self.series[key] = OnlineSeries(key, self.planned, self.cfg)
            self.series[key].add(step, v)

    def update(self) -> list[EarlyWarning]:
        """Analyse every queued point; call ``on_warning`` for each new warning, in step order."""
        new = sorted(
            (w for s in self.series.values() for w in s.update()),
            key=lambda w: (w.step, w.key, w.indicator),
        )
        self.warnings += new
        if self.on_warning is not None:
            for w in new:
                self.on_warning(w)
        return new

    def scored(self) -> dict[str, SeriesScores]:
        """Every analysed series' scores, keyed as ``detect``'s ``RunAnalysis.scored``."""
        out = {k: s.scores() for k, s in sorted(self.series.items())}
        return {k: v for k, v in out.items() if v is not None}

    def thresholds(self) -> dict[str, dict[str, float]]:
        """θ per indicator of every scored series."""
        return {k: self.series[k].thresholds for k in self.scored()}
