"""The geometry of superposition: pure functions of a weight matrix and the run's tables.

Everything here is maths on tensors and the tables built from it — no training, no
store. Conventions: ``W`` has shape ``(..., m, n)`` (hidden dimensions × features, the
paper's W ∈ R^{m×n}), so feature i's direction is the column ``W[..., :, i]`` (written W_i).

Source: Elhage et al. 2022, "Toy Models of Superposition" (transformer-circuits.pub/2022/
toy_model): §"Superposition as a Phase Change"/§"The Geometry of Superposition" define
D* = m/‖W‖_F² and the feature dimensionality D_i, and name the uniform polytopes whose
features sit at D_i = 1, 3/4, 2/3, 1/2, 2/5, 3/8. The interference bounds of the
capacity table are in :mod:`.bounds`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from einops import rearrange
from jaxtyping import Bool, Float
from torch import Tensor

from phasewatch.phenomena.superposition.bounds import capacity_row

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


# ---- findings of trained weights (the run's tables) ------------------------------------------


def _phase(name: str, dim: float) -> str:
    """The phase-diagram label of one feature: not represented / dedicated / superposition."""
    if name == NOT_REPRESENTED:
        return NOT_REPRESENTED
    return "dedicated" if dim >= 0.9 else "superposition"


def _common(
    k: int,
    replicas: int,
    densities: Float[Tensor, " instances"],
    importances: Float[Tensor, "instances n"],
) -> dict[str, Any]:
    """The columns every table row of instance ``k`` starts with."""
    return {
        "instance": k,
        "cell": k // replicas,
        "density": float(densities[k]),
        "relative_importance": float(importances[k, -1] / importances[k, 0]),
    }


def _instance_row(
    common: dict[str, Any],
    m: int,
    rep: Bool[Tensor, " n"],
    stats: dict[str, float],
    *,
    replica: int,
    dstar: float,
    loss: float,
    last_feature_phase: str,
) -> dict[str, Any]:
    """One row of the ``instances`` table (``rep``: the represented features)."""
    dens = common["density"]
    return {
        **common,
        "replica": replica,
        "sparsity": 1 - dens,
        "inv_density": 1 / dens,
        "dstar": dstar,
        "loss": loss,
        "represented": int(rep.sum()),
        "superposition": bool(rep.sum() > m),
        "last_feature_phase": last_feature_phase,
        **stats,
    }


def _feature_rows(
    common: dict[str, Any],
    W: Float[Tensor, "m n"],
    b: Float[Tensor, " n"],
    importances: Float[Tensor, " n"],
    norms: Float[Tensor, " n"],
    dims: Float[Tensor, " n"],
    classes: np.ndarray,
) -> list[dict[str, Any]]:
    """The ``features`` rows of one instance: importance, ‖W_i‖, D_i, polytope, bias and
    the column ``w0..w{m-1}``."""
    m, n = W.shape
    rows = []
    for j in range(n):
        row = {
            **common,
            "feature": j,
            "importance": float(importances[j]),
            "norm": float(norms[j]),
            "dim": float(dims[j]),
            "polytope": str(classes[j]),
            "bias": float(b[j]),
        }
        row.update({f"w{r}": float(W[r, j]) for r in range(m)})
        rows.append(row)
    return rows


def _gram_table(G: Float[Tensor, "instances n n"]) -> pd.DataFrame:
    """The Gram matrices as a long table: instance, i, j (int32) and WᵀW[i, j] (float32)."""
    k, i, j = np.indices(G.shape).reshape(3, -1)  # instance-major, like the values
    return pd.DataFrame(
        {
            "instance": k.astype("int32"),
            "i": i.astype("int32"),
            "j": j.astype("int32"),
            "value": rearrange(G, "k i j -> (k i j)").numpy().astype("float32"),
        }
    )


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
        :func:`~.bounds.capacity_row` per instance).
    """
    ni, m, n = W.shape
    norms, dims = feature_norms(W), feature_dimensionality(W)
    dstar, classes = dimensions_per_feature(W), classify(dims, norms, threshold)
    inst, feats, caps = [], [], []
    for k in range(ni):
        rep = norms[k] > threshold
        stats = interference(W[k], rep)
        common = _common(k, replicas, densities, importances)
        phase = _phase(classes[k, -1], float(dims[k, -1]))
        inst.append(
            _instance_row(
                common,
                m,
                rep,
                stats,
                replica=k % replicas,
                dstar=float(dstar[k]),
                loss=float(losses[k]),
                last_feature_phase=phase,
            )
        )
        feats += _feature_rows(common, W[k], b[k], importances[k], norms[k], dims[k], classes[k])
        caps.append({**common, **capacity_row(m, n, 1 - common["density"], int(rep.sum()), stats)})
    inst_df = pd.DataFrame(inst)
    inst_df["best"] = inst_df.index.isin(inst_df.groupby("cell")["loss"].idxmin())
    return {
        "instances": inst_df,
        "features": pd.DataFrame(feats),
        "gram": _gram_table(gram(W)),
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
