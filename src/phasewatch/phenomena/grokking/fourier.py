"""Fourier progress measures of modular addition (Nanda et al. 2023, arXiv 2301.05217).

Notation: p is the modulus, w_k = 2πk/p for frequencies k = 1..(p-1)/2. The Fourier
basis of functions on Z_p has p orthonormal rows: the constant, then cos(w_k x) and
sin(w_k x) for each k (§2 and Appendix of the paper).
"""

from __future__ import annotations

import math

import torch
from einops import reduce
from jaxtyping import Bool, Float
from torch import Tensor


def fourier_basis(p: int, dtype: torch.dtype = torch.float64) -> Float[Tensor, "p p"]:
    """Orthonormal Fourier basis of Z_p, one basis function per row.

    Row 0 is the constant 1/√p; rows 2k-1 and 2k are √(2/p)·cos(w_k x) and √(2/p)·sin(w_k x).

    Raises:
        ValueError: if p is not an odd integer >= 3.
    """
    if p < 3 or p % 2 == 0:
        raise ValueError(f"p={p} is invalid; allowed: an odd integer >= 3")
    x = torch.arange(p, dtype=dtype)
    rows = [torch.full((p,), 1 / math.sqrt(p), dtype=dtype)]
    for k in range(1, (p - 1) // 2 + 1):
        w = 2 * math.pi * k / p
        rows += [torch.cos(w * x), torch.sin(w * x)]
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True)


def frequency_norms(W: Float[Tensor, "p d"]) -> Float[Tensor, " n_freq"]:
    """Norm of ``W`` (rows indexed by x in Z_p) in each frequency k = 1..(p-1)/2.

    ``sqrt(|<cos_k, W>|² + |<sin_k, W>|²)``, summed over the d columns.
    """
    p = W.shape[0]
    coef = fourier_basis(p, W.dtype).to(W.device) @ W  # (p, d): constant, cos_1, sin_1, ...
    sq = reduce(coef[1:].pow(2).sum(-1), "(k trig) -> k", "sum", trig=2)  # (n_freq,)
    return sq.sqrt()


def gini(x: Float[Tensor, " n"]) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, 1 - 1/n for one-hot.

    G = Σ_i Σ_j |x_i - x_j| / (2 n Σ_i x_i). Nanda et al. 2023 (§5.1) track it for the
    norms of the Fourier components of W_E: it rises as the embedding becomes sparse in
    the Fourier basis.

    Raises:
        ValueError: on negative values or an all-zero input.
    """
    x = x.detach().double().flatten()
    if (x < 0).any() or x.sum() <= 0:
        raise ValueError("gini needs non-negative values with a positive sum")
    n = x.numel()
    return float((x[:, None] - x[None, :]).abs().sum() / (2 * n * x.sum()))


def embed_fourier_gini(W_E: Float[Tensor, "p d_model"]) -> float:
    """Gini of the norms of W_E's p Fourier components (constant, cos_k, sin_k)."""
    coef = fourier_basis(W_E.shape[0], torch.float64) @ W_E.detach().double()
    return gini(coef.norm(dim=-1))


def neuron_frequency_fractions(
    acts: Float[Tensor, "p p d_mlp"],
) -> Float[Tensor, "d_mlp n_freq"]:
    """Fraction of each neuron's activation variance over (a, b) explained by each frequency.

    The 2-D Fourier transform of a neuron's activation table is split into the terms that
    involve frequency k only — linear (cos/sin w_k a, cos/sin w_k b) and quadratic
    (products of those) — and divided by the total non-constant variance
    (Nanda et al. 2023, §4.2 "neuron clusters").
    """
    p = acts.shape[0]
    F = fourier_basis(p, torch.float64).to(acts.device)
    coef = torch.einsum("ia,jb,abn->ijn", F, F, acts.double())  # (p, p, d_mlp)
    power = coef.pow(2)
    power[0, 0] = 0.0
    total = power.sum((0, 1)).clamp_min(1e-30)  # (d_mlp,)
    n_freq = (p - 1) // 2
    fracs = []
    for k in range(1, n_freq + 1):
        idx = torch.tensor([0, 2 * k - 1, 2 * k], device=acts.device)
        fracs.append(power[idx][:, idx].sum((0, 1)) / total)
    return torch.stack(fracs, dim=-1)


def key_frequencies(
    acts: Float[Tensor, "p p d_mlp"], *, threshold: float = 0.85, min_fraction: float = 0.02
) -> tuple[list[int], dict[int, int]]:
    """Key frequencies of a trained model from its MLP neuron activations.

    A neuron belongs to frequency k if k explains >= ``threshold`` of its activation
    variance over (a, b) (0.85 in Nanda et al. 2023, §4.2). A frequency is *key* if at
    least ``min_fraction`` of the neurons (and at least one) belong to it.

    Args:
        acts: read-out position MLP activations for every input pair (a, b).

    Returns:
        The sorted key frequencies and the neuron count of every frequency with any neuron.
    """
    fracs = neuron_frequency_fractions(acts)
    best, k = fracs.max(dim=-1)
    counts: dict[int, int] = {}
    for kk in (k[best >= threshold] + 1).tolist():
        counts[kk] = counts.get(kk, 0) + 1
    need = max(1, math.ceil(min_fraction * acts.shape[-1]))
    return sorted(f for f, c in counts.items() if c >= need), dict(sorted(counts.items()))


def _trig_directions(
    p: int, k: int, device: torch.device
) -> tuple[Float[Tensor, "p p p"], Float[Tensor, "p p p"]]:
    """Unit-norm cos(w_k(a+b-c)) and sin(w_k(a+b-c)) as (a, b, c) tables (float64)."""
    a = torch.arange(p, dtype=torch.float64, device=device)
    phase = 2 * math.pi * k / p * (a[:, None, None] + a[None, :, None] - a[None, None, :])
    cos, sin = torch.cos(phase), torch.sin(phase)  # (a, b, c)
    return cos / cos.norm(), sin / sin.norm()


def key_frequency_logits(
    logits: Float[Tensor, "p p p"], key_freqs: list[int]
) -> Float[Tensor, "p p p"]:
    """The components of a logit table along cos(w_k(a+b-c)) and sin(w_k(a+b-c)), k in key_freqs.

    Args:
        logits: ``logits[a, b, c]``, the logit of answer c for input (a, b).
    """
    out = torch.zeros_like(logits, dtype=torch.float64)
    L = logits.double()
    for k in key_freqs:
        for u in _trig_directions(logits.shape[0], k, logits.device):
            out += (L * u).sum() * u
    return out


def _table_loss(logits: Float[Tensor, "p p p"], mask: Bool[Tensor, "p p"] | None) -> float:
    """Mean cross-entropy (nats) of a + b mod p over the pairs ``mask`` (all if None)."""
    p = logits.shape[0]
    a = torch.arange(p, device=logits.device)
    labels = (a[:, None] + a[None, :]) % p  # (a, b)
    logp = logits.double().log_softmax(-1).gather(-1, labels[..., None])[..., 0]
    return float(-(logp[mask] if mask is not None else logp).mean())


def restricted_loss(logits: Float[Tensor, "p p p"], key_freqs: list[int]) -> float:
    """Restricted loss (Nanda et al. 2023, §5.1), in nats.

    Keeps only the key-frequency components of the logits plus the mean correction
    (each answer c's mean logit over all (a, b)), and evaluates the cross-entropy of
    a + b mod p on **all** p² pairs.
    """
    mean_c = logits.double().mean(dim=(0, 1), keepdim=True)  # (1, 1, c)
    return _table_loss(key_frequency_logits(logits, key_freqs) + mean_c, None)


def excluded_loss(
    logits: Float[Tensor, "p p p"], key_freqs: list[int], train_mask: Bool[Tensor, "p p"]
) -> float:
    """Excluded loss (Nanda et al. 2023, §5.1), in nats.

    Removes exactly the key-frequency components from the logits and evaluates the
    cross-entropy on the **training** pairs (``train_mask[a, b]`` true).
    """
    return _table_loss(logits.double() - key_frequency_logits(logits, key_freqs), train_mask)
