"""A saved forecaster scoring a run while it trains (``Watcher(..., forecaster="model/")``).

The run-level forecast of :mod:`.model` is made once, at the decision step of the
forecaster's rule: the anchoring event's onset (found online as the first logged step at
which the event's key crosses its threshold, from the rule stored with the model) plus
``offset_frac`` of the planned steps. At the first logged step at or after it, the features
are computed from the rows logged so far exactly as :func:`.features.run_features` does for
a stored run (so the online score equals ``phasewatch forecast apply`` on the same rows:
tested), and an alarm is raised when the score reaches the model's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from phasewatch.detect.forecast.features import FeatureConfig, run_features
from phasewatch.detect.forecast.model import Forecaster
from phasewatch.errors import ConfigError


@dataclass(frozen=True)
class ForecastResult:
    """The online forecast of one run.

    Attributes:
        step: logged step at which it was made (the first at or after ``decision_step``).
        decision_step: the rule's decision step (steps).
        score: probability of a transition within the planned steps.
        threshold: the model's alarm threshold.
        alarm: ``score >= threshold``.
        target: the forecast behaviour, e.g. ``test/acc >= 0.99``.
    """

    step: int
    decision_step: int
    score: float
    threshold: float
    alarm: bool
    target: str

    def __str__(self) -> str:
        verdict = "ALARM: transition expected" if self.alarm else "no transition expected"
        return (
            f"forecast at step {self.step:,}: p({self.target} within the run) = "
            f"{self.score:.3f} (threshold {self.threshold:.3f}): {verdict}"
        )


class OnlineForecaster:
    """Feed it each logged step's scalars; :meth:`update` returns the forecast once.

    Args:
        model: a fitted :class:`Forecaster` (or a folder holding ``forecaster.json``).
        planned: the run's planned number of steps.

    Raises:
        ConfigError: if the model's rule is anchored to an event it stores no onset rule
            for (refit it with phasewatch >= this version on runs of a known phenomenon).
        StoreError: if a folder holds no valid forecaster.
    """

    def __init__(self, model: Forecaster | str | Path, planned: int) -> None:
        self.model = model if isinstance(model, Forecaster) else Forecaster.load(model)
        self.rule = self.model.decision_rule()
        self.planned = int(planned)
        self.cfg = FeatureConfig(**self.model.feature_cfg)
        ev = self.model.event_rule
        if self.rule.event and not ev:
            raise ConfigError(
                f"forecaster: its decision step is anchored to {self.rule.event!r} but it "
                "stores no onset rule for it; allowed: a forecaster fitted on runs of a "
                "registered phenomenon, or one anchored to step 0 (--event '')"
            )
        self._event = ev
        self._event_step: int | None = None if self.rule.event else 0
        self._rows: list[tuple[int, str, float]] = []
        self._last = -1  # the last logged step
        self.result: ForecastResult | None = None

    def add(self, step: int, values: dict[str, float]) -> None:
        """Record one logged step's scalars (metric and signal keys alike); nothing once the
        forecast is made."""
        if self.result is not None:
            return
        self._last = max(self._last, int(step))
        for k, v in values.items():
            self._rows.append((int(step), str(k), float(v)))
        ev = self._event
        if self._event_step is None and ev is not None and ev["key"] in values:
            v = float(values[ev["key"]])
            hit = v >= ev["threshold"] if ev["op"] == ">=" else v <= ev["threshold"]
            if hit:
                self._event_step = int(step)

    @property
    def decision_step(self) -> int | None:
        """The decision step, once the anchoring event has happened (else None)."""
        if self._event_step is None:
            return None
        return int(self._event_step + round(self.rule.offset_frac * self.planned))

    def update(self) -> ForecastResult | None:
        """The forecast, the first time the logged steps reach the decision step; None
        before it and after it was made (it is made once).

        Raises:
            ConfigError: naming the model's features the run does not log.
        """
        t = self.decision_step
        if self.result is not None or t is None or self._last < t:
            return None
        metrics = pd.DataFrame(self._rows, columns=["step", "key", "value"])
        metrics = metrics[metrics["step"] <= t]
        feats = run_features(metrics, None, int(self._event_step or 0), t, self.cfg)
        score = float(self.model.score(pd.DataFrame([feats]))[0])
        tg = self.model.target
        self.result = ForecastResult(
            step=int(metrics["step"].max()),
            decision_step=t,
            score=score,
            threshold=float(self.model.threshold),
            alarm=score >= self.model.threshold,
            target=f"{tg['key']} {tg['op']} {tg['threshold']:g}",
        )
        return self.result


__all__ = ["ForecastResult", "OnlineForecaster"]
