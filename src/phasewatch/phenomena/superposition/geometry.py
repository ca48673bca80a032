"""The geometry of superposition: pure functions of a weight matrix and of (m, n).

Everything here is maths on tensors or numbers, and the tables built from it — no
training, no store. Conventions:
``W`` has shape ``(..., m, n)`` (hidden dimensions × features, the paper's W ∈ R^{m×n}),
so feature i's direction is the column ``W[..., :, i]`` (written W_i).

Sources:
    Elhage et al. 2022, "Toy Models of Superposition" (transformer-circuits.pub/2022/
    toy_model): §"Superposition as a Phase Change"/§"The Geometry of Superposition"
    define D* = m/‖W‖_F² and the feature dimensionality D_i, and name the uniform
    polytopes whose features sit at D_i = 1, 3/4, 2/3, 1/2, 2/5, 3/8.
    Interference bounds: Johnson–Lindenstrauss (Dasgupta & Gupta 2003 form), the
    random-vector union bound and the Welch bound (Welch 1974), as in references.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from phasewatch.config import require

# The paper's "sticky" fractions: (name, D_i, label). A feature of a uniform polytope with
# k vertices spanning d dimensions has D_i = d/k (any unit-norm tight frame does).
FRACTIONS: tuple[tuple[str, float, str], ...] = (
    ("dedicated", 1.0, "1"),
    ("tetrahedron", 3 / 4, "3/4"),
    ("triangle", 2 / 3, "2/3"),
    ("digon", 1 / 2, "1/2"),
    ("pentagon", 2 / 5, "2/5"),
    ("square antiprism", 3 / 8, "3/8"),
)
NOT_REPRESENTED = "not represented"
OTHER = "other"
FRACTION_TOL = 0.02  # |D_i - fraction| within which a feature counts as "at" that fraction
_EPS = 1e-12  # norms below this are treated as exactly zero


def feature_norms(W: Float[Tensor, "... m n"]) -> Float[Tensor, "... n"]:
    """‖W_i‖ for every feature i (the column norms)."""
    return W.norm(dim=-2)


def gram(W: Float[Tensor, "... m n"]) -> Float[Tensor, "... n n"]:
    """The Gram matrix WᵀW: entry (i, j) is W_i · W_j (the paper's interference matrix)."""
    return torch.einsum("...ki,...kj->...ij", W, W)


def dimensions_per_feature(W: Float[Tensor, "... m n"]) -> Float[Tensor, "..."]:
    """D* = m / ‖W‖_F² (Elhage et al. 2022, §"The Geometry of Superposition").

    m dimensions divided by the "number of features learned" ‖W‖_F² (each represented
    feature has ‖W_i‖ ≈ 1): 1 when every dimension holds one feature, 1/2 when features
    form antipodal pairs. ``inf`` for W = 0.
    """
    m = W.shape[-2]
    return m / W.pow(2).sum(dim=(-2, -1))


def feature_dimensionality(W: Float[Tensor, "... m n"]) -> Float[Tensor, "... n"]:
    r"""D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)² for every feature i (Elhage et al. 2022, same §).

    .. math:: D_i = \frac{\lVert W_i \rVert^2}{\sum_j (\hat W_i \cdot W_j)^2},
              \quad \hat W_i = W_i / \lVert W_i \rVert

    The sum includes j = i, so 0 ≤ D_i ≤ 1: 1 for a dedicated dimension, 1/2 for each
    feature of an antipodal pair, 2/5 for a regular pentagon in 2D. A feature with a
    zero column (‖W_i‖ < 1e-12) gets D_i = 0.
    """
    norms = feature_norms(W)  # (..., n)
    safe = norms.clamp_min(_EPS)
    unit = W / safe.unsqueeze(-2)  # (..., m, n) columns Ŵ_i
    overlap = torch.einsum("...ki,...kj->...ij", unit, W)  # (..., n, n): Ŵ_i · W_j
    denom = overlap.pow(2).sum(dim=-1).clamp_min(_EPS**2)  # (..., n)
    return torch.where(norms > _EPS, norms.pow(2) / denom, torch.zeros_like(norms))


def represented(W: Float[Tensor, "... m n"], threshold: float) -> Bool[Tensor, "... n"]:
    """Features the model represents: ‖W_i‖ > ``threshold``.

    A represented feature is reconstructed as x'_i ≈ ‖W_i‖² x_i, so trained represented
    features have ‖W_i‖ ≈ 1 and dropped ones ‖W_i‖ ≈ 0; phasewatch's default threshold
    0.5 sits between the two.
    """
    return feature_norms(W) > threshold


def classify(
    dims: Float[Tensor, "... n"] | np.ndarray,
    norms: Float[Tensor, "... n"] | np.ndarray,
    threshold: float,
    tol: float = FRACTION_TOL,
) -> np.ndarray:
    """The polytope of each feature from its dimensionality D_i (paper's fractions).

    Args:
        dims: D_i per feature.
        norms: ‖W_i‖ per feature (same shape).
        threshold: features with ‖W_i‖ ≤ threshold are ``"not represented"``.
        tol: a represented feature gets the name of the nearest fraction in
            :data:`FRACTIONS` if it lies within ``tol`` of it, else ``"other"``.

    Returns:
        An object array of names, the shape of ``dims``: ``dedicated`` (1), ``tetrahedron``
        (3/4), ``triangle`` (2/3), ``digon`` (1/2), ``pentagon`` (2/5), ``square antiprism``
        (3/8), ``other`` or ``not represented``. The class is read from D_i alone, as in the
        paper's Figure "feature dimensionality"; it does not check the vertices' positions.
    """
    d = np.asarray(dims, dtype=float)
    nrm = np.asarray(norms, dtype=float)
    values = np.array([f for _, f, _ in FRACTIONS])
    names = np.array([name for name, _, _ in FRACTIONS] + [OTHER], dtype=object)
    dist = np.abs(d[..., None] - values)  # (..., n_fractions)
    nearest = dist.argmin(axis=-1)
    nearest = np.where(dist.min(axis=-1) <= tol, nearest, len(FRACTIONS))
    out = names[nearest]
    return np.where(nrm > threshold, out, NOT_REPRESENTED).astype(object)


def interference(W: Float[Tensor, "m n"], mask: Bool[Tensor, " n"]) -> dict[str, float]:
    """Cosine interference between the represented features of one instance.

    Args:
        W: one instance's weights (m, n).
        mask: (n,) the features to compare (e.g. :func:`represented`).

    Returns:
        ``max_abs_cos``, ``mean_abs_cos`` (over the k(k−1)/2 pairs) and ``max_pos_cos``
        (the largest positive cosine: the interference a ReLU cannot filter out; antipodal
        pairs have cos = −1, which it can). NaN when fewer than 2 features are masked.
    """
    cols = W[:, mask].double()  # (m, k)
    k = cols.shape[1]
    if k < 2:
        nan = float("nan")
        return {"max_abs_cos": nan, "mean_abs_cos": nan, "max_pos_cos": nan}
    unit = cols / cols.norm(dim=0, keepdim=True).clamp_min(_EPS)
    cos = unit.T @ unit  # (k, k)
    iu = torch.triu_indices(k, k, offset=1)
    pairs = cos[iu[0], iu[1]]  # (k(k-1)/2,)
    return {
        "max_abs_cos": float(pairs.abs().max()),
        "mean_abs_cos": float(pairs.abs().mean()),
        "max_pos_cos": float(pairs.max().clamp_min(0.0)),
    }


# ---- interference bounds (references.md, "Interference bounds") ------------------------------


def _check_mn(m: float, n: float) -> None:
    require(m > 0, "m", "a number of dimensions > 0", m)
    require(n >= 1, "n", "a number of vectors >= 1", n)


def jl_dimension(n: float, eps: float) -> float:
    r"""Dimensions the Johnson–Lindenstrauss lemma asks for: k ≥ 4 ln n / (ε²/2 − ε³/3).

    n points embed in k dimensions with every pairwise distance kept within a factor
    (1 ± ε) (Dasgupta & Gupta 2003). Real-valued; round up for an integer k.

    Raises:
        ConfigError: if n < 1 or ε is not in (0, 1).
    """
    require(n >= 1, "n", "a number of points >= 1", n)
    require(0 < eps < 1, "eps", "a distortion in (0, 1)", eps)
    return 4 * math.log(n) / (eps**2 / 2 - eps**3 / 3)


def jl_epsilon(m: float, n: float) -> float:
    """The smallest distortion ε for which the JL lemma fits n points in m dimensions.

    Solves ``jl_dimension(n, ε) = m`` on (0, 1) (ε²/2 − ε³/3 rises on (0, 1) to 1/6). Returns
    ``inf`` when m < 24 ln n — the lemma then guarantees nothing for any ε < 1 — and 0 for n = 1.

    Raises:
        ConfigError: if m ≤ 0 or n < 1.
    """
    _check_mn(m, n)
    target = 4 * math.log(n) / m  # need ε²/2 − ε³/3 = target
    if target == 0:
        return 0.0
    if target > 1 / 6:
        return math.inf
    lo, hi = 0.0, 1.0
    for _ in range(100):  # bisection to float precision
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid**2 / 2 - mid**3 / 3 < target else (lo, mid)
    return hi


def jl_capacity(m: float, eps: float) -> float:
    """Points the JL lemma fits in m dimensions at distortion ε: exp(m (ε²/2 − ε³/3) / 4)."""
    require(m > 0, "m", "a number of dimensions > 0", m)
    require(0 < eps < 1, "eps", "a distortion in (0, 1)", eps)
    return math.exp(m * (eps**2 / 2 - eps**3 / 3) / 4)


def union_epsilon(m: float, n: float) -> float:
    """|cos| bound for n random unit vectors in R^m by the union bound: ε = 2 √(ln n / m).

    The inverse of "about exp(m ε²/4) random unit vectors fit with every |cos| ≤ ε"
    (references.md). Values ≥ 1 are vacuous (every |cos| is ≤ 1).

    Raises:
        ConfigError: if m ≤ 0 or n < 1.
    """
    _check_mn(m, n)
    return 2 * math.sqrt(math.log(n) / m)


def union_capacity(m: float, eps: float) -> float:
    """Random unit vectors that fit in R^m with every |cos| ≤ ε (union bound): exp(m ε²/4)."""
    require(m > 0, "m", "a number of dimensions > 0", m)
    require(eps > 0, "eps", "a cosine bound > 0", eps)
    return math.exp(m * eps**2 / 4)


def welch_bound(m: float, n: float) -> float:
    """Welch's lower bound on the worst interference: max |cos| ≥ √((n − m) / (m (n − 1))).

    Holds for any n unit vectors in R^m (Welch 1974); 0 when n ≤ m (orthonormal vectors
    exist). Equality for equiangular tight frames, e.g. 3 vectors at 120° in R².

    Raises:
        ConfigError: if m ≤ 0 or n < 1.
    """
    _check_mn(m, n)
    if n <= m:
        return 0.0
    return math.sqrt((n - m) / (m * (n - 1)))


def random_mean_abs_cos(m: float) -> float:
    """E|cos| between two independent uniformly random unit vectors in R^m.

    Γ(m/2) / (√π Γ((m+1)/2)) ≈ √(2/(π m)) for large m: the typical interference, which
    does not depend on how many vectors there are. 2/π for m = 2, 1/2 for m = 3.
    """
    require(m > 0, "m", "a number of dimensions > 0", m)
    return math.exp(math.lgamma(m / 2) - math.lgamma((m + 1) / 2)) / math.sqrt(math.pi)


def capacity_row(
    m: int,
    n: int,
    sparsity: float,
    n_represented: int,
    stats: dict[str, float],
) -> dict[str, Any]:
    """One row of the capacity table: measured interference beside the bounds for (m, n).

    Args:
        m, n: hidden dimensions and input features.
        sparsity: S (each feature is zero with probability S).
        n_represented: features with ‖W_i‖ above the threshold.
        stats: :func:`interference` of the represented features.

    Returns:
        A dict of the row's numbers and ``sentence``: one line saying how far the
        worst-case bound is from the measured typical (mean) interference.
    """
    jl, union = jl_epsilon(m, n), union_epsilon(m, n)
    row: dict[str, Any] = {
        "m": m,
        "n": n,
        "sparsity": sparsity,
        "represented": n_represented,
        "features_per_dim": n_represented / m,
        **stats,
        "random_mean_abs_cos": random_mean_abs_cos(m),
        "jl_epsilon": jl,
        "jl_min_m": 24 * math.log(n),
        "union_epsilon": union,
        "welch_bound": welch_bound(m, n),
    }
    row["sentence"] = capacity_sentence(row)
    return row


def capacity_sentence(row: dict[str, Any]) -> str:
    """The one-line reading of a :func:`capacity_row`."""
    m, n, k = row["m"], row["n"], row["represented"]
    mean, mx, pos = row["mean_abs_cos"], row["max_abs_cos"], row["max_pos_cos"]
    head = f"m={m}, n={n}, S={row['sparsity']:g}: {k} of {n} features represented ({k / m:.2g}/dim)"
    if not math.isfinite(mean):
        return head + "; fewer than 2 represented, so no interference to compare with the bounds."
    head += f", mean |cos| {mean:.3f} (max {mx:.2f}, max positive {pos:.2f})"
    jl, union = row["jl_epsilon"], row["union_epsilon"]
    jl_text = (
        f"JL is vacuous (any ε < 1 needs m ≥ 24 ln n = {row['jl_min_m']:.0f})"
        if not math.isfinite(jl)
        else f"JL guarantees ε = {jl:.2f}, {jl / mean:.1f}× the measured mean"
    )
    union_text = f"the union bound guarantees ε = {union:.2f}" + (
        " (vacuous, ≥ 1)" if union >= 1 else ""
    )
    return (
        f"{head}. {jl_text}; {union_text}, {union / mean:.1f}× the measured mean |cos|; "
        f"Welch forces max |cos| ≥ {row['welch_bound']:.3f} for {n} vectors."
    )


# ---- findings of trained weights (the run's tables) ------------------------------------------


def _phase(name: str, dim: float) -> str:
    """The phase-diagram label of one feature: not represented / dedicated / superposition."""
    if name == NOT_REPRESENTED:
        return NOT_REPRESENTED
    return "dedicated" if dim >= 0.9 else "superposition"


def weight_tables(
    W: Float[Tensor, "instances m n"],
    b: Float[Tensor, "instances n"],
    densities: Float[Tensor, " instances"],
    importances: Float[Tensor, "instances n"],
    losses: Float[Tensor, " instances"],
    threshold: float,
    *,
    replicas: int = 1,
) -> dict[str, pd.DataFrame]:
    """The geometry of every instance's final weights as tidy tables.

    Args:
        W, b: final weights (instances, m, n) and biases (instances, n).
        densities, importances: (instances,) and (instances, n), as trained.
        losses: (instances,) loss of each instance on its eval batch.
        threshold: ‖W_i‖ above which a feature counts as represented.
        replicas: consecutive instances that copy one cell (``cell`` = k // replicas);
            ``best`` marks the lowest-loss replica of each cell.

    Returns:
        ``instances`` (one row per instance: cell, replica, best, density, relative
        importance I_last/I_0, D*, loss, represented count, ``superposition`` = more
        represented features than m, the last feature's phase, interference),
        ``features`` (one row per instance and feature: importance, ‖W_i‖, D_i,
        polytope, bias, the column ``w0..w{m-1}``),
        ``gram`` (instance, i, j, WᵀW[i, j] in float32) and ``capacity`` (one
        :func:`capacity_row` per instance).
    """
    ni, m, n = W.shape
    norms, dims = feature_norms(W), feature_dimensionality(W)
    dstar, G = dimensions_per_feature(W), gram(W)
    classes = classify(dims, norms, threshold)
    inst, feats, caps = [], [], []
    for k in range(ni):
        rep = norms[k] > threshold
        stats = interference(W[k], rep)
        dens = float(densities[k])
        common = {
            "instance": k,
            "cell": k // replicas,
            "density": dens,
            "relative_importance": float(importances[k, -1] / importances[k, 0]),
        }
        inst.append(
            {
                **common,
                "replica": k % replicas,
                "sparsity": 1 - dens,
                "inv_density": 1 / dens,
                "dstar": float(dstar[k]),
                "loss": float(losses[k]),
                "represented": int(rep.sum()),
                "superposition": bool(rep.sum() > m),
                "last_feature_phase": _phase(classes[k, -1], float(dims[k, -1])),
                **stats,
            }
        )
        for j in range(n):
            row = {
                **common,
                "feature": j,
                "importance": float(importances[k, j]),
                "norm": float(norms[k, j]),
                "dim": float(dims[k, j]),
                "polytope": str(classes[k, j]),
                "bias": float(b[k, j]),
            }
            row.update({f"w{r}": float(W[k, r, j]) for r in range(m)})
            feats.append(row)
        caps.append({**common, **capacity_row(m, n, 1 - dens, int(rep.sum()), stats)})
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    grams = pd.DataFrame(
        {
            "instance": np.repeat(np.arange(ni), n * n).astype("int32"),
            "i": np.tile(ii.reshape(-1), ni).astype("int32"),
            "j": np.tile(jj.reshape(-1), ni).astype("int32"),
            "value": G.reshape(-1).numpy().astype("float32"),
        }
    )
    inst_df = pd.DataFrame(inst)
    inst_df["best"] = inst_df.index.isin(inst_df.groupby("cell")["loss"].idxmin())
    return {
        "instances": inst_df,
        "features": pd.DataFrame(feats),
        "gram": grams,
        "capacity": pd.DataFrame(caps),
    }


def summarise_tables(inst: pd.DataFrame, feats: pd.DataFrame, tol: float = 0.03) -> dict[str, Any]:
    """JSON-ready summary of :func:`weight_tables` over the best replica of each cell: D*
    and represented count per cell, the D* ≈ 1/2 plateau (levels within ``tol`` and their
    1/(1−S) range), polytope counts."""
    inst = inst[inst["best"]]
    feats = feats[feats["instance"].isin(inst["instance"])]
    half = inst[(inst["dstar"] - 0.5).abs() <= tol]
    span = [float(half["inv_density"].min()), float(half["inv_density"].max())]
    return {
        "cells": len(inst),
        "fraction_tol": FRACTION_TOL,
        "density": [round(float(x), 6) for x in inst["density"]],
        "dstar": [round(float(x), 4) for x in inst["dstar"]],
        "represented": [int(x) for x in inst["represented"]],
        "instances_in_superposition": int(inst["superposition"].sum()),
        "dstar_half_plateau": {
            "levels": len(half),
            "tolerance": tol,
            "inv_density": span if len(half) else None,
        },
        "polytope_counts": {str(k): int(v) for k, v in feats["polytope"].value_counts().items()},
    }
