"""The commutator defect: how much two plain SGD steps on disjoint batches fail to commute.

Definition: Xu 2026, "Low-Dimensional and Transversely Curved Optimization Dynamics in
Grokking", arXiv 2602.16746, §3.2 "Commutator Defect" (the scale-normalised defect
:math:`\\mathcal{D}`), the early-warning signal of Xu 2026, "Early-Warning Signals of
Grokking via Loss-Landscape Geometry", arXiv 2602.16967. From parameters
:math:`\\theta_0` and two batches A, B, with :math:`g_S(\\theta) = \\nabla_\\theta L_S(\\theta)`
the gradient of the mean loss on S:

.. math::
    \\theta_{AB} = \\theta_0 - \\eta g_A(\\theta_0) - \\eta g_B(\\theta_0 - \\eta g_A(\\theta_0)),
    \\qquad \\theta_{BA} = (A \\leftrightarrow B),

.. math::
    \\mathcal{D} = \\frac{\\lVert \\theta_{AB} - \\theta_{BA} \\rVert}
        {\\lVert \\eta g_A(\\theta_0) \\rVert\\,\\lVert \\eta g_B(\\theta_0) \\rVert}.

To leading order :math:`\\theta_{AB}-\\theta_{BA} \\approx \\eta^2 (H_B g_A - H_A g_B)`, the
Lie bracket of the two gradient fields, so :math:`\\mathcal{D}` is a curvature probe that
needs no Hessian and is independent of η to leading order (exactly so for quadratic
losses :math:`L_S = \\tfrac12\\theta^\\top H_S\\theta`, where
:math:`\\theta_{AB}-\\theta_{BA} = \\eta^2 [H_B, H_A]\\theta_0`). Units: 1/(parameter units)
(:math:`\\eta g` and the difference are both in parameter units).

Choices (the paper measures on its training mini-batches; we measure on the probe batch):

* A and B are the two halves of a random permutation of the probe batch (``batch_size``
  samples each, default ⌊n/2⌋), drawn from the signal's generator; the paper's median
  over K = 9 independent pairs is ``samples`` pairs here (default 5, for cost).
* The difference is formed from the displacements,
  :math:`\\theta_{AB}-\\theta_{BA} = \\eta[(g_A(\\theta_0-\\eta g_B) - g_A(\\theta_0)) -
  (g_B(\\theta_0-\\eta g_A) - g_B(\\theta_0))]` — algebraically identical, but it never
  subtracts two float32 parameter vectors of size ~1 whose difference is ~η².
* Plain SGD whatever the run's optimiser (as in the paper): a property of the loss
  landscape, not of the optimiser state.

Keys: ``commutator/defect`` (median over pairs of :math:`\\mathcal{D}`),
``commutator/defect_iqr`` (its interquartile range) and ``commutator/norm`` (median of
:math:`\\lVert\\theta_{AB}-\\theta_{BA}\\rVert`, parameter units).

Cost: per pair 3 forward and 4 backward passes of the probe batch
(``per_sample_loss`` computes every sample; A and B select rows), i.e. about 3.5
training steps per pair, ~18 at the default ``samples=5`` (measured: 1.8 s on the
p = 113 grokking model, 1 thread, ~14 training steps of 0.13 s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from phasewatch.config import require
from phasewatch.signals.base import Measurement, Probe, dot, flat_grad, signal
from phasewatch.signals.trajectory import NotApplicable


@dataclass(frozen=True)
class CommutatorSettings:
    """Settings of the ``commutator`` signal.

    Attributes:
        lr: the SGD step size η (> 0); Xu 2026 uses 1e-3.
        samples: independent (A, B) pairs whose median is reported (>= 1).
        batch_size: samples in each of A and B (>= 1, at most n/2); None = ⌊n/2⌋.
        seed: seeds the random splits (with the checkpoint step).
    """

    lr: float = 1e-3
    samples: int = 5
    batch_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", "a float > 0", self.lr)
        require(self.samples >= 1, "samples", "an integer >= 1", self.samples)
        require(
            self.batch_size is None or self.batch_size >= 1,
            "batch_size",
            "an integer >= 1 or None",
            self.batch_size,
        )


def _restore(params: list[Tensor], saved: list[Tensor]) -> None:
    """Copy ``saved`` back into ``params``, in place."""
    with torch.no_grad():
        for p, w in zip(params, saved):
            p.copy_(w)


def _shift(params: list[Tensor], step: list[Tensor], alpha: float) -> None:
    """params += alpha · step, in place."""
    with torch.no_grad():
        for p, s in zip(params, step):
            p.add_(s, alpha=alpha)


def commutator_vector(
    losses: Callable[[], tuple[Tensor, Tensor]], params: list[Tensor], lr: float
) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """:math:`\\theta_{AB}-\\theta_{BA}` and the gradients :math:`g_A, g_B` at the current
    parameters :math:`\\theta_0` (restored on return, also on error).

    Args:
        losses: ``() -> (L_A, L_B)``, the scalar mean losses on batches A and B at the
            current parameters, from one forward pass.
        params: the parameters θ (modified in place during the call, then restored).
        lr: the SGD step η.

    Returns:
        ``(delta, g_a, g_b)`` as parameter-shaped tensor lists (delta in float64).
    """
    theta0 = [p.detach().clone() for p in params]
    loss_a, loss_b = losses()
    g_a = [g.detach() for g in flat_grad(loss_a, params, retain_graph=True)]
    g_b = [g.detach() for g in flat_grad(loss_b, params)]
    try:
        _shift(params, g_a, -lr)  # θ0 − η g_A
        g_b_after = [g.detach() for g in flat_grad(losses()[1], params)]
        _restore(params, theta0)
        _shift(params, g_b, -lr)  # θ0 − η g_B
        g_a_after = [g.detach() for g in flat_grad(losses()[0], params)]
    finally:
        _restore(params, theta0)
    delta = [
        lr * ((a1.double() - a0.double()) - (b1.double() - b0.double()))
        for a1, a0, b1, b0 in zip(g_a_after, g_a, g_b_after, g_b)
    ]
    return delta, g_a, g_b


def defect(delta: list[Tensor], g_a: list[Tensor], g_b: list[Tensor], lr: float) -> float:
    """:math:`\\lVert\\delta\\rVert / (\\lVert\\eta g_A\\rVert\\,\\lVert\\eta g_B\\rVert)`;
    NaN when a gradient vanishes (the defect is undefined at a stationary point of A or B)."""
    denom = lr**2 * float(dot(g_a, g_a).sqrt() * dot(g_b, g_b).sqrt())
    return float(dot(delta, delta).sqrt()) / denom if denom > 0 else float("nan")


def _split_losses(probe: Probe, idx_a: Tensor, idx_b: Tensor) -> tuple[Tensor, Tensor]:
    """Mean per-sample loss of the probe batch's rows ``idx_a`` and ``idx_b`` (one forward)."""
    losses = probe.per_sample_loss()  # (n,)
    idx_a, idx_b = idx_a.to(losses.device), idx_b.to(losses.device)
    return losses[idx_a].mean(), losses[idx_b].mean()


@signal("commutator", settings=CommutatorSettings)
def commutator(
    probe: Probe, settings: CommutatorSettings, *, generator: torch.Generator
) -> Measurement:
    """``commutator/defect``, ``commutator/defect_iqr`` and ``commutator/norm`` (module doc).

    Raises:
        NotApplicable: if the probe has no per-sample losses or fewer than 2 samples.
    """
    if probe.per_sample_loss is None:
        raise NotApplicable("needs per-sample losses of the probe batch (per_sample_loss)")
    n = probe.n
    if n < 2:
        raise NotApplicable(f"needs a probe batch of at least 2 samples to split, got {n}")
    half = min(settings.batch_size or n // 2, n // 2)
    params = probe.params()
    defects, norms = [], []
    for _ in range(settings.samples):
        perm = torch.randperm(n, generator=generator)
        idx_a, idx_b = perm[:half], perm[half : 2 * half]
        delta, g_a, g_b = commutator_vector(
            lambda a=idx_a, b=idx_b: _split_losses(probe, a, b), params, settings.lr
        )
        defects.append(defect(delta, g_a, g_b, settings.lr))
        norms.append(float(dot(delta, delta).sqrt()))
    d = np.asarray(defects)
    warnings = []
    if np.isnan(d).any():
        warnings.append(
            f"commutator: {int(np.isnan(d).sum())}/{len(d)} pairs had a zero gradient on A or "
            "B (defect undefined there); reported over the others"
        )
    ok = d[np.isfinite(d)]
    q25, q50, q75 = np.percentile(ok, [25, 50, 75]) if ok.size else (np.nan,) * 3
    values = {
        "commutator/defect": float(q50),
        "commutator/defect_iqr": float(q75 - q25),
        "commutator/norm": float(np.median(norms)),
    }
    return Measurement(values, warnings=warnings)
