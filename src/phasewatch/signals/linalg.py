"""Matrix-free spectral estimators for a symmetric operator given only ``v ↦ Av``.

Used by :mod:`phasewatch.signals.hessian` with Hessian-vector products; tested on
explicit matrices with a known spectrum. Everything is float64.

Sources:
    Lanczos with full reorthogonalisation: Golub & Van Loan, *Matrix Computations*
    (4th ed.) §10.1; Ritz residual bound ``‖A y − θ y‖ = |β_m s_{m,i}|`` (§10.1.4).
    Hutchinson trace estimator: Hutchinson 1990; its Rademacher variance
    ``2 Σ_{i≠j} A_ij²`` (Avron & Toledo 2011, Lemma 1).
    Stochastic Lanczos quadrature for the spectral density: Lin, Saad & Yang 2016;
    Ghorbani, Krishnan & Xiao 2019, "An investigation into neural net optimization via
    Hessian eigenvalue density", §2.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

MatVec = Callable[[Float[Tensor, " d"]], Float[Tensor, " d"]]


@dataclass(frozen=True)
class Tridiagonal:
    """The Lanczos tridiagonal ``T_m = Qᵀ A Q`` and the norm of the next residual.

    Attributes:
        alpha: (m,) diagonal.
        beta: (m-1,) off-diagonal.
        beta_next: ``β_m``, the norm of the residual after the last step (0 when the
            Krylov space became invariant, i.e. the Ritz values are exact).
    """

    alpha: Float[Tensor, " m"]
    beta: Float[Tensor, " m1"]
    beta_next: float

    def ritz(self) -> tuple[Float[Tensor, " m"], Float[Tensor, "m m"]]:
        """Ritz values (ascending) and eigenvectors of ``T`` (columns)."""
        T = torch.diag(self.alpha) + torch.diag(self.beta, 1) + torch.diag(self.beta, -1)
        return torch.linalg.eigh(T)

    def residuals(self) -> Float[Tensor, " m"]:
        """``|β_m s_{m,i}|``: the residual norm ``‖A y_i − θ_i y_i‖`` of each Ritz pair."""
        _, S = self.ritz()
        return (self.beta_next * S[-1]).abs()


def lanczos(matvec: MatVec, v0: Float[Tensor, " d"], steps: int) -> Tridiagonal:
    """``steps`` Lanczos iterations from ``v0`` with full reorthogonalisation.

    Args:
        matvec: ``v ↦ A v`` for a symmetric ``A`` (d × d), float64 in and out.
        v0: (d,) start vector (normalised here).
        steps: Krylov dimension m (stops early if the space becomes invariant).

    Returns:
        The tridiagonal ``T_m``; its eigenvalues approximate A's extreme eigenvalues first
        (Kaniel–Paige), and ``(T_m)`` with ``e_1`` gives the quadrature of SLQ.
    """
    d = v0.numel()
    steps = min(steps, d)
    Q = torch.zeros(steps, d, dtype=torch.float64)
    q = v0.double() / v0.double().norm()
    alphas, betas = [], []
    beta_next = 0.0
    for j in range(steps):
        Q[j] = q
        w = matvec(q).double()
        alpha = float(w @ q)
        alphas.append(alpha)
        # full reorthogonalisation (twice is enough: Giraud et al. 2005)
        for _ in range(2):
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta_next = float(w.norm())
        if j == steps - 1 or beta_next <= 1e-12 * max(1.0, abs(alpha)):
            break
        betas.append(beta_next)
        q = w / beta_next
    return Tridiagonal(
        torch.tensor(alphas, dtype=torch.float64),
        torch.tensor(betas, dtype=torch.float64),
        beta_next,
    )


def hutchinson(
    matvec: MatVec, d: int, probes: int, *, generator: torch.Generator
) -> Float[Tensor, " probes"]:
    """Per-probe Hutchinson samples ``vᵀ A v`` with Rademacher ``v`` (d,).

    Their mean is an unbiased estimate of ``tr A``,
    :math:`\\widehat{\\operatorname{tr}} = \\frac1m\\sum_{j=1}^m v_j^\\top A v_j`,
    with per-sample variance :math:`2\\sum_{i\\ne j} A_{ij}^2`; the standard error is
    ``samples.std() / sqrt(m)``.
    """
    out = torch.empty(probes, dtype=torch.float64)
    for j in range(probes):
        v = torch.randint(0, 2, (d,), generator=generator, dtype=torch.float64) * 2 - 1
        out[j] = matvec(v) @ v
    return out


def slq_nodes(tri: Tridiagonal) -> tuple[Float[Tensor, " m"], Float[Tensor, " m"]]:
    """Gauss quadrature nodes θ_i and weights τ_i = (e_1ᵀ s_i)² of one SLQ run.

    For a Gaussian start vector the spectral density of A (d × d) is estimated by
    :math:`\\hat\\phi(t) = \\frac{1}{n_v}\\sum_{l=1}^{n_v}\\sum_{i=1}^m \\tau_i^{(l)}\\,
    g_\\sigma(t-\\theta_i^{(l)})` (Ghorbani et al. 2019, eq. 5); the weights of a run sum to 1.
    """
    theta, S = tri.ritz()
    return theta, S[0] ** 2


def density(
    nodes: Float[Tensor, " k"],
    weights: Float[Tensor, " k"],
    grid: Float[Tensor, " g"],
    sigma: float,
) -> Float[Tensor, " g"]:
    """Gaussian-smoothed density ``Σ w_i N(t; θ_i, σ²)`` on ``grid`` (weights should sum to 1)."""
    z = (grid[:, None] - nodes[None, :]) / sigma
    return (weights[None, :] * torch.exp(-0.5 * z**2)).sum(-1) / (sigma * math.sqrt(2 * math.pi))


def lanczos_batched(
    matvec: Callable[[Float[Tensor, "K d"]], Float[Tensor, "K d"]],
    v0: Float[Tensor, "K d"],
    steps: int,
) -> list[Tridiagonal]:
    """:func:`lanczos` on K operators at once: ``matvec`` maps row k to ``A_k v_k``.

    Each row stops where :func:`lanczos` would (invariant Krylov space); a stopped row is
    carried on as a zero vector and its tridiagonal cut at that step.

    Args:
        matvec: ``V ↦ (A_k V_k)_k`` for symmetric ``A_k`` (d × d), float64 (K, d) in and out.
        v0: (K, d) start vectors (normalised here).
        steps: Krylov dimension m.

    Returns:
        One :class:`Tridiagonal` per row, as :func:`lanczos` gives for that row alone.
    """
    k_rows, d = v0.shape
    steps = min(steps, d)
    Q = torch.zeros(k_rows, steps, d, dtype=torch.float64)
    q = v0.double() / v0.double().norm(dim=1, keepdim=True)
    alpha = torch.zeros(k_rows, steps, dtype=torch.float64)
    beta = torch.zeros(k_rows, steps, dtype=torch.float64)
    length = torch.full((k_rows,), steps)
    active = torch.ones(k_rows, dtype=torch.bool)
    for j in range(steps):
        Q[:, j] = q
        w = matvec(q).double()
        alpha[:, j] = (w * q).sum(1)
        for _ in range(2):  # full reorthogonalisation, as in :func:`lanczos`
            Qj = Q[:, : j + 1]  # (K, j+1, d)
            w = w - torch.einsum("kjd,kj->kd", Qj, torch.einsum("kjd,kd->kj", Qj, w))
        beta[:, j] = w.norm(dim=1)
        stop = active & (beta[:, j] <= 1e-12 * alpha[:, j].abs().clamp_min(1.0))
        length[stop] = j + 1
        active &= ~stop
        if j == steps - 1 or not active.any():
            break
        q = torch.where(active[:, None], w / beta[:, j, None].clamp_min(1e-300), 0.0)
    return [
        Tridiagonal(alpha[k, :m].clone(), beta[k, : m - 1].clone(), float(beta[k, m - 1]))
        for k, m in enumerate(length.tolist())
    ]


def hutchinson_batched(
    matvec: Callable[[Float[Tensor, "K d"]], Float[Tensor, "K d"]],
    d: int,
    probes: int,
    generators: list[torch.Generator],
) -> Float[Tensor, "K probes"]:
    """:func:`hutchinson` on K operators at once, row k's probes drawn from
    ``generators[k]`` in the order :func:`hutchinson` draws them."""
    out = torch.empty(len(generators), probes, dtype=torch.float64)
    for j in range(probes):
        vs = torch.stack(
            [
                torch.randint(0, 2, (d,), generator=g, dtype=torch.float64) * 2 - 1
                for g in generators
            ]
        )  # (K, d)
        out[:, j] = (matvec(vs) * vs).sum(1)
    return out
