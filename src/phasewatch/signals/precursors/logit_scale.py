"""The effective logit scale and the softmax saturation it drives.

Definition (Khanh 2026, "What Does the Weight Norm Control in Grokking? Logit-Scale
Mediation under Cross-Entropy", arXiv 2606.18465, §2 "Setup", paragraph "Effective logit
scale"): the mean over inputs of the L2 norm of the per-example effective logit vector,
the post-temperature logits :math:`z_i \\in \\mathbb{R}^C` the loss sees,

.. math::
    S = \\frac{1}{n} \\sum_{i=1}^{n} \\lVert z_i \\rVert_2 .

The paper finds the grokking delay collapses onto S (R² = 0.97 across a norm ×
temperature grid, §4.2) under cross-entropy, through softmax saturation. Our models have
no output temperature (τ = 1), so :math:`z_i` are the model's logits. Units: logit units
(nats: log-probabilities up to a per-sample constant).

Choices (documented because the paper's S is not what the softmax sees alone):

* S is not invariant to adding a constant to every logit of a sample, which leaves the
  softmax unchanged. ``logit_scale/centred`` is the same mean norm of the centred logits
  :math:`z_i - \\bar z_i \\mathbf{1}` (0 for uniform logits; equal to S when every row
  sums to 0).
* Saturation: ``logit_scale/max_prob`` is the mean largest softmax probability
  (1/C for uniform logits, → 1 as the softmax saturates) and ``logit_scale/saturated`` the
  fraction of samples whose largest probability is at least ``1 − saturation_tol``
  (the regime the paper's §5 softmax-collapse audit is about).
* The inputs are the probe batch (the training pairs for grokking), not all p² pairs.

Keys: ``logit_scale/norm`` (S), ``logit_scale/centred``, ``logit_scale/max_prob``,
``logit_scale/saturated``. All scale as the logits do: multiplying every logit by c
multiplies ``norm`` and ``centred`` by |c|.

Cost: one forward pass of the probe batch, no backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from phasewatch.config import require
from phasewatch.signals.base import Probe, signal
from phasewatch.signals.trajectory import NotApplicable


@dataclass(frozen=True)
class LogitScaleSettings:
    """Settings of the ``logit_scale`` signal.

    Attributes:
        saturation_tol: a sample counts as saturated when its largest softmax probability
            is at least ``1 − saturation_tol`` (0 < tol < 1).
    """

    saturation_tol: float = 1e-3

    def __post_init__(self) -> None:
        require(
            0 < self.saturation_tol < 1, "saturation_tol", "a float in (0, 1)", self.saturation_tol
        )


def logit_scale_values(
    logits: Float[Tensor, "n classes"], saturation_tol: float
) -> dict[str, float]:
    """The ``logit_scale/*`` keys of ``logits`` (see module docstring), in float64.

    Raises:
        ValueError: if ``logits`` is not 2-D with at least one row and two classes.
    """
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (n >= 1, classes >= 2), got {tuple(logits.shape)}")
    z = logits.detach().double()  # (n, C)
    centred = z - z.mean(-1, keepdim=True)  # (n, C)
    max_prob = z.softmax(-1).max(-1).values  # (n,)
    return {
        "logit_scale/norm": float(z.norm(dim=-1).mean()),
        "logit_scale/centred": float(centred.norm(dim=-1).mean()),
        "logit_scale/max_prob": float(max_prob.mean()),
        "logit_scale/saturated": float((max_prob >= 1 - saturation_tol).double().mean()),
    }


@signal("logit_scale", settings=LogitScaleSettings)
def logit_scale(
    probe: Probe, settings: LogitScaleSettings, *, generator: torch.Generator
) -> dict[str, float]:
    """``logit_scale/norm`` (Khanh 2026's effective logit scale), ``/centred``,
    ``/max_prob`` and ``/saturated`` of the probe batch's logits (module docstring).

    Raises:
        NotApplicable: if the run's task gives no logits (a regression model such as the
            superposition toy model has none: its loss is a squared error, with no softmax
            to saturate), or they are not ``(rows, classes)``.
    """
    if probe.logits is None:
        raise NotApplicable(
            "needs the model's logits on the probe batch (task.probe_logits); a regression "
            "model has no softmax to saturate"
        )
    with torch.no_grad():
        z = probe.logits()
    if z.ndim != 2:
        raise NotApplicable(f"needs (rows, classes) logits, got shape {tuple(z.shape)}")
    return logit_scale_values(z, settings.saturation_tol)
