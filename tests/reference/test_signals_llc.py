"""The LLC estimator against models with a known learning coefficient.

Models. SGLD runs on population losses, so the only error is the sampler's:
* normal crossing: K(w) = E_x[(x ∏ w_i^{p_i})²] = (∏ w_i^{p_i})² for x ~ N(0, 1) at the
  true parameter w* = 0 (Lau et al. 2023, §5.1), λ = 1 / (2 max p);
* deep linear networks: K(W) = ‖W_N ⋯ W_1 − B‖²_F, the population loss of x ↦ W x with
  x ~ N(0, I) and noise-free targets y = B x, at a rank-r factorisation of B; λ from
  Aoyagi's formula (phasewatch.signals.known).

Each probe holds C independent copies of the model in one tensor (its learning
coefficient is C·λ, since λ adds over independent factors: Lehalleur & Rimányi 2024,
Prop. 6.3), so a handful of vectorised chains gives 4·C per-copy samples.

Tolerance: |λ̂ − λ| ≤ 10% · λ + 3 standard errors (chain-to-chain, per copy). The 10%
covers the sampler's known biases at these settings: the unadjusted-Langevin
discretisation error (ε·curvature/4 ≈ 2–4% in the stiffest direction at ε = 3e-4,
nβ = n / log n ≈ 145), under-exploration of flat valleys in a finite chain, and the
localisation γ; the 3 SE cover chain noise. Measured λ̂ / λ with these seeds: normal
crossing 1.031 (0,1), 0.948 (1,2), 0.998 (1,3); networks 1.009 (3,2) r1, 0.988 (2,4,3) r1,
0.952 (2,3,3,2) r1, 0.997 (2,2,3) r1, 1.044 (2,2,3) r2. Cases with a log-multiplicity
(equal powers, or a fractional part in Aoyagi's formula, where λ̂ → λ only as
1 / log nβ) and the rank-0 point of deep networks (the origin, most singular: needs far
longer chains) are left out of the default suite; the latter is in a slow test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from phasewatch.signals.base import Probe, step_generator
from phasewatch.signals.batched import llc_batch
from phasewatch.signals.known import dln_learning_coefficient, normal_crossing_lc
from phasewatch.signals.llc import LLCSettings, default_nbeta, estimate_llc, llc

N = 1000  # nominal sample size: nβ = n / log n ≈ 145
COPIES = 16


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class NormalCrossing(nn.Module):
    """C copies of K(w) = (∏_i w_i^{p_i})², parameters (C, len(p))."""

    def __init__(self, powers: tuple[int, ...], copies: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(copies, len(powers), dtype=torch.float64))
        self.register_buffer("p", torch.tensor(powers, dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        return (torch.prod(self.w**self.p, dim=1) ** 2).sum()


class DeepLinear(nn.Module):
    """C copies of K(W) = ‖W_N ⋯ W_1 − B‖²_F, each W_i (C, d_i, d_{i−1})."""

    def __init__(self, weights: list[torch.Tensor], B: torch.Tensor) -> None:
        super().__init__()
        self.ws = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.register_buffer("B", B)

    def loss(self) -> torch.Tensor:
        A = self.ws[0]
        for i in range(1, len(self.ws)):  # items, not a slice: a sliced ParameterList
            A = self.ws[i] @ A  # copies its items, which torch.func could not swap
        return ((A - self.B) ** 2).sum()


def factorised(widths: tuple[int, ...], rank: int, copies: int, seed: int = 0):
    """A rank-``rank`` B (d_N × d_0, unit singular values) and the block factorisation
    W_1 = [Vᵀ; 0], W_i = diag(I_r, 0), W_N = [U, 0] replicated ``copies`` times."""
    g = torch.Generator().manual_seed(seed)
    d0, dn = widths[0], widths[-1]
    U = torch.linalg.qr(torch.randn(dn, dn, generator=g, dtype=torch.float64))[0][:, :rank]
    V = torch.linalg.qr(torch.randn(d0, d0, generator=g, dtype=torch.float64))[0][:, :rank]
    B = U @ V.T
    ws = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        w = torch.zeros(b, a, dtype=torch.float64)
        if len(widths) == 2:
            w = B.clone()
        elif i == 0:
            w[:rank] = V.T
        elif i == len(widths) - 2:
            w[:, :rank] = U
        else:
            w[:rank, :rank] = torch.eye(rank, dtype=torch.float64)
        ws.append(w.expand(copies, b, a).clone())
    return ws, B


def per_copy(model: nn.Module, settings: LLCSettings, seed: int = 0) -> tuple[float, float]:
    """(λ̂ per copy, its standard error over chains)."""
    res = estimate_llc(
        Probe(model, model.loss, N), settings, generator=torch.Generator().manual_seed(seed)
    )
    assert not res.warnings
    return res.mean / COPIES, res.std / COPIES / math.sqrt(settings.chains)


NC_SETTINGS = LLCSettings(epsilon=3e-4, gamma=0.1, chains=4, draws=3000, burn_in=500)


@pytest.fixture(scope="module")
def normal_crossing_estimates() -> dict[tuple[int, ...], tuple[float, float]]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            p: per_copy(NormalCrossing(p, COPIES), NC_SETTINGS) for p in [(0, 1), (1, 2), (1, 3)]
        }
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("powers", [(0, 1), (1, 2), (1, 3)])
def test_normal_crossing_matches_one_over_twice_max_power(normal_crossing_estimates, powers):
    est, se = normal_crossing_estimates[powers]
    true = normal_crossing_lc(powers)
    assert abs(est - true) <= 0.1 * true + 3 * se, f"λ̂={est:.4f}±{se:.4f} vs λ={true:.4f}"


def test_ordinality_more_degenerate_is_smaller(normal_crossing_estimates):
    # (0,1) regular in w2 > (1,2) > (1,3): higher powers are more degenerate
    e = normal_crossing_estimates
    assert e[(0, 1)][0] > e[(1, 2)][0] > e[(1, 3)][0]


DLN_SETTINGS = LLCSettings(epsilon=3e-4, gamma=3.0, chains=4, draws=2000, burn_in=300)


@pytest.mark.parametrize(
    "widths,rank",
    [
        ((3, 2), 1),  # depth 1 (regular): λ = 3
        ((2, 4, 3), 1),  # depth 2, rank 1: λ = 3
        ((2, 3, 3, 2), 1),  # depth 3, rank 1: λ = 2
    ],
)
def test_deep_linear_network_matches_aoyagi(widths, rank):
    ws, B = factorised(widths, rank, COPIES)
    est, se = per_copy(DeepLinear(ws, B), DLN_SETTINGS)
    true = float(dln_learning_coefficient(widths, rank))
    assert abs(est - true) <= 0.1 * true + 3 * se, (
        f"{widths} r={rank}: λ̂={est:.3f}±{se:.3f} vs λ={true}"
    )


@pytest.fixture(scope="module")
def rank_estimates() -> dict[int, tuple[float, float]]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            r: per_copy(DeepLinear(*factorised((2, 2, 3), r, COPIES)), DLN_SETTINGS) for r in (1, 2)
        }
    finally:
        torch.set_num_threads(old)


def test_rank_two_matches_aoyagi(rank_estimates):
    est, se = rank_estimates[2]  # (2, 2, 3), rank 2: λ = 3
    true = float(dln_learning_coefficient((2, 2, 3), 2))
    assert abs(est - true) <= 0.1 * true + 3 * se, f"λ̂={est:.3f}±{se:.3f} vs λ={true}"


def test_ordinality_lower_rank_is_more_degenerate(rank_estimates):
    # same architecture (2, 2, 3): the rank-1 truth (λ = 5/2) is more degenerate than rank 2 (λ = 3)
    lam = {r: float(dln_learning_coefficient((2, 2, 3), r)) for r in (1, 2)}
    assert lam[1] < lam[2]
    assert rank_estimates[1][0] < rank_estimates[2][0]
    est, se = rank_estimates[1]
    assert abs(est - lam[1]) <= 0.1 * lam[1] + 3 * se


@pytest.mark.slow
@pytest.mark.parametrize(
    "widths,rank,gamma,draws", [((2, 3, 3), 0, 1.0, 12_000), ((2, 3, 4, 3, 2), 1, 3.0, 8000)]
)
def test_deep_linear_network_harder_points(widths, rank, gamma, draws):
    """The most singular point (rank 0, origin) and depth 4: longer chains, 20% tolerance.

    Depth 4 needs the stronger localization: measured λ̂/λ = 1.11 with γ = 3 but 1.62 with
    γ = 1 (chains wander into the high-curvature ends of the valleys)."""
    ws, B = factorised(widths, rank, COPIES) if rank else (None, None)
    if rank == 0:
        ws = [
            torch.zeros(COPIES, b, a, dtype=torch.float64) for a, b in zip(widths[:-1], widths[1:])
        ]
        B = torch.zeros(widths[-1], widths[0], dtype=torch.float64)
    settings = LLCSettings(epsilon=3e-4, gamma=gamma, chains=4, draws=draws, burn_in=2000)
    est, se = per_copy(DeepLinear(ws, B), settings)
    true = float(dln_learning_coefficient(widths, rank))
    assert abs(est - true) <= 0.2 * true + 3 * se, f"{widths} r={rank}: λ̂={est:.3f} vs λ={true}"


class NoisyNormalCrossing(nn.Module):
    """Lau et al. 2023's setup with data: y = x·∏w^p + N(0, 0.25²), x ~ N(0, 2²), MSE."""

    def __init__(self, powers, copies, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.zeros(copies, len(powers), dtype=torch.float64))
        self.register_buffer("p", torch.tensor(powers, dtype=torch.float64))
        self.register_buffer("x", 2 * torch.randn(N, generator=g, dtype=torch.float64))
        self.register_buffer("y", 0.25 * torch.randn(copies, N, generator=g, dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        f = self.x[None] * torch.prod(self.w**self.p, dim=1)[:, None]
        return ((f - self.y) ** 2).mean(1).sum()


@pytest.mark.slow
@pytest.mark.parametrize("powers", [(1, 2), (1, 3)])
def test_normal_crossing_with_sampled_data(powers):
    est, se = per_copy(NoisyNormalCrossing(powers, COPIES), NC_SETTINGS)
    true = normal_crossing_lc(powers)
    assert abs(est - true) <= 0.15 * true + 3 * se


def test_regular_quadratic_gives_half_the_dimension():
    # K(w) = ½|w|² in d = 10: λ = d/2 = 5 (a fast sanity check of nβ and the estimator)
    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(10, dtype=torch.float64))

        def loss(self):
            return 0.5 * (self.w**2).sum()

    m = Q()
    res = estimate_llc(
        Probe(m, m.loss, N),
        LLCSettings(epsilon=1e-3, gamma=1.0, chains=4, draws=2000, burn_in=200),
        generator=torch.Generator().manual_seed(0),
    )
    # exact ULA answer for this Gaussian: d/2 · (nβ/(nβ+γ)) / (1 − ε(nβ+γ)/4)
    a = default_nbeta(N) + 1.0
    want = 5 * (default_nbeta(N) / a) / (1 - 1e-3 * a / 4)
    assert res.mean == pytest.approx(want, rel=0.05)
    assert torch.equal(m.w.detach(), torch.zeros(10, dtype=torch.float64)), "w* restored"


def test_divergence_is_flagged_with_chain_and_draw_and_not_averaged():
    class Quartic(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.full((4,), 0.5, dtype=torch.float64))

        def loss(self):
            return (self.w**4).sum()

    m = Quartic()
    probe = Probe(m, m.loss, N)
    out = llc(
        probe,
        LLCSettings(epsilon=0.5, gamma=1.0, chains=3, draws=50, burn_in=0, step_down=0),
        generator=torch.Generator().manual_seed(0),
    )
    v = out.values
    assert v["llc/flag/diverged"] == 3 and v["llc/flag"] == 1
    assert math.isnan(v["llc/mean"]) and math.isnan(v["llc/chain/0"])
    assert len(out.warnings) == 3
    assert "chain 0 diverged at draw" in out.warnings[0] and "epsilon" in out.warnings[0]
    # the trace table keeps the finite part of each chain
    assert np.isfinite(out.tables["llc_traces"]["loss"].iloc[0])


def test_partial_divergence_excludes_only_the_bad_chain():
    class Sometimes(nn.Module):
        """Loss is finite except where w[0] wanders above 2 (chain-dependent)."""

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1, dtype=torch.float64))

        def loss(self):
            return 0.5 * (self.w**2).sum() + torch.where(self.w > 0.25, torch.inf, 0.0).sum()

    m = Sometimes()
    out = llc(
        Probe(m, m.loss, N),
        LLCSettings(epsilon=1e-3, gamma=0.0, chains=8, draws=400, burn_in=0),
        generator=torch.Generator().manual_seed(1),
    )
    v = out.values
    bad = int(v["llc/flag/diverged"])
    assert 0 < bad < 8 and len(out.warnings) == bad
    good = [v[f"llc/chain/{c}"] for c in range(8) if math.isfinite(v[f"llc/chain/{c}"])]
    assert v["llc/mean"] == pytest.approx(float(np.mean(good)))


def test_below_initial_loss_is_flagged():
    # w* on a slope (not a minimum): the sampler finds lower loss; chains are flagged
    class Slope(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, dtype=torch.float64))

        def loss(self):
            return 0.5 * (self.w**2).sum()

    m = Slope()
    v = llc(
        Probe(m, m.loss, N),
        LLCSettings(epsilon=1e-3, gamma=1.0, chains=2, draws=200),
        generator=torch.Generator().manual_seed(0),
    ).values
    assert v["llc/flag/below_init"] == 2 and v["llc/flag"] == 1 and v["llc/mean"] < 0


def test_calibration_recommends_a_stationary_unflagged_setting():
    # regular quadratic in d = 6 (λ = 3): ε = 1e-6 never leaves w* (pinned / not
    # stationary), ε = 0.05 diverges (ε·nβ > 2), ε = 1e-3 samples well
    from phasewatch.signals.calibrate import LLCCalibration, calibrate_llc

    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(6, dtype=torch.float64))

        def loss(self):
            return 0.5 * (self.w**2).sum()

    m = Q()
    grid = LLCCalibration(
        epsilons=(1e-6, 1e-3, 0.05), gammas=(1.0, 100.0), chains=2, draws=400, burn_in=100
    )
    summary, traces, chosen = calibrate_llc(
        Probe(m, m.loss, N), grid, generator=torch.Generator().manual_seed(0)
    )
    assert len(summary) == 6 and set(traces["epsilon"]) == {1e-6, 1e-3, 0.05}
    assert chosen == {"epsilon": 1e-3, "gamma": 1.0, "nbeta": None}
    best = summary[summary["recommended"]].iloc[0]
    assert best["llc_mean"] == pytest.approx(3.0, rel=0.15)
    assert not summary[summary["epsilon"] == 0.05]["passes"].any()
    assert "diverged" in summary[summary["epsilon"] == 0.05]["reason"].iloc[0]


# ---- the batched path (signals/batched.py) on the same known answers ----------------------
def test_batched_regular_quadratic_gives_the_exact_ula_answer_at_every_checkpoint():
    # three "checkpoints" (all at w* = 0) stepped together, each with its own generator
    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(10, dtype=torch.float64))

        def loss(self):
            return 0.5 * (self.w**2).sum()

    m = Q()
    s = LLCSettings(epsilon=1e-3, gamma=1.0, chains=4, draws=2000, burn_in=200)
    states = [[torch.zeros(10, dtype=torch.float64)] for _ in range(3)]
    gens = [step_generator(0, k) for k in range(3)]
    out = llc_batch(Probe(m, m.loss, N), states, s, generators=gens)
    a = default_nbeta(N) + 1.0
    want = 5 * (default_nbeta(N) / a) / (1 - 1e-3 * a / 4)
    for res in out:
        assert res.mean == pytest.approx(want, rel=0.05)
    assert len({r.mean for r in out}) == 3, "independent noise per checkpoint"


@pytest.mark.parametrize("widths,rank", [((2, 4, 3), 1)])
def test_batched_deep_linear_network_matches_aoyagi(widths, rank):
    # two checkpoints at the same true parameter: two independent estimates of λ = 3
    ws, B = factorised(widths, rank, COPIES)
    model = DeepLinear(ws, B)
    states = [[w.clone() for w in ws] for _ in range(2)]
    gens = [step_generator(0, k) for k in range(2)]
    out = llc_batch(Probe(model, model.loss, N), states, DLN_SETTINGS, generators=gens)
    true = float(dln_learning_coefficient(widths, rank))
    for res in out:
        assert not res.warnings
        est, se = res.mean / COPIES, res.std / COPIES / math.sqrt(DLN_SETTINGS.chains)
        assert abs(est - true) <= 0.1 * true + 3 * se, f"λ̂={est:.3f}±{se:.3f} vs λ={true}"


def test_batched_divergence_is_flagged_per_checkpoint():
    class Scaled(nn.Module):
        """½ s² |w|²: the curvature in w is s², so the same ε diverges where s is large."""

        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(torch.ones(1, dtype=torch.float64))
            self.w = nn.Parameter(torch.zeros(4, dtype=torch.float64))

        def loss(self):
            return 0.5 * (self.s**2).sum() * (self.w**2).sum()

    m = Scaled()
    # ε nβ s² / 2 = 72 at s = 10 (ULA diverges beyond 2), 0.007 at s = 0.1
    states = [
        [torch.full((1,), s, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)]
        for s in (10.0, 0.1)
    ]
    s = LLCSettings(epsilon=0.01, gamma=1.0, chains=3, draws=50, burn_in=0, step_down=0)
    gens = [step_generator(0, k) for k in range(2)]
    bad, good = llc_batch(Probe(m, m.loss, N), states, s, generators=gens)
    assert (~bad.ok).all() and len(bad.warnings) == 3
    assert "chain 0 diverged at draw" in bad.warnings[0]
    assert good.ok.all() and not good.warnings
