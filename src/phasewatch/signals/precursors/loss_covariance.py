"""Spectrum of the per-sample loss covariance over a sliding window of checkpoints.

Source: Hennick & Corlouer 2026, "From Density Matrices to Phase Transitions in Deep
Learning: Spectral Early Warnings and Interpretability" (arXiv 2603.29805): the
"2-datapoint reduced density matrix" (2RDM) :math:`C_{ij}=\\mathrm{Cov}[\\ell_i,\\ell_j]`
of per-sample losses on a probe set, in its *dynamical* form (covariance over a temporal
window of training checkpoints), tracked through the eigenvalue statistics of the 2RDM
over a sliding window: the spectral heat capacity (their early warning of second-order
transitions, via critical slowing down) and the participation ratio (the dimensionality
of the reorganisation). No public code; this is our own implementation.

At step t, over the last W checkpoints :math:`t_1<\\dots<t_W\\le t` with per-sample losses
:math:`L_{ki}=\\ell_i(t_k)` (nats), :math:`\\bar\\ell_i=\\tfrac1W\\sum_k L_{ki}`:

.. math::
    C_{ij}=\\frac{1}{W-1}\\sum_{k=1}^{W}(L_{ki}-\\bar\\ell_i)(L_{kj}-\\bar\\ell_j),

an n × n matrix (n probe samples) of rank <= W − 1. Its nonzero eigenvalues
:math:`\\lambda_1\\ge\\lambda_2\\ge\\dots` equal those of the W × W Gram dual
:math:`G=\\tilde L\\tilde L^\\top/(W-1)` (:math:`\\tilde L` the centred L), which is what
we diagonalise when W < n. With ``detrend="linear"`` each sample's least-squares line in
the step index is removed instead of its mean (normalised by W − 2), so a steady loss
decrease does not count as a fluctuation.

Keys, from :math:`p_k=\\lambda_k/\\sum_l\\lambda_l` over the nonzero eigenvalues:
    ``loss_covariance/total_variance``: :math:`\\mathrm{tr}\\,C=\\sum_k\\lambda_k`
    (nats²), the summed per-sample loss variance over the window.
    ``loss_covariance/top_eig``: :math:`\\lambda_1` (nats²).
    ``loss_covariance/participation_ratio``:
    :math:`\\mathrm{PR}=(\\sum_k\\lambda_k)^2/\\sum_k\\lambda_k^2=1/\\sum_kp_k^2`, in
    [1, rank C]: r for an isotropic covariance of rank r, 1 for rank 1.
    ``loss_covariance/heat_capacity`` (dimensionless): we could not retrieve the paper's
    exact formula (only its abstract and summaries were available to us), so we use the
    Boltzmann-like definition over the normalised spectrum: read the density matrix
    :math:`\\rho=C/\\mathrm{tr}\\,C` as a Gibbs state :math:`\\rho=e^{-H}` at unit
    temperature, i.e. level energies :math:`E_k=-\\log p_k`, and take the canonical heat
    capacity :math:`\\beta^2\\mathrm{Var}(E)` at :math:`\\beta=1`,

    .. math::
        C_V=\\sum_k p_k(\\log p_k)^2-\\Big(\\sum_k p_k\\log p_k\\Big)^2,

    the "capacity of entanglement" of quantum information (Yao & Qi 2010, PRL 105,
    080501). :math:`C_V=0` for a flat spectrum (isotropic covariance, any rank) and for a
    single mode (rank 1); it is largest when one or a few collective modes stand out of a
    bulk of per-sample noise, and it falls again when one mode dominates completely, so
    it is a non-monotone function of that mode's variance. Read it with ``top_eig`` and
    ``participation_ratio``.

With zero variance over the window (constant losses) PR and :math:`C_V` are NaN and a
warning says so.

Choices the paper leaves open (our defaults, :class:`LossCovarianceSettings`): W = 16
checkpoints (long enough for a stable spectrum of the leading modes, short enough to
localise a transition within 16 checkpoints; the covariance has rank <= W − 1, so PR is
at most 15), mean-centring as in the paper's covariance (``detrend="none"``), and as the probe set
the samples the ``samples`` signal stores (its fixed subset of the probe batch).
Known answers in tests/reference/test_precursors_covariance.py, including a swept
pitchfork bifurcation whose heat-capacity peak lands within 15 checkpoints of the
planted crossing (after the trailing window's lag).

Cost per measured point (CPU, one core; measured for n = 512 samples): one symmetric
eigendecomposition of a min(W, n)-square matrix (16 × 16 by default) after a
(W × n)·(n × W) product, ≈ 0.2 ms; selecting the window from a 1,000-checkpoint
``per_sample_loss`` table (512k rows) ≈ 10 ms more (:mod:`.loss_window`). Well under one
training step of the grokking models (≈ 0.08 s), so far below the 20-step threshold of
issue 15.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float

from phasewatch.config import require, require_choice
from phasewatch.signals.base import Measurement
from phasewatch.signals.precursors.loss_window import loss_window
from phasewatch.signals.trajectory import History, trajectory

RTOL = 1e-12  # eigenvalues below RTOL·λ₁ are numerical zeros (rank-deficient C)
DETRENDS = ("none", "linear")


@dataclass(frozen=True)
class LossCovarianceSettings:
    """Settings of the ``loss_covariance`` trajectory signal (see the module docstring).

    Attributes:
        window: W, the number of most recent checkpoints <= t (>= 3; >= 4 with
            ``detrend="linear"``).
        detrend: ``none`` (centre each sample's losses on their window mean, the paper's
            covariance) or ``linear`` (remove each sample's least-squares line).
    """

    window: int = 16
    detrend: str = "none"

    def __post_init__(self) -> None:
        require_choice("detrend", self.detrend, DETRENDS)
        least = 4 if self.detrend == "linear" else 3
        require(
            self.window >= least,
            "window",
            f"an integer >= {least} (detrend={self.detrend!r})",
            self.window,
        )


def residuals(losses: Float[np.ndarray, "W n"], detrend: str = "none") -> Float[np.ndarray, "W n"]:
    """Each column of ``losses`` minus its window mean (``none``) or its least-squares
    line in the row index (``linear``).

    Raises:
        ValueError: for an unknown ``detrend``.
    """
    if detrend == "none":
        return losses - losses.mean(axis=0)
    if detrend == "linear":
        k = np.arange(losses.shape[0], dtype=np.float64)
        design = np.stack([np.ones_like(k), k - k.mean()], axis=1)  # (W, 2)
        coef, *_ = np.linalg.lstsq(design, losses, rcond=None)  # (2, n)
        return losses - design @ coef
    raise ValueError(f"detrend={detrend!r}; allowed: {', '.join(DETRENDS)}")


def covariance_spectrum(
    losses: Float[np.ndarray, "W n"], detrend: str = "none"
) -> Float[np.ndarray, " k"]:
    """The nonzero eigenvalues of the window covariance C (n × n), descending (nats²).

    Diagonalises the W × W Gram dual when W < n (same nonzero eigenvalues); drops
    eigenvalues below ``RTOL``·λ₁ (an empty array when C = 0 up to rounding, i.e.
    λ₁ <= (``RTOL``·max|L|)²).
    """
    w, n = losses.shape
    dof = w - (2 if detrend == "linear" else 1)
    r = residuals(losses, detrend)  # (W, n)
    gram = (r @ r.T if w < n else r.T @ r) / dof  # (W, W) or (n, n)
    lam = np.linalg.eigvalsh(gram)[::-1]
    floor = (RTOL * np.abs(losses).max()) ** 2  # rounding noise of constant losses
    if len(lam) == 0 or lam[0] <= floor:
        return np.zeros(0)
    return lam[lam > RTOL * lam[0]]


def spectrum_stats(eigenvalues: Float[np.ndarray, " k"]) -> dict[str, float]:
    """``total_variance``, ``top_eig``, ``participation_ratio`` and ``heat_capacity`` of
    a covariance spectrum (formulas in the module docstring; NaN ratios for an empty or
    zero spectrum)."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0, None)
    total = float(lam.sum())
    if total <= 0:
        ratios = {"participation_ratio": float("nan"), "heat_capacity": float("nan")}
        return {"total_variance": 0.0, "top_eig": 0.0, **ratios}
    p = lam[lam > 0] / total
    energy = -np.log(p)  # E_k = -log p_k
    mean_e = float((p * energy).sum())
    return {
        "total_variance": total,
        "top_eig": float(lam.max()),
        "participation_ratio": float(1.0 / (p**2).sum()),
        "heat_capacity": max(float((p * energy**2).sum()) - mean_e**2, 0.0),
    }


@trajectory("loss_covariance", settings=LossCovarianceSettings, needs=("samples",))
def loss_covariance(
    history: History, settings: LossCovarianceSettings, *, generator: torch.Generator
) -> Measurement:
    """``loss_covariance/{total_variance, top_eig, participation_ratio, heat_capacity}``
    of the per-sample losses at the last ``settings.window`` checkpoints <= t.

    Deterministic (``generator`` is unused). Source: Hennick & Corlouer 2026 (arXiv
    2603.29805); formulas and the heat-capacity caveat in the module docstring.

    Raises:
        NotApplicable: without per-sample losses at >= ``window`` checkpoints by step t.
    """
    win = loss_window(history, settings.window, name="loss_covariance")
    stats = spectrum_stats(covariance_spectrum(win.losses, settings.detrend))
    warnings = win.warnings("loss_covariance")
    if stats["total_variance"] == 0:
        warnings.append(
            f"loss_covariance: per-sample losses are constant over checkpoints "
            f"{int(win.steps[0])}..{int(win.steps[-1])}; participation ratio and heat "
            "capacity are undefined (NaN)"
        )
    return Measurement({f"loss_covariance/{k}": v for k, v in stats.items()}, warnings=warnings)
