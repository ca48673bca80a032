"""Superposition geometry on hand-built W with exact answers, and the interference bounds
against hand-computed values (Elhage et al. 2022; references.md "Interference bounds")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phasewatch.errors import ConfigError
from phasewatch.phenomena.superposition import bounds
from phasewatch.phenomena.superposition import geometry as geo


def columns(*vectors) -> torch.Tensor:
    """W (m, n) whose columns are the given feature vectors."""
    return torch.tensor(vectors, dtype=torch.float64).T


def polygon(k: int) -> torch.Tensor:
    """The regular k-gon's vertices as the columns of a (2, k) W."""
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return torch.stack([angles.cos(), angles.sin()])


def square_antiprism() -> torch.Tensor:
    """Two unit-sphere squares at heights ±1/√3, the upper one turned by 45°: (3, 8)."""
    h, r = 1 / math.sqrt(3), math.sqrt(2 / 3)
    pts = []
    for z, turn in ((h, 0.0), (-h, math.pi / 4)):
        for k in range(4):
            a = turn + k * math.pi / 2
            pts.append((r * math.cos(a), r * math.sin(a), z))
    return columns(*pts)


def tetrahedron() -> torch.Tensor:
    s = 1 / math.sqrt(3)
    return columns((s, s, s), (s, -s, -s), (-s, s, -s), (-s, -s, s))


def test_antipodal_pair_is_a_digon():
    W = columns((1.0,), (-1.0,))  # m = 1, n = 2
    assert geo.feature_dimensionality(W).tolist() == [0.5, 0.5]
    assert float(geo.dimensions_per_feature(W)) == 0.5
    assert list(geo.classify(geo.feature_dimensionality(W), geo.feature_norms(W), 0.5)) == [
        "digon",
        "digon",
    ]
    embedded = columns((0.0, 2.0, 0.0), (0.0, -2.0, 0.0))  # same pair, norm 2, in R^3
    torch.testing.assert_close(
        geo.feature_dimensionality(embedded), torch.tensor([0.5, 0.5], dtype=torch.float64)
    )
    assert float(geo.dimensions_per_feature(embedded)) == pytest.approx(3 / 8)


def test_regular_pentagon_gives_two_fifths():
    W = polygon(5)
    torch.testing.assert_close(geo.feature_dimensionality(W), torch.full((5,), 0.4).double())
    assert float(geo.dimensions_per_feature(W)) == pytest.approx(0.4, abs=1e-12)
    G = geo.gram(W)
    for i in range(5):
        for j in range(5):
            assert float(G[i, j]) == pytest.approx(math.cos(2 * math.pi * (i - j) / 5), abs=1e-12)
    names = geo.classify(geo.feature_dimensionality(W), geo.feature_norms(W), 0.5)
    assert set(names) == {"pentagon"}


def test_orthonormal_set_is_dedicated():
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=torch.manual_seed(0)))
    W = q[:, :3]  # three orthonormal columns in R^5
    torch.testing.assert_close(geo.feature_dimensionality(W), torch.ones(3).double())
    assert float(geo.dimensions_per_feature(W)) == pytest.approx(5 / 3)
    assert set(geo.classify(geo.feature_dimensionality(W), geo.feature_norms(W), 0.5)) == {
        "dedicated"
    }
    torch.testing.assert_close(geo.gram(W), torch.eye(3).double())


@pytest.mark.parametrize(
    "W,fraction,name",
    [
        (polygon(3), 2 / 3, "triangle"),
        (tetrahedron(), 3 / 4, "tetrahedron"),
        (square_antiprism(), 3 / 8, "square antiprism"),
    ],
)
def test_uniform_polytopes_sit_at_their_fractions(W, fraction, name):
    torch.testing.assert_close(
        geo.feature_dimensionality(W), torch.full((W.shape[1],), fraction).double()
    )
    assert set(geo.classify(geo.feature_dimensionality(W), geo.feature_norms(W), 0.5)) == {name}


def test_mixed_instance_and_unrepresented_features():
    # a dedicated e1, an antipodal pair on e2, a weak feature and a zero column
    W = columns((1.0, 0.0), (0.0, 1.0), (0.0, -1.0), (0.1, 0.1), (0.0, 0.0))
    d = geo.feature_dimensionality(W)
    assert d[4] == 0.0 and float(d[3]) < 0.1
    torch.testing.assert_close(d[:3], torch.tensor([1.0, 0.5, 0.5]).double(), atol=0.02, rtol=0)
    names = geo.classify(d, geo.feature_norms(W), 0.5)
    assert list(names) == ["dedicated", "digon", "digon", "not represented", "not represented"]
    assert geo.represented(W, 0.5).tolist() == [True, True, True, False, False]
    assert float(geo.dimensions_per_feature(W)) == pytest.approx(2 / 3.02)
    stats = geo.interference(W, geo.represented(W, 0.5))
    assert stats["max_abs_cos"] == pytest.approx(1.0)
    assert stats["mean_abs_cos"] == pytest.approx(1 / 3)  # pairs: (0, 1) 0, (0, 2) 0, (1, 2) 1
    assert stats["max_pos_cos"] == pytest.approx(0.0)


def test_batched_instances_match_one_by_one():
    Ws = torch.stack([polygon(5), torch.cat([polygon(3), torch.zeros(2, 2)], dim=1)])
    d = geo.feature_dimensionality(Ws)
    for k in range(2):
        torch.testing.assert_close(d[k], geo.feature_dimensionality(Ws[k]))
    assert geo.dimensions_per_feature(Ws).shape == (2,)
    assert geo.gram(Ws).shape == (2, 5, 5)


@pytest.mark.parametrize(
    "dim,name",
    [
        (0.41, "pentagon"),
        (0.385, "square antiprism"),
        (0.6, "other"),
        (0.985, "dedicated"),
        (0.97, "other"),
    ],
)
def test_classifier_takes_the_nearest_fraction_within_tolerance(dim, name):
    assert geo.classify(np.array([dim]), np.array([1.0]), 0.5)[0] == name
    assert geo.classify(np.array([dim]), np.array([0.4]), 0.5)[0] == "not represented"


def test_welch_bound_hand_values_and_triangle_attains_it():
    assert bounds.welch_bound(2, 3) == pytest.approx(0.5)
    assert bounds.welch_bound(2, 5) == pytest.approx(math.sqrt(3 / 8))
    assert bounds.welch_bound(20, 200) == pytest.approx(0.2126644, abs=1e-7)  # √(180/3980)
    assert bounds.welch_bound(4, 4) == 0.0
    assert geo.interference(polygon(3), torch.ones(3, dtype=torch.bool))[
        "max_abs_cos"
    ] == pytest.approx(bounds.welch_bound(2, 3))


def test_union_bound_hand_values():
    assert bounds.union_epsilon(16, math.exp(4)) == pytest.approx(1.0)
    assert bounds.union_epsilon(100, 100) == pytest.approx(0.4291932, abs=1e-7)  # 2√(ln100/100)
    assert bounds.union_capacity(100, 0.5) == pytest.approx(math.exp(6.25))  # 518.01
    assert bounds.union_capacity(100, bounds.union_epsilon(100, 250)) == pytest.approx(250)


def test_johnson_lindenstrauss_hand_values():
    # ε = 1/2: ε²/2 − ε³/3 = 1/8 − 1/24 = 1/12, so k = 48 ln n
    assert bounds.jl_dimension(100, 0.5) == pytest.approx(221.0482, abs=1e-4)
    assert bounds.jl_epsilon(48 * math.log(100), 100) == pytest.approx(0.5, abs=1e-12)
    assert bounds.jl_epsilon(24 * math.log(50) * (1 + 1e-9), 50) == pytest.approx(1.0, abs=1e-3)
    assert bounds.jl_epsilon(20, 50) == math.inf  # needs m ≥ 24 ln 50 ≈ 93.9
    assert bounds.jl_epsilon(10, 1) == 0.0
    assert bounds.jl_capacity(48, 0.5) == pytest.approx(math.e)


def test_random_typical_cosine():
    assert bounds.random_mean_abs_cos(2) == pytest.approx(2 / math.pi)
    assert bounds.random_mean_abs_cos(3) == pytest.approx(0.5)
    assert bounds.random_mean_abs_cos(200) == pytest.approx(
        math.sqrt(2 / (math.pi * 200)), rel=0.01
    )


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: bounds.welch_bound(0, 5), "m=0"),
        (lambda: bounds.union_epsilon(10, 0), "n=0"),
        (
            lambda: bounds.jl_dimension(10, 1.5),
            r"eps=1.5 is invalid; allowed: a distortion in \(0, 1\)",
        ),
    ],
)
def test_bounds_reject_bad_input(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_capacity_row_sentence_compares_bound_with_measured_mean():
    stats = {"max_abs_cos": 1.0, "mean_abs_cos": 0.1, "max_pos_cos": 0.3}
    row = bounds.capacity_row(20, 200, 0.99, 80, stats)
    assert row["welch_bound"] == pytest.approx(bounds.welch_bound(20, 200))
    assert row["jl_epsilon"] == math.inf and row["features_per_dim"] == 4.0
    s = row["sentence"]
    assert s.startswith("m=20, n=200, S=0.99: 80 of 200 features represented (4/dim)")
    assert "JL is vacuous" in s and f"{bounds.union_epsilon(20, 200) / 0.1:.1f}×" in s
    wide = bounds.capacity_row(1000, 50, 0.9, 50, stats)["sentence"]
    assert f"JL guarantees ε = {bounds.jl_epsilon(1000, 50):.2f}" in wide
    lonely = bounds.capacity_row(20, 50, 0.9, 1, dict.fromkeys(stats, math.nan))["sentence"]
    assert "fewer than 2 represented" in lonely
