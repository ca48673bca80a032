"""The combined forecaster: a logistic regression over causal run features, saved as JSON.

``p(transition | features at the decision step) = σ(b + Σ_j w_j z_j)`` with
``z_j = (x_j − μ_j) / s_j`` standardised by the training runs' mean and standard deviation
(a missing value is imputed by μ_j, i.e. z_j = 0). Fitted by scikit-learn's L2-regularised
``LogisticRegression`` (we use the library, not our own optimiser); only its numbers are
stored (``forecaster.json``: features, μ, s, w, b, the alarm threshold, the decision rule and
the target), so a model folder from a stranger is data, never code (no pickle).

The alarm threshold is the smallest score exceeded by at most ``alpha`` of the training
null runs (:func:`phasewatch.detect.ews.calibrate`); evaluate it on held-out nulls
(:mod:`.evaluate`) before trusting its false-alarm rate.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasewatch.config import require
from phasewatch.detect import ews
from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig
from phasewatch.detect.transitions import Target
from phasewatch.errors import ConfigError, StoreError
from phasewatch.store.atomic import write_json

FILE = "forecaster.json"
FORMAT = 1


@dataclass(frozen=True)
class Forecaster:
    """A fitted forecaster (all plain numbers: JSON-serialisable).

    Attributes:
        features: feature names (``<series key>|<statistic>``), in coefficient order.
        mean, scale: standardisation of each feature (training runs).
        coef: logistic-regression weights of the standardised features.
        intercept: the bias b.
        threshold: alarm threshold on the score (probability), at <= ``alpha`` false
            alarms on the training nulls.
        alpha: that false-alarm budget.
        target: the behaviour forecast (key, threshold, op).
        rule: the decision rule (event, offset_frac).
        feature_cfg: the feature windows.
        event_rule: the anchoring event's onset rule (``key``, ``op``, ``threshold``: a
            first crossing) from the training runs' phenomenon, so the forecaster can find
            its decision step online (:mod:`.online`); None when the rule has no event or
            the phenomenon is unknown.
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    alpha: float
    target: dict[str, Any]
    rule: dict[str, Any]
    feature_cfg: dict[str, Any]
    event_rule: dict[str, Any] | None = None

    def matrix(self, rows: pd.DataFrame) -> np.ndarray:
        """The standardised ``(runs, features)`` matrix of ``rows`` (NaN → 0).

        Raises:
            ConfigError: naming the features ``rows`` lacks (runs of another family, or
                signals not measured).
        """
        missing = [f for f in self.features if f not in rows.columns]
        if missing:
            shown = ", ".join(missing[:10]) + (
                f" (+{len(missing) - 10} more)" * (len(missing) > 10)
            )
            raise ConfigError(f"runs lack the forecaster's features: {shown}")
        x = rows[list(self.features)].to_numpy(dtype=float)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.where(np.isfinite(z), z, 0.0)

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        """``(runs,)`` probabilities of a transition within the budget."""
        logit = self.matrix(rows) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/forecaster.json`` atomically; returns its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILE
        write_json(path, {"format": FORMAT, **asdict(self)})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Forecaster:
        """Read a forecaster saved by :meth:`save` (JSON only, validated).

        Raises:
            StoreError: if the file is missing, not JSON, or not a forecaster.
        """
        path = Path(folder) / FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreError(f"{path}: not a forecaster ({type(e).__name__})") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise StoreError(f"{path}: not a phasewatch forecaster (format {FORMAT})")
        try:
            f = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except TypeError as e:
            raise StoreError(f"{path}: not a forecaster ({e})") from None
        n = len(f.features)
        if not (len(f.mean) == len(f.scale) == len(f.coef) == n) or not all(
            isinstance(v, (int, float)) and math.isfinite(v)
            for v in (*f.mean, *f.scale, *f.coef, f.intercept, f.threshold)
        ):
            raise StoreError(f"{path}: inconsistent or non-finite forecaster parameters")
        return f

    def decision_rule(self) -> DecisionRule:
        """The :class:`DecisionRule` the forecaster was fitted at."""
        return DecisionRule(**self.rule)

    def target_spec(self) -> Target:
        """The :class:`Target` it forecasts."""
        return Target(**self.target)


def usable_features(rows: pd.DataFrame, features: list[str], min_present: float = 0.8) -> list[str]:
    """Features present (finite) in at least ``min_present`` of the runs and not constant."""
    out = []
    for f in features:
        x = rows[f].to_numpy(dtype=float)
        ok = np.isfinite(x)
        if ok.mean() >= min_present and np.ptp(x[ok]) > 0:
            out.append(f)
    return out


def fit(
    rows: pd.DataFrame,
    features: list[str],
    *,
    target: Target,
    rule: DecisionRule,
    feature_cfg: FeatureConfig,
    alpha: float = 0.05,
    c: float = 0.1,
    event_rule: dict[str, Any] | None = None,
) -> Forecaster:
    """Fit the logistic regression on ``rows`` (a :class:`~.table.ForecastTable`'s rows).

    Args:
        rows: one row per run, with ``label`` (1 = transitions) and the feature columns.
        features: candidate features (those too sparse or constant are dropped, see
            :func:`usable_features`).
        alpha: false-alarm budget of the alarm threshold on the training nulls.
        c: inverse L2 regularisation strength of scikit-learn's ``LogisticRegression``.
        event_rule: stored with the model (see :class:`Forecaster`).

    Raises:
        ConfigError: with fewer than 2 runs of either label or no usable feature.
    """
    require(0 < alpha < 1, "alpha", "a float in (0, 1)", alpha)
    require(c > 0, "c", "a float > 0", c)
    y = rows["label"].to_numpy(dtype=int)
    if min((y == 1).sum(), (y == 0).sum()) < 2:
        raise ConfigError(
            f"need >= 2 transition and >= 2 null runs to fit; have {(y == 1).sum()} and "
            f"{(y == 0).sum()}"
        )
    use = usable_features(rows, features)
    if not use:
        raise ConfigError("no usable feature (all too sparse or constant over the runs)")
    from sklearn.linear_model import LogisticRegression

    x = rows[use].to_numpy(dtype=float)
    mean = np.nanmean(x, 0)
    scale = np.nanstd(x, 0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.where(np.isfinite(x), (x - mean) / scale, 0.0)
    lr = LogisticRegression(C=c, max_iter=5_000).fit(z, y)
    p = 1.0 / (1.0 + np.exp(-(z @ lr.coef_[0] + lr.intercept_[0])))
    return Forecaster(
        features=tuple(use),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in lr.coef_[0]),
        intercept=float(lr.intercept_[0]),
        threshold=min(ews.calibrate(p[y == 0], alpha), 1.0),
        alpha=alpha,
        target=asdict(target),
        rule=asdict(rule),
        feature_cfg=asdict(feature_cfg),
        event_rule=event_rule,
    )
