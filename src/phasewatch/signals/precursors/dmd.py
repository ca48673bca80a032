"""Hankel-DMD of the probe batch's loss distribution: residual, spectrum, effective rank.

Source: Wang, Ying & Kanamori 2026, "Distributional Spectral Diagnostics for Localizing
Grokking Transitions" (arXiv 2605.08237): task observables summarised as empirical
distributions, mapped to Wasserstein/quantile coordinates and analysed by Hankel dynamic
mode decomposition; the reconstruction residual, the spectrum and the effective rank form
the diagnostic (abstract; they found log-probability the best observable and report
run-level AUROC ≈ 0.93 for the residual on modular addition). Only the abstract and
summaries of the paper were available to us, so the steps below are the standard
constructions those words name, with our choices stated. Exact DMD: Tu et al. 2014, "On
dynamic mode decomposition: theory and applications" (J. Comput. Dyn. 1, Alg. 2); Hankel
(delay-embedded) DMD: Arbabi & Mezić 2017 (SIAM J. Appl. Dyn. Syst. 16). No public code
exists; this is our own implementation.

At step t, over the last W measured checkpoints :math:`t_1<\\dots<t_W\\le t`:

1. **Quantile coordinates.** The per-sample losses :math:`\\{\\ell_i(t_k)\\}_{i=1}^n` of
   checkpoint k, as an empirical distribution, map to its quantile function on the
   midpoint grid :math:`u_j=(j-\\tfrac12)/m`, :math:`j=1..m`:
   :math:`z_k=m^{-1/2}\\,(Q_k(u_1),\\dots,Q_k(u_m))\\in\\mathbb R^m`. In one dimension the
   Wasserstein-2 embedding is exactly the quantile function,
   :math:`W_2(P,R)^2=\\int_0^1 (Q_P(u)-Q_R(u))^2du\\approx\\lVert z_P-z_R\\rVert_2^2`.
2. **Hankel matrix** with d delays: columns
   :math:`h_k=(z_k;z_{k+1};\\dots;z_{k+d-1})\\in\\mathbb R^{md}`, :math:`k=1..W-d+1`,
   :math:`H=[h_1\\cdots h_{W-d+1}]`; :math:`X=[h_1\\cdots h_{W-d}]`,
   :math:`X'=[h_2\\cdots h_{W-d+1}]`.
3. **Exact DMD**, rank r: :math:`X=U\\Sigma V^\\top`, truncated to the r largest singular
   values (and to those above ``rtol``·σ₁), :math:`A=X'V_r\\Sigma_r^{-1}U_r^\\top` (the
   least-squares :math:`X'\\approx AX` restricted to the rank-r subspace),
   :math:`\\tilde A=U_r^\\top X'V_r\\Sigma_r^{-1}` (r × r, same nonzero eigenvalues
   :math:`\\mu_k` as A).

Keys (dimensionless):
    ``dmd/residual``: :math:`\\lVert X'-AX\\rVert_F/\\lVert X'\\rVert_F
    =\\lVert X'(I-V_rV_r^\\top)\\rVert_F/\\lVert X'\\rVert_F\\in[0,1]`, the relative
    one-step prediction residual: ≈ 0 while the window's quantile dynamics are linear of
    order <= r, large when the dynamics change inside the window.
    ``dmd/spectral_radius``: :math:`\\max_k|\\mu_k|` per checkpoint interval (> 1: growing
    modes; the constant mean-loss level is a mode with μ = 1).
    ``dmd/effective_rank``: :math:`\\exp(-\\sum_i p_i\\log p_i)`,
    :math:`p_i=s_i/\\sum_j s_j` over the singular values :math:`s_i` of H (Roy & Vetterli
    2007), in [1, rank H].
    ``dmd/rank``: the r actually used (<= ``rank``; lower when H is numerically
    rank-deficient).

Choices the paper leaves open (our defaults, :class:`DMDSettings`): W = 16 checkpoints,
d = 4 delays, m = 16 quantiles, r = 4. The window is short enough to localise a change
(a change affects the value at most W checkpoints) yet leaves W − d = 12 snapshot pairs,
three times the rank, so the least-squares fit is over-determined (with r >= W − d the
residual would be identically 0, which the settings refuse); four delays let the Hankel
matrix resolve up to r = 4 modes (two oscillatory pairs or four decays) even when the
quantile profile moves in fewer directions; 16 quantiles resolve a distribution's shape
on probe batches of hundreds of samples. Observable: the loss; the log-probability
:math:`-\\ell` gives identical values, since its quantile coordinates are
:math:`-z` with the grid reversed (an isometry of :math:`\\mathbb R^m`, to which the
residual, the eigenvalues and the singular values are invariant). The coordinates are
not centred: the mean loss level is part of the observable (a constant level is a mode
with μ = 1), so the residual is relative to the whole profile, level included — a change
in the shape of a distribution sitting far from 0 gives a small relative residual
(≈ 6e-3 in tests/reference/test_precursors_dmd.py); compare values along a run rather
than across runs with very different loss levels.
Checkpoints are treated as equally spaced (a warning says when they are not).

Cost per measured point (CPU, one core; measured for n = 512 samples): the fit —
quantiles O(W n log n) and one SVD of an (md) × (W − d + 1) matrix, 64 × 13 by default —
≈ 1.5 ms; selecting the window from a 1,000-checkpoint ``per_sample_loss`` table (512k
rows) ≈ 10 ms more (:mod:`.loss_window`). Well under one training step of the grokking
models (≈ 0.08 s), so far below the 20-step threshold of issue 15.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Complex, Float

from phasewatch.config import require
from phasewatch.signals.base import Measurement
from phasewatch.signals.precursors.loss_window import loss_window
from phasewatch.signals.trajectory import History, trajectory


@dataclass(frozen=True)
class DMDSettings:
    """Settings of the ``dmd`` trajectory signal (see the module docstring for why).

    Attributes:
        window: W, the number of most recent checkpoints <= t in the fit (>= delays + 2).
        delays: d, the delay-embedding depth of the Hankel matrix (>= 1).
        quantiles: m, the size of the midpoint quantile grid (>= 1).
        rank: r, the DMD truncation rank (>= 1 and < window − delays, the number of
            snapshot pairs; otherwise the residual is identically zero).
        rtol: singular values of X below ``rtol``·σ₁ are dropped too (0 < rtol < 1).
    """

    window: int = 16
    delays: int = 4
    quantiles: int = 16
    rank: int = 4
    rtol: float = 1e-10

    def __post_init__(self) -> None:
        require(self.delays >= 1, "delays", "an integer >= 1", self.delays)
        require(
            self.window >= self.delays + 2,
            "window",
            f"an integer >= delays + 2 = {self.delays + 2}",
            self.window,
        )
        require(self.quantiles >= 1, "quantiles", "an integer >= 1", self.quantiles)
        pairs = self.window - self.delays
        require(
            1 <= self.rank < pairs,
            "rank",
            f"an integer in [1, window - delays) = [1, {pairs}) (the snapshot pairs)",
            self.rank,
        )
        require(0 < self.rtol < 1, "rtol", "a float in (0, 1)", self.rtol)


@dataclass(frozen=True)
class DMDFit:
    """One exact-DMD fit of a Hankel matrix.

    Attributes:
        residual: ‖X' − AX‖_F / ‖X'‖_F in [0, 1] (0 when X' = 0).
        eigenvalues: (r,) complex eigenvalues μ of the reduced operator Ã.
        rank: r, the truncation rank used.
        singular_values: (min(md, W − d + 1),) singular values of the Hankel matrix H.
    """

    residual: float
    eigenvalues: Complex[np.ndarray, " r"]
    rank: int
    singular_values: Float[np.ndarray, " k"]

    @property
    def spectral_radius(self) -> float:
        """max |μ| (NaN when r = 0, i.e. X = 0)."""
        return float(np.abs(self.eigenvalues).max()) if len(self.eigenvalues) else float("nan")

    @property
    def effective_rank(self) -> float:
        """Roy & Vetterli's effective rank of H."""
        return effective_rank(self.singular_values)


def quantile_coordinates(
    losses: Float[np.ndarray, "W n"], quantiles: int
) -> Float[np.ndarray, "W m"]:
    """Each row's empirical quantile function on the midpoint grid, scaled by m^{-1/2}.

    Row k of the result is :math:`m^{-1/2}(Q_k(u_1),\\dots,Q_k(u_m))` with
    :math:`u_j=(j-\\tfrac12)/m` and linear interpolation between order statistics, so the
    Euclidean distance between rows approximates the Wasserstein-2 distance between the
    rows' distributions (units: those of ``losses``, nats).
    """
    u = (np.arange(quantiles) + 0.5) / quantiles
    return np.quantile(losses, u, axis=1).T / np.sqrt(quantiles)


def hankel(z: Float[np.ndarray, "W m"], delays: int) -> Float[np.ndarray, "md K"]:
    """The delay-embedded (Hankel) matrix of snapshots ``z``: column k stacks
    ``z[k], ..., z[k + delays - 1]``; K = W − delays + 1 columns.

    Raises:
        ValueError: if ``delays`` is not in [1, W].
    """
    w = z.shape[0]
    if not 1 <= delays <= w:
        raise ValueError(f"delays={delays} must be in [1, {w}] for {w} snapshots")
    cols = w - delays + 1
    return np.concatenate([z[j : j + cols].T for j in range(delays)], axis=0)


def exact_dmd(h: Float[np.ndarray, "D K"], rank: int, rtol: float = 1e-10) -> DMDFit:
    """Exact DMD (Tu et al. 2014) of the snapshot pairs (columns k, k + 1) of ``h``.

    Args:
        h: snapshot matrix, columns in time order (a Hankel matrix from :func:`hankel`).
        rank: the truncation rank r (the r largest singular values of X).
        rtol: singular values below ``rtol``·σ₁ are dropped as well.

    Raises:
        ValueError: if ``h`` has fewer than two columns.
    """
    if h.shape[1] < 2:
        raise ValueError(f"exact DMD needs >= 2 snapshots, got {h.shape[1]}")
    x, xp = h[:, :-1], h[:, 1:]  # (D, K-1) each
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    r = int(min(rank, np.sum(s > rtol * s[0]) if s[0] > 0 else 0))
    ur, sr, vr = u[:, :r], s[:r], vt[:r].T  # (D, r), (r,), (K-1, r)
    norm = np.linalg.norm(xp)
    fitted = xp @ vr @ vr.T  # = A X with A = X' V_r Σ_r⁻¹ U_rᵀ
    residual = float(np.linalg.norm(xp - fitted) / norm) if norm > 0 else 0.0
    a_tilde = ur.T @ xp @ vr / sr  # (r, r): U_rᵀ X' V_r Σ_r⁻¹
    eig = np.linalg.eigvals(a_tilde) if r else np.zeros(0, dtype=complex)
    return DMDFit(residual, eig, r, np.linalg.svd(h, compute_uv=False))


def effective_rank(s: Float[np.ndarray, " k"]) -> float:
    """:math:`\\exp(-\\sum_i p_i\\log p_i)`, :math:`p_i=s_i/\\sum_j s_j` (Roy & Vetterli
    2007, eq. 2); 1 for a zero matrix."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0, None)
    total = s.sum()
    if total <= 0:
        return 1.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def dmd_of_losses(losses: Float[np.ndarray, "W n"], settings: DMDSettings) -> DMDFit:
    """Quantile coordinates → Hankel matrix → exact DMD, for one window of per-sample
    losses (rows = checkpoints in time order, columns = probe samples)."""
    z = quantile_coordinates(losses, settings.quantiles)
    return exact_dmd(hankel(z, settings.delays), settings.rank, settings.rtol)


@trajectory("dmd", settings=DMDSettings, needs=("samples",))
def dmd(history: History, settings: DMDSettings, *, generator: torch.Generator) -> Measurement:
    """``dmd/residual``, ``dmd/spectral_radius``, ``dmd/effective_rank``, ``dmd/rank`` of
    the per-sample losses at the last ``settings.window`` checkpoints <= t.

    Deterministic (``generator`` is unused). Source: Wang, Ying & Kanamori 2026 (arXiv
    2605.08237); formulas in the module docstring.

    Raises:
        NotApplicable: without per-sample losses at >= ``window`` checkpoints by step t.
    """
    win = loss_window(history, settings.window, name="dmd")
    fit = dmd_of_losses(win.losses, settings)
    values = {
        "dmd/residual": fit.residual,
        "dmd/spectral_radius": fit.spectral_radius,
        "dmd/effective_rank": fit.effective_rank,
        "dmd/rank": float(fit.rank),
    }
    return Measurement(values, warnings=win.warnings("dmd"))
