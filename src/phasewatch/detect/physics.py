"""Sweep-level views of a transition: critical data size, the "temperature" dependence of
the time to transition, and the census of circuits ("polymorphs") across seeds.

* Critical data size (Varma et al. 2023; Tian 2025): the training fraction below which
  runs do not transition within the step budget. Estimated by a maximum-likelihood
  logistic fit of P(transition) against the fraction (the 50% point), with a bootstrap
  interval over runs; compared with Tian's n ~ M log M scaling, whose constant in the
  author's code gives the fraction 2.7482·ln M / M for modulus M.
* Temperature view (the crystallization picture): time to transition t (onset − start,
  steps) against learning rate and weight decay. Two fits per hyperparameter x, each
  with a 95% bootstrap interval of its exponent: a power law ln t = a_g + b·ln x (Omnigrok:
  t ∝ 1/weight decay, b ≈ −1) and an Arrhenius form ln t = a_g + b/x (x as temperature).
  The intercept a_g is fitted per setting g of the sweep's *other* varying fields (fixed
  effects), so b is estimated within settings: in a sweep where small training fractions
  (slow to generalise) were only run at some weight decays, a pooled fit would credit
  the data size's effect to the weight decay. Settings with a single value of x carry
  no information on b and are left out.
* Polymorphs: the set of key frequencies of each transitioning grokking run (Nanda et
  al. 2023): how many distinct sets occur across seeds and how often each frequency does.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

TIAN_CONSTANT = 2.7482
BOOTSTRAP = 500


def tian_fraction(modulus: int) -> float:
    """Tian 2025's critical training fraction 2.7482·ln M / M for modulus M."""
    return TIAN_CONSTANT * np.log(modulus) / modulus


def _logistic_nll(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    centre, log_width = params
    z = (x - centre) / np.exp(log_width)
    # −log-likelihood of Bernoulli(σ(z)), in a numerically stable form
    return float(np.sum(np.logaddexp(0, z) - y * z))


def logistic_midpoint(x: np.ndarray, y: np.ndarray) -> float | None:
    """ML centre of P(y = 1 | x) = σ((x − c)/w); None when y does not vary."""
    if y.min() == y.max():
        return None
    span = max(float(np.ptp(x)), 1e-6)
    start = np.array([float(np.mean(x)), np.log(span / 4)])
    res = minimize(_logistic_nll, start, args=(x, y), method="Nelder-Mead")
    return float(np.clip(res.x[0], x.min() - span, x.max() + span))


def critical_data_size(runs: pd.DataFrame, modulus: int | None, *, seed: int = 0) -> dict:
    """Critical training fraction from a ``train_frac`` sweep.

    Args:
        runs: one row per run with columns ``train_frac`` and ``transitions`` (bool).
        modulus: M for Tian's prediction (None: no prediction).

    Returns:
        ``estimate`` (50% point; None if every fraction behaves alike), ``ci95``,
        ``bracket`` (largest fraction tested where < 50% of runs transition, smallest where
        >= 50% do: with cleanly separated outcomes the estimate is only known to lie between),
        ``per_fraction`` (fraction → share of runs that transition), ``tian``.
    """
    x = runs["train_frac"].to_numpy(dtype=float)
    y = runs["transitions"].to_numpy(dtype=float)
    est = logistic_midpoint(x, y)
    rng = np.random.default_rng(seed)
    boots = []
    if est is not None:
        for _ in range(BOOTSTRAP):
            i = rng.integers(0, len(x), len(x))
            b = logistic_midpoint(x[i], y[i])
            if b is not None:
                boots.append(b)
    share = runs.groupby("train_frac")["transitions"].mean()
    below, above = share[share < 0.5].index, share[share >= 0.5].index
    return {
        "bracket": [
            float(below.max()) if len(below) else None,
            float(above.min()) if len(above) else None,
        ],
        "estimate": est,
        "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
        if boots
        else None,
        "per_fraction": {float(k): float(v) for k, v in share.items()},
        "tian": tian_fraction(modulus) if modulus else None,
        "modulus": modulus,
    }


def _fit(u: np.ndarray, t: np.ndarray, groups: np.ndarray, *, seed: int) -> dict[str, Any]:
    """OLS of ln t on u with one intercept per group, and a bootstrap 95% interval of the
    slope (resampling runs; resamples whose design is rank-deficient are skipped)."""
    lt = np.log(t)
    codes = pd.factorize(groups)[0]
    k = codes.max() + 1

    def slope_and_effects(rows: np.ndarray) -> np.ndarray | None:
        """OLS coefficients (slope, then the used group intercepts) on ``rows``; None if
        the design is rank-deficient."""
        x = np.column_stack([u[rows], np.eye(k)[codes[rows]]])
        used = x.any(axis=0)
        used[0] = True
        coef, _, rank, _ = np.linalg.lstsq(x[:, used], lt[rows], rcond=None)
        return coef if rank == used.sum() else None

    coef = slope_and_effects(np.arange(len(u)))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(BOOTSTRAP):
        b = slope_and_effects(rng.integers(0, len(u), len(u)))
        if b is not None:
            boots.append(b[0])
    sizes = np.bincount(codes)
    return {
        "exponent": float(coef[0]),
        # the count-weighted mean of the per-setting intercepts a_g
        "intercept": float(np.average(coef[1:], weights=sizes)),
        "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "n": len(u),
        "settings": int(k),
    }


def temperature_fits(
    runs: pd.DataFrame, fields: list[str], controls: list[str] = (), *, seed: int = 0
) -> dict:
    """Power-law and Arrhenius fits of the time to transition against each field.

    Args:
        runs: transition runs with a column ``time_to_transition`` (steps), ``fields`` and
            ``controls``.
        fields: hyperparameters to fit against; a field is fitted when some setting of the
            other controls has >= 2 distinct positive values of it and >= 3 such runs exist.
        controls: the sweep's varying fields; for each fitted field the others get one
            intercept per setting (see the module docstring).

    Returns:
        ``{field: {"power_law": fit, "arrhenius": fit, "controls": [...]}}``; a fit has
        ``exponent`` (b), ``intercept`` (a, the count-weighted mean over settings),
        ``ci95`` of b, ``n`` (runs used) and ``settings`` (their number).
    """
    out = {}
    for f in fields:
        others = [c for c in controls if c != f]
        d = runs[(runs[f] > 0) & (runs["time_to_transition"] > 0)].reset_index(drop=True)
        key = d[others].astype(str).agg("|".join, axis=1) if others else pd.Series("", d.index)
        d = d[d.groupby(key)[f].transform("nunique") >= 2]
        if len(d) < 3:
            continue
        groups = key[d.index].to_numpy()
        x = d[f].to_numpy(dtype=float)
        t = d["time_to_transition"].to_numpy(dtype=float)
        out[f] = {
            "power_law": _fit(np.log(x), t, groups, seed=seed),
            "arrhenius": _fit(1.0 / x, t, groups, seed=seed),
            "controls": others,
        }
    return out


def polymorph_census(key_sets: list[list[int]]) -> dict[str, Any]:
    """Distinct key-frequency sets across runs and how often each frequency occurs."""
    sets = Counter(tuple(sorted(s)) for s in key_sets)
    freqs = Counter(k for s in key_sets for k in s)
    return {
        "runs": len(key_sets),
        "distinct_sets": len(sets),
        "sets": [{"frequencies": list(k), "runs": v} for k, v in sets.most_common()],
        "frequency_counts": {int(k): v for k, v in sorted(freqs.items())},
    }
