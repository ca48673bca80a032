"""Worst-case interference bounds for n unit vectors in R^m, and the capacity table's row
that sets a trained model's measured interference beside them.

Sources (references.md, "Interference bounds"): the Johnson–Lindenstrauss lemma in the
form of Dasgupta & Gupta 2003, the random-vector union bound ("about exp(m ε²/4) random
unit vectors fit with every |cos| ≤ ε") and the Welch bound (Welch 1974). The measured
side comes from :func:`~phasewatch.phenomena.superposition.geometry.interference`
(Elhage et al. 2022, "Toy Models of Superposition").
"""

from __future__ import annotations

import math
from typing import Any

from phasewatch.config import require


def _check_mn(m: float, n: float) -> None:
    """Raise ConfigError unless m > 0 and n >= 1."""
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
