"""The local learning coefficient (LLC) by SGLD on the localized tempered posterior.

Estimator (Lau et al. 2023, "Quantifying degeneracy in singular models via the learning
coefficient" / "The local learning coefficient", arXiv 2308.12108, §4, eq. for
:math:`\\hat\\lambda`):

.. math::
    \\hat\\lambda(w^*) = n\\beta\\,\\big(\\mathbb{E}_{w\\sim p}[L_n(w)] - L_n(w^*)\\big),
    \\quad p(w) \\propto \\exp\\big(-n\\beta L_n(w)
    - \\tfrac{\\gamma}{2}\\lVert w-w^*\\rVert^2\\big),

with default inverse temperature :math:`n\\beta = n/\\log n` (:math:`\\beta^*=1/\\log n`,
Watanabe's WBIC temperature). The expectation is over SGLD draws (Welling & Teh 2011)
with step ε:

.. math::
    w \\leftarrow w - \\tfrac{\\epsilon}{2}\\Big(\\tfrac{n\\beta}{m}\\nabla
    \\textstyle\\sum_{i\\in\\text{batch}}\\ell_i(w) + \\gamma(w-w^*)\\Big)
    + \\mathcal{N}(0,\\epsilon I).

Here the batch is the whole probe batch (m = n), so the drift is
:math:`n\\beta\\nabla L_n(w)` and the sampler is unadjusted Langevin dynamics. L_n is the
probe loss in nats per sample. Each chain starts at w*; the first ``burn_in`` draws are
discarded; per-chain estimates use the mean loss of the remaining draws.

Why our own estimator: devinterp 2.x accepts only language-model datasets (a
``datasets.Dataset`` with ``input_ids`` and a per-token loss, references.md "Library
notes"), while a phasewatch probe is any model with a loss closure. The estimator is ~50
lines, validated here on models with a known learning coefficient
(tests/reference/test_signals_llc.py).

Diagnostics (never silently averaged): a chain whose loss becomes non-finite stops, is
reported by chain and draw in a warning, gets ``llc/chain/<c> = nan`` and is excluded from
``llc/mean`` with ``llc/flag/diverged`` counting it; ``llc/flag/below_init`` counts chains
whose mean sampled loss is below L_n(w*) (w* is not a local minimum at this scale, or ε is
too large); ``llc/flag/above_bound`` is 1 when λ̂ exceeds the regular-model bound d/2 by
more than two standard errors; ``llc/flag`` is 1 when any of them is set. When *every*
chain diverged, ε is divided by 3 and the chains rerun (up to ``step_down`` times), so a
default that is too large for a model still gives a curve: ``llc/epsilon`` is the ε used,
``llc/step_downs`` how often it was divided, and a warning line says so.

Random numbers: the chains draw their noise in turn from the signal's generator; the
many-checkpoint path (:mod:`.batched`) positions one generator per chain where this loop's
chain starts, so it draws the same noise unless a chain diverges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from phasewatch.config import require
from phasewatch.signals.base import Measurement, Probe, flat_grad, signal


@dataclass(frozen=True)
class LLCSettings:
    """SGLD settings of the ``llc`` signal (calibrate with ``phasewatch calibrate``).

    Defaults: the setting the calibration rule (:mod:`.calibrate`) recommends for the
    grokking ``quick`` preset (seed 0) at steps 250 and 5,000 on the grid
    ε ∈ {1e-4, 3e-4, 1e-3} × γ ∈ {10, 100}; 3 × (30 + 50) = 240 forward-backward passes,
    within the 10 s budget on 2 cores. Other models need their own calibration: a preset
    carries its model's (``Preset.signals["llc"]``), which ``measure`` applies.

    Attributes:
        epsilon: SGLD step size ε (> 0).
        gamma: localization strength γ (>= 0), in 1/parameter².
        nbeta: inverse temperature nβ (> 0); None = n / log n.
        chains: independent chains (>= 1), all started at w*.
        draws: sampled draws per chain after burn-in (>= 2).
        burn_in: discarded initial draws per chain (>= 0).
        seed: seeds the SGLD noise (with the checkpoint step).
        step_down: when every chain diverges, ε is divided by 3 and the chains rerun, up
            to this many times (>= 0; 0 = never); the ε used is reported as
            ``llc/epsilon`` and the divisions as ``llc/step_downs``.
    """

    epsilon: float = 3e-4
    gamma: float = 100.0
    nbeta: float | None = None
    chains: int = 3
    draws: int = 50
    burn_in: int = 30
    seed: int = 0
    step_down: int = 3

    def __post_init__(self) -> None:
        require(self.step_down >= 0, "step_down", "an integer >= 0", self.step_down)
        require(self.epsilon > 0, "epsilon", "a float > 0", self.epsilon)
        require(self.gamma >= 0, "gamma", "a float >= 0", self.gamma)
        require(self.nbeta is None or self.nbeta > 0, "nbeta", "a float > 0 or None", self.nbeta)
        require(self.chains >= 1, "chains", "an integer >= 1", self.chains)
        require(self.draws >= 2, "draws", "an integer >= 2", self.draws)
        require(self.burn_in >= 0, "burn_in", "an integer >= 0", self.burn_in)


def default_nbeta(n: int) -> float:
    """:math:`n\\beta^* = n/\\log n` (Lau et al. 2023, §4; Watanabe 2013, WBIC).

    Raises:
        ValueError: if n < 2.
    """
    if n < 2:
        raise ValueError(f"the LLC needs a probe batch of n >= 2 samples, got n={n}")
    return n / math.log(n)


@dataclass
class LLCResult:
    """Everything one LLC estimate produced.

    Attributes:
        traces: (chains, burn_in + draws) probe loss (nats) at each SGLD iterate, the first
            being w* itself; NaN after a chain diverged.
        chain_llc: (chains,) per-chain estimates (NaN for a diverged chain).
        init_loss: L_n(w*) in nats.
        nbeta, burn_in, d: inverse temperature, discarded draws, parameter count.
        warnings: messages naming each diverged chain and draw.
        epsilon: the SGLD step used (NaN if not recorded).
        step_downs: how many times ε was divided by 3 because every chain diverged.
    """

    traces: np.ndarray
    chain_llc: np.ndarray
    init_loss: float
    nbeta: float
    burn_in: int
    d: int
    warnings: list[str] = field(default_factory=list)
    epsilon: float = float("nan")
    step_downs: int = 0

    @property
    def ok(self) -> np.ndarray:
        """(chains,) bool: the chains that did not diverge."""
        return np.isfinite(self.chain_llc)

    @property
    def mean(self) -> float:
        """λ̂: the mean of the non-diverged chains' estimates (NaN if all diverged)."""
        return float(self.chain_llc[self.ok].mean()) if self.ok.any() else float("nan")

    @property
    def std(self) -> float:
        """The standard deviation (ddof=1) of the chain estimates over non-diverged
        chains (NaN with fewer than two)."""
        good = self.chain_llc[self.ok]
        return float(good.std(ddof=1)) if len(good) >= 2 else float("nan")

    def above_bound(self) -> bool:
        """λ̂ exceeds the regular-model bound d/2 by more than two standard errors."""
        good = self.chain_llc[self.ok]
        if not len(good):
            return False
        se = good.std(ddof=1) / np.sqrt(len(good)) if len(good) >= 2 else 0.0
        return bool(good.mean() - 2 * se > self.d / 2)

    def values(self) -> dict[str, float]:
        """The ``llc/*`` keys."""
        sampled = self.traces[:, self.burn_in :]
        finite = sampled[np.isfinite(sampled)]
        out = {
            "llc/mean": self.mean,
            "llc/std": self.std,
            "llc/init_loss": self.init_loss,
            "llc/nbeta": self.nbeta,
            "llc/frac_below_init": float((finite < self.init_loss).mean()) if finite.size else 1.0,
            "llc/flag/diverged": float((~self.ok).sum()),
            "llc/flag/below_init": float((self.chain_llc[self.ok] < 0).sum()),
            "llc/flag/above_bound": float(self.above_bound()),
            "llc/epsilon": self.epsilon,
            "llc/step_downs": float(self.step_downs),
        }
        out["llc/flag"] = float(
            out["llc/flag/diverged"] + out["llc/flag/below_init"] + out["llc/flag/above_bound"] > 0
        )
        out.update({f"llc/chain/{c}": float(v) for c, v in enumerate(self.chain_llc)})
        return out

    def trace_table(self) -> pd.DataFrame:
        """Tidy loss traces: ``chain, draw, loss`` (draw counts from w*, burn-in included)."""
        c, t = np.meshgrid(np.arange(self.traces.shape[0]), np.arange(self.traces.shape[1]))
        return pd.DataFrame(
            {"chain": c.T.ravel(), "draw": t.T.ravel(), "loss": self.traces.ravel()}
        )


def chain_noise(generator: torch.Generator, like: Sequence[Tensor]) -> list[Tensor]:
    """One SGLD step's standard normal noise ξ of a chain: one draw per parameter, shaped
    and typed like ``like`` (the parameters, in ``Probe.params()`` order)."""
    return [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in like]


def diverged_message(chain: int, draw: int, value: float, epsilon: float) -> str:
    """The warning for a chain whose loss became non-finite."""
    return (
        f"llc: chain {chain} diverged at draw {draw} (loss {value}); chain excluded "
        f"from llc/mean and flagged — lower epsilon={epsilon:g} or "
        "raise gamma (phasewatch calibrate RUN)"
    )


def _sgld_step(
    params: list[Tensor],
    grads: list[Tensor],
    w_star: list[Tensor],
    noise: list[Tensor],
    eps: float,
    nbeta: float,
    gamma: float,
) -> None:
    """One SGLD update in place: w ← w − ε/2 (nβ ∇L + γ (w − w*)) + √ε ξ."""
    with torch.no_grad():
        for p, g, w0, xi in zip(params, grads, w_star, noise):
            drift = g * nbeta + (p - w0) * gamma
            p.add_(drift, alpha=-eps / 2).add_(xi, alpha=math.sqrt(eps))


def _run_chain(
    probe: Probe,
    params: list[Tensor],
    w_star: list[Tensor],
    gen: torch.Generator,
    s: LLCSettings,
    nbeta: float,
    row: np.ndarray,
    c: int,
) -> str | None:
    """Chain ``c`` from w*: fills ``row`` (burn_in + draws,) with its losses; returns the
    warning if the loss became non-finite (the chain stops there), else None."""
    with torch.no_grad():
        for p, w0 in zip(params, w_star):
            p.copy_(w0)
    for t in range(len(row)):
        loss = probe.loss()
        value = float(loss.detach())
        if not math.isfinite(value):
            return diverged_message(c, t, value, s.epsilon)
        row[t] = value
        grads = flat_grad(loss, params)
        noise = chain_noise(gen, params)
        _sgld_step(params, grads, w_star, noise, s.epsilon, nbeta, s.gamma)
    return None


def estimate_llc(probe: Probe, settings: LLCSettings, *, generator: torch.Generator) -> LLCResult:
    """Run ``settings.chains`` SGLD chains from the probe's current weights w* (no
    step-down; see :func:`with_step_down`).

    Random numbers: the chains in turn draw from ``generator``, one draw per parameter
    and step (:func:`chain_noise`); a chain stops drawing where it diverged.
    The model's parameters are restored to w* afterwards, also on error.

    Returns:
        An :class:`LLCResult`; a chain whose loss became non-finite is stopped, reported in
        ``warnings`` (chain and draw) and excluded from the mean.
    """
    params = probe.params()
    d = sum(p.numel() for p in params)
    w_star = [p.detach().clone() for p in params]
    nbeta = settings.nbeta if settings.nbeta is not None else default_nbeta(probe.n)
    traces = np.full((settings.chains, settings.burn_in + settings.draws), np.nan)
    with torch.no_grad():
        init_loss = float(probe.loss())
    warnings = []
    try:
        for c in range(settings.chains):
            w = _run_chain(probe, params, w_star, generator, settings, nbeta, traces[c], c)
            warnings += [w] if w else []
    finally:
        with torch.no_grad():
            for p, w0 in zip(params, w_star):
                p.copy_(w0)
    sampled = traces[:, settings.burn_in :]
    diverged = np.isnan(sampled).any(axis=1)
    with np.errstate(invalid="ignore"):
        chain_llc = nbeta * (sampled.mean(axis=1) - init_loss)
    chain_llc[diverged] = np.nan
    return LLCResult(
        traces, chain_llc, init_loss, nbeta, settings.burn_in, d, warnings, settings.epsilon
    )


def with_step_down(
    estimate: Callable[[list[int], LLCSettings], list[LLCResult]],
    count: int,
    settings: LLCSettings,
) -> list[LLCResult]:
    """Estimates of ``count`` checkpoints, each rerun with ε / 3 while every one of its
    chains diverged, at most ``settings.step_down`` times, so that an ε too large for a
    model still gives a curve.

    Args:
        estimate: ``estimate(indices, settings) -> results`` for those checkpoints (the
            same generators carry on across reruns, so results stay deterministic).
        count: number of checkpoints.
        settings: the requested settings.

    Returns:
        One :class:`LLCResult` per checkpoint; a stepped-down one has ``epsilon`` and
        ``step_downs`` set, the earlier divergence warnings and one line saying so.
    """
    results = estimate(list(range(count)), settings)
    s = settings
    for attempt in range(1, settings.step_down + 1):
        bad = [i for i, r in enumerate(results) if not r.ok.any()]
        if not bad:
            break
        s = replace(s, epsilon=s.epsilon / 3)
        for i, r in zip(bad, estimate(bad, s)):
            note = (
                f"llc: all {settings.chains} chains diverged at epsilon={s.epsilon * 3:g}; "
                f"stepped down to epsilon={s.epsilon:g} (/3, {attempt} of {settings.step_down})"
            )
            r.warnings[:0] = [*results[i].warnings, note]
            r.step_downs = attempt
            results[i] = r
    return results


def measurement(res: LLCResult) -> Measurement:
    """The ``llc`` signal's output for an estimate: values, ``llc_traces``, warnings."""
    return Measurement(res.values(), {"llc_traces": res.trace_table()}, res.warnings)


@signal("llc", settings=LLCSettings)
def llc(probe: Probe, settings: LLCSettings, *, generator: torch.Generator) -> Measurement:
    """``llc/mean``, ``llc/std``, ``llc/chain/<c>``, diagnostics, and the ``llc_traces`` table.

    Cost: ``chains · (burn_in + draws)`` forward-backward passes on the probe batch (again
    for each step-down of ε when every chain diverged).
    Source: Lau et al. 2023 (arXiv 2308.12108) §4; SGLD: Welling & Teh 2011.
    """
    [res] = with_step_down(lambda _, s: [estimate_llc(probe, s, generator=generator)], 1, settings)
    return measurement(res)
