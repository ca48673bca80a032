"""Scoring forecasts: run-level AUROC with a bootstrap 95% interval, alarms at a
false-alarm budget, and the combined forecaster cross-validated by run and with one kind
of null run held out at a time (so a forecaster cannot win by recognising a
hyperparameter that only null runs have).

AUROC is scikit-learn's ``roc_auc_score``: the probability that a random transition run
scores above a random null run (0.5 = chance; below 0.5 the feature anticipates by
*falling*). The interval is the 2.5-97.5 percentile of AUROC over ``n_boot`` resamples of
the runs with replacement (resamples with one class only are left out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phasewatch.detect import ews
from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig
from phasewatch.detect.forecast.model import fit, usable_features
from phasewatch.detect.transitions import Target


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Run-level AUROC (NaN scores are ranked lowest); NaN without both classes."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=int)
    if len(set(y)) < 2:
        return float("nan")
    s = np.asarray(scores, dtype=float)
    s = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) - 1 if np.isfinite(s).any() else 0)
    return float(roc_auc_score(y, s))


def _auc_rows(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``s`` (B, n) against labels ``y`` (B, n) by the Mann-Whitney
    rank formula ``(Σ ranks of positives − n₁(n₁+1)/2) / (n₁ n₀)`` (ties: average ranks,
    which is what ``roc_auc_score`` computes); NaN where a row has one class."""
    from scipy.stats import rankdata

    r = rankdata(s, axis=1)
    n1 = y.sum(1)
    n0 = y.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((r * y).sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def bootstrap_ci(
    scores: np.ndarray, labels: np.ndarray, *, n_boot: int = 1_000, seed: int = 0
) -> tuple[float, float]:
    """The 95% percentile interval of AUROC over ``n_boot`` resamples of the runs with
    replacement (resamples with one class only are left out)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if len(set(y)) < 2:
        return float("nan"), float("nan")
    finite = np.isfinite(s)
    s = np.where(finite, s, np.nanmin(s[finite]) - 1 if finite.any() else 0.0)
    idx = np.random.default_rng(seed).integers(0, len(y), (n_boot, len(y)))
    vals = _auc_rows(s[idx], y[idx])
    vals = vals[np.isfinite(vals)]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def alarm(scores: np.ndarray, rows: pd.DataFrame, *, alpha: float = 0.05) -> dict[str, float]:
    """An alarm at the decision step when the score reaches the threshold exceeded by at
    most ``alpha`` of the null runs' scores: the hit rate on transition runs and the lead
    (onset − decision step) of the hits, in steps and as a fraction of the start → onset
    delay (medians)."""
    s = np.asarray(scores, dtype=float)
    y = rows["label"].to_numpy(dtype=int)
    null = s[(y == 0) & np.isfinite(s)]
    if len(null) == 0 or (y == 1).sum() == 0:
        return {"threshold": np.nan, "hit_rate": np.nan, "lead_steps": np.nan, "lead_frac": np.nan}
    theta = ews.calibrate(null, alpha)
    hits = (y == 1) & np.isfinite(s) & (s >= theta)
    lead = (rows["onset"] - rows["decision_step"]).to_numpy(dtype=float)
    delay = (rows["onset"] - rows["start"]).to_numpy(dtype=float)
    return {
        "threshold": theta,
        "false_alarms": float((null >= theta).mean()),
        "hit_rate": float(hits.sum() / (y == 1).sum()),
        "lead_steps": float(np.median(lead[hits])) if hits.any() else np.nan,
        "lead_frac": float(np.median(lead[hits] / delay[hits])) if hits.any() else np.nan,
    }


def single_features(
    rows: pd.DataFrame, features: list[str], *, alpha: float = 0.05, n_boot: int = 1_000
) -> pd.DataFrame:
    """One row per feature: AUROC with its bootstrap interval and the alarm figures, with
    the alarm's direction taken from the sign of AUROC − 0.5 (report which)."""
    y = rows["label"].to_numpy(dtype=int)
    out = []
    for f in features:
        x = rows[f].to_numpy(dtype=float)
        a = auroc(x, y)
        lo, hi = bootstrap_ci(x, y, n_boot=n_boot)
        sign = -1.0 if a < 0.5 else 1.0
        row = {"feature": f, "auroc": a, "ci_low": lo, "ci_high": hi, "direction": sign}
        out.append(row | alarm(sign * x, rows, alpha=alpha))
    return pd.DataFrame(out)


def _folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    from sklearn.model_selection import StratifiedKFold

    k = max(2, min(k, int(min((y == 1).sum(), (y == 0).sum()))))
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [test for _, test in skf.split(np.zeros(len(y)), y)]


def cross_validated(
    rows: pd.DataFrame,
    features: list[str],
    *,
    target: Target,
    rule: DecisionRule,
    feature_cfg: FeatureConfig,
    k: int = 5,
    seed: int = 0,
    c: float = 0.1,
) -> np.ndarray:
    """Out-of-fold forecaster scores of every run (stratified k-fold over runs: no run is
    in both a fit and its test fold); NaN for runs whose fold could not be fitted."""
    y = rows["label"].to_numpy(dtype=int)
    out = np.full(len(rows), np.nan)
    for test in _folds(y, k, seed):
        train = np.setdiff1d(np.arange(len(rows)), test)
        model = fit(rows.iloc[train], features, target=target, rule=rule,
                    feature_cfg=feature_cfg, c=c)  # fmt: skip
        out[test] = model.score(rows.iloc[test])
    return out


def leave_one_null_kind_out(
    rows: pd.DataFrame,
    features: list[str],
    *,
    target: Target,
    rule: DecisionRule,
    feature_cfg: FeatureConfig,
    k: int = 5,
    seed: int = 0,
    c: float = 0.1,
) -> pd.DataFrame:
    """For each kind (group) of null run: AUROC of transition runs (out of fold) against
    the nulls of that kind, with the forecaster fitted without any null of that kind.

    Returns:
        One row per null kind: ``null_kind``, ``n_null``, ``auroc``, ``ci_low``, ``ci_high``.
    """
    y = rows["label"].to_numpy(dtype=int)
    pos = np.flatnonzero(y == 1)
    out = []
    for kind in sorted(rows.loc[y == 0, "group"].unique()):
        held = np.flatnonzero((y == 0) & (rows["group"] == kind).to_numpy())
        others = np.flatnonzero((y == 0) & (rows["group"] != kind).to_numpy())
        if len(others) < 2:
            continue
        s_pos = np.full(len(pos), np.nan)
        for part in np.array_split(np.random.default_rng(seed).permutation(len(pos)), k):
            train = np.concatenate([np.delete(pos, part), others])
            model = fit(rows.iloc[train], features, target=target, rule=rule,
                        feature_cfg=feature_cfg, c=c)  # fmt: skip
            s_pos[part] = model.score(rows.iloc[pos[part]])
        model = fit(rows.iloc[np.concatenate([pos, others])], features, target=target,
                    rule=rule, feature_cfg=feature_cfg, c=c)  # fmt: skip
        s = np.concatenate([s_pos, model.score(rows.iloc[held])])
        lab = np.concatenate([np.ones(len(pos)), np.zeros(len(held))])
        lo, hi = bootstrap_ci(s, lab)
        out.append({"null_kind": kind, "n_null": len(held), "auroc": auroc(s, lab),
                    "ci_low": lo, "ci_high": hi})  # fmt: skip
    return pd.DataFrame(out, columns=["null_kind", "n_null", "auroc", "ci_low", "ci_high"])


__all__ = [
    "alarm",
    "auroc",
    "bootstrap_ci",
    "cross_validated",
    "leave_one_null_kind_out",
    "single_features",
    "usable_features",
]
