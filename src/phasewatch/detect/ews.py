"""Causal early-warning indicators of a critical transition (Scheffer et al. 2009).

Critical slowing down: as a system approaches a tipping point, its fluctuations around the
current trend grow (rolling variance rises) and decay more slowly (lag-1 autocorrelation
rises). The trend of each indicator is measured by Kendall's τ against time; a warning
fires when τ exceeds a threshold calibrated on null series (runs that never transition,
or AR(1) surrogates) — never a fixed magic number.

**Everything is causal.** At step t only values logged at steps <= t are used:

1. detrending: residual_t = x_t − (a + b·t), the line fitted by least squares to the last
   ``detrend`` points ending at t (a one-sided local-linear smoother; ewstools' Gaussian
   and LOWESS smoothers are two-sided and would leak the transition backwards);
2. variance_t and ac1_t over the last ``window`` residuals ending at t (same definitions
   as ewstools ``compute_var`` / ``compute_auto``: sample variance with ddof = 1 and the
   Pearson correlation of consecutive values; tests check equality with ewstools);
3. τ_t: Kendall's τ between the indicator values up to t and time (τ-a, exact for
   untied values), defined once ``min_points`` indicator values exist.

**Every value is a fixed function of its own window.** Window sums are accumulated in a
fixed order (:func:`window_sum`) and τ from exact integer pair counts, so the value at t is
bit-for-bit the same whether it is computed on the whole series, on a prefix, or on the
last window alone: :mod:`.online` computes the same indicators point by point during
training and gets exactly the warnings ``detect`` finds afterwards.

We compute these in NumPy on batches of series because threshold calibration runs the
same pipeline on hundreds of surrogate or null series: ewstools' rolling ``apply`` takes
~30 ms per 100-point series, which alone would exceed ``detect``'s budget of one minute
for a 50-run sweep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from phasewatch.config import require

INDICATORS = ("variance", "ac1")


@dataclass(frozen=True)
class EWSConfig:
    """Window sizes and calibration of the causal indicators.

    Attributes:
        window: rolling window of the indicators, in logged points.
        detrend: trailing window of the local-linear detrending, in logged points.
        min_points: indicator values needed before τ (and any warning) is defined.
        alpha: target false-alarm rate of the calibrated threshold, in (0, 1).
        surrogates: AR(1) surrogates per series when no null runs are given.
    """

    window: int = 10
    detrend: int = 10
    min_points: int = 8
    alpha: float = 0.1
    surrogates: int = 100

    def __post_init__(self) -> None:
        for name in ("window", "detrend"):
            require(getattr(self, name) >= 3, name, "an integer >= 3", getattr(self, name))
        require(self.min_points >= 3, "min_points", "an integer >= 3", self.min_points)
        require(0 < self.alpha < 1, "alpha", "a float in (0, 1)", self.alpha)
        require(self.surrogates >= 10, "surrogates", "an integer >= 10", self.surrogates)

    @property
    def burn_in(self) -> int:
        """Points before the first indicator value: the only data surrogates may use."""
        return self.detrend + self.window - 1


def window_sum(terms: Iterable[np.ndarray]) -> np.ndarray:
    """Σ_k terms[k], added left to right in this fixed order, whatever the arrays' shape.

    numpy's own reductions may sum pairwise or along another axis depending on the shape,
    which would make a window's value depend on the length of the series around it.
    """
    it = iter(terms)
    acc = np.array(next(it), dtype=float, copy=True)
    for t in it:
        acc += t
    return acc


def _columns(x: np.ndarray, width: int) -> list[np.ndarray]:
    """Element k of every trailing window of ``width`` points: ``x[:, k : k + n − width + 1]``
    (contiguous slices; column j of each is the window ending at point j + width − 1)."""
    span = x.shape[-1] - width + 1
    return [x[:, k : k + span] for k in range(width)]


def causal_residuals(x: Float[np.ndarray, "batch n"], detrend: int) -> Float[np.ndarray, "batch n"]:
    """x_t minus the least-squares line through x[t−detrend+1 .. t], evaluated at t.

    The first ``detrend − 1`` entries are NaN (not enough past).
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    out = np.full_like(x, np.nan)
    if x.shape[-1] < detrend:
        return out
    cols = _columns(x, detrend)  # d × (B, n − d + 1)
    u = np.arange(detrend) - (detrend - 1) / 2
    mean = window_sum(cols) / detrend
    slope = window_sum((c - mean) * uk for c, uk in zip(cols, u)) / (u**2).sum()
    out[:, detrend - 1 :] = cols[-1] - (mean + slope * u[-1])
    return out


def rolling_indicators(
    residuals: Float[np.ndarray, "batch n"], window: int
) -> dict[str, Float[np.ndarray, "batch n"]]:
    """Rolling variance (ddof 1) and lag-1 autocorrelation over the last ``window`` points.

    Entries whose window contains a NaN are NaN, as in pandas' ``rolling``.
    """
    r = np.atleast_2d(residuals)
    var = np.full_like(r, np.nan)
    ac1 = np.full_like(r, np.nan)
    if r.shape[-1] >= window:
        cols = _columns(r, window)  # w × (B, n − w + 1)
        mean = window_sum(cols) / window
        var[:, window - 1 :] = window_sum((c - mean) * (c - mean) for c in cols) / (window - 1)
        a, b = cols[:-1], cols[1:]
        ma, mb = window_sum(a) / (window - 1), window_sum(b) / (window - 1)
        sab = window_sum((x - ma) * (y - mb) for x, y in zip(a, b))
        saa = window_sum((x - ma) * (x - ma) for x in a)
        sbb = window_sum((y - mb) * (y - mb) for y in b)
        with np.errstate(invalid="ignore", divide="ignore"):
            ac1[:, window - 1 :] = sab / np.sqrt(saa * sbb)
    return {"variance": var, "ac1": ac1}


def pair_counts(y: Float[np.ndarray, "batch n"], first: int = 0) -> Float[np.ndarray, "batch m"]:
    """S_j − S_{j−1} = Σ_{i<j} sign(y_j − y_i) over valid (finite) pairs, for j >= ``first``
    (integers held exactly in float64). Columns before ``first`` are not computed."""
    y = np.atleast_2d(y)
    valid = np.isfinite(y)
    z = np.where(valid, y, 0.0)
    contrib = np.zeros((y.shape[0], y.shape[-1] - first))
    for j in np.flatnonzero(valid[:, first:].any(0)) + first:  # O(B·n²) work, O(B·n) memory
        pair = np.sign(z[:, j : j + 1] - z[:, :j]) * valid[:, :j]
        contrib[:, j - first] = pair.sum(1) * valid[:, j]
    return contrib


def tau_from_counts(
    s: Float[np.ndarray, "batch n"], m: np.ndarray, valid: np.ndarray, min_points: int
) -> Float[np.ndarray, "batch n"]:
    """τ-a = S / C(m, 2) from running pair sums S and valid counts m (NaN before
    ``min_points`` valid values or where the value itself is invalid)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = s / (m * (m - 1) / 2)
    return np.where((m >= min_points) & valid, tau, np.nan)


def expanding_tau(y: Float[np.ndarray, "batch n"], min_points: int) -> Float[np.ndarray, "batch n"]:
    """Kendall's τ-a between y[first valid .. t] and time, for every t (NaN before
    ``min_points`` valid values). Exact incremental form: τ_t = S_t / C(m_t, 2) with
    S_t = Σ_{i<j<=t} sign(y_j − y_i) over valid entries.
    """
    y = np.atleast_2d(y)
    valid = np.isfinite(y)
    s = np.cumsum(pair_counts(y), -1)
    m = np.cumsum(valid, -1)
    return tau_from_counts(s, m, valid, min_points)


def scores(
    x: Float[np.ndarray, "batch n"], cfg: EWSConfig
) -> dict[str, Float[np.ndarray, "batch n"]]:
    """The causal pipeline: residuals, indicators and their τ trend for a batch of series.

    Returns:
        ``residual``, ``variance``, ``ac1``, ``tau_variance``, ``tau_ac1`` (each (B, n)).
    """
    res = causal_residuals(x, cfg.detrend)
    ind = rolling_indicators(res, cfg.window)
    out = {"residual": res, **ind}
    for name in INDICATORS:
        out[f"tau_{name}"] = expanding_tau(ind[name], cfg.min_points)
    return out


def max_score(tau: Float[np.ndarray, "batch n"]) -> Float[np.ndarray, " batch"]:
    """Largest τ reached by each series (−1 where τ is never defined)."""
    filled = np.where(np.isfinite(tau), tau, -1.0)
    return filled.max(-1) if filled.shape[-1] else np.full(len(filled), -1.0)


def calibrate(null_max: Float[np.ndarray, " m"], alpha: float) -> float:
    """Threshold θ exceeded by at most a fraction ``alpha`` of the null series' maxima.

    θ is the smallest value with #{null max >= θ} <= α·m, i.e. just above the
    ⌈(1−α)·m⌉-th smallest maximum (so the in-sample false-alarm rate is <= α).

    Raises:
        ValueError: with no null series.
    """
    v = np.sort(np.asarray(null_max, dtype=float))
    if len(v) == 0:
        raise ValueError("no null series to calibrate the warning threshold on")
    allowed = int(np.floor(alpha * len(v)))  # how many null maxima may reach θ
    return float(np.nextafter(v[len(v) - allowed - 1], np.inf))


def ar1_surrogates(
    residuals: Float[np.ndarray, " k"], n: int, count: int, *, seed: int
) -> Float[np.ndarray, "count n"]:
    """Stationary AR(1) series with the lag-1 coefficient φ (clipped to ±0.95) and innovation
    variance of ``residuals`` (the burn-in residuals only: no later data).

    Raises:
        ValueError: with fewer than 3 finite residuals.
    """
    r = residuals[np.isfinite(residuals)]
    if len(r) < 3:
        raise ValueError("need >= 3 burn-in residuals for AR(1) surrogates")
    r = r - r.mean()
    denom = float((r[:-1] ** 2).sum())
    phi = float(np.clip((r[:-1] * r[1:]).sum() / denom, -0.95, 0.95)) if denom > 0 else 0.0
    sd = max(float(np.std(r[1:] - phi * r[:-1])), 1e-12)
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, sd, size=(count, n))
    out = np.empty((count, n))
    out[:, 0] = eps[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        out[:, t] = phi * out[:, t - 1] + eps[:, t]
    return out


def surrogate_thresholds(
    x: Float[np.ndarray, " k"], cfg: EWSConfig, *, n: int | None = None, seed: int = 0
) -> dict[str, float]:
    """θ per indicator from AR(1) surrogates fitted to the burn-in residuals of ``x``
    (its first ``cfg.burn_in`` points), so thresholds depend on no later data.

    Args:
        n: surrogate length in points; pass the *planned* length of the series (known
            before it is logged) so θ does not depend on how long it actually ran.
            Default ``len(x)``.
    """
    res = causal_residuals(x[None, : cfg.burn_in], cfg.detrend)[0]
    sur = ar1_surrogates(res, len(x) if n is None else n, cfg.surrogates, seed=seed)
    sc = scores(sur, cfg)
    return {name: calibrate(max_score(sc[f"tau_{name}"]), cfg.alpha) for name in INDICATORS}


def can_fire(threshold: float | None) -> bool:
    """Whether an indicator with threshold ``threshold`` can ever warn: Kendall's τ is at most
    1, so a threshold calibrated above 1 (the null series' maxima reached τ = 1, see
    :func:`calibrate`) can never be reached. None (no threshold) counts as able to fire."""
    return threshold is None or threshold <= 1.0


def first_warning(
    steps: np.ndarray, tau: Float[np.ndarray, " n"], threshold: float, until: int | None = None
) -> int | None:
    """First step with τ >= threshold (at or before ``until`` if given); None if never."""
    hit = np.isfinite(tau) & (tau >= threshold)
    if until is not None:
        hit &= np.asarray(steps) <= until
    idx = np.flatnonzero(hit)
    return int(steps[idx[0]]) if len(idx) else None
