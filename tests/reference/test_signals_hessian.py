"""Hessian signal on losses with a known Hessian: quadratics ½ wᵀAw with a known spectrum."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from phasewatch.signals import linalg
from phasewatch.signals.base import Probe
from phasewatch.signals.hessian import HessianOperator, HessianSettings, hessian

D = 120
TOP = torch.tensor([50.0, 30.0, 20.0, 12.0, 8.0], dtype=torch.float64)
MOST_NEGATIVE = -6.0


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny linear algebra: one thread avoids oversubscribing 2 shared cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _matrix(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A = Q diag(λ) Qᵀ: 5 large outliers, one negative outlier, a bulk in [-1, 2]."""
    g = torch.Generator().manual_seed(seed)
    bulk = torch.rand(D - 6, generator=g, dtype=torch.float64) * 3 - 1
    lam = torch.cat([TOP, torch.tensor([MOST_NEGATIVE], dtype=torch.float64), bulk])
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    return Q @ torch.diag(lam) @ Q.T, lam


class Quadratic(nn.Module):
    def __init__(self, A: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("A", A)
        # two parameter tensors of different shapes, to exercise the flattening
        self.a = nn.Parameter(torch.randn(D // 2, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(3, D // 6, dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        w = torch.cat([self.a, self.b.reshape(-1)])
        return 0.5 * w @ self.A @ w


def _probe(A: torch.Tensor) -> Probe:
    model = Quadratic(A)
    return Probe(model, model.loss, n=100)


def test_hvp_equals_the_matrix():
    A, _ = _matrix()
    op = HessianOperator(_probe(A))
    v = torch.randn(D, dtype=torch.float64)
    torch.testing.assert_close(op(v), A @ v)


def test_top_k_min_eig_and_trace_of_a_known_spectrum():
    A, lam = _matrix()
    out = hessian(
        _probe(A),
        HessianSettings(top_k=5, lanczos_steps=40, hutchinson_probes=200),
        generator=torch.Generator().manual_seed(1),
    )
    v = out.values
    for i, want in enumerate(TOP.tolist()):
        assert v[f"hessian/top_eig/{i}"] == pytest.approx(want, rel=1e-6)
    assert v["hessian/min_eig"] == pytest.approx(MOST_NEGATIVE, rel=1e-6)
    assert v["hessian/converged"] == 1.0
    true_trace = float(lam.sum())
    # Hutchinson: unbiased, two-sided 4-standard-error band; its SE matches theory ±30%
    assert abs(v["hessian/trace"] - true_trace) < 4 * v["hessian/trace_se"]
    theory_se = math.sqrt(2 * float((A**2).sum() - (A.diag() ** 2).sum()) / 200)
    assert v["hessian/trace_se"] == pytest.approx(theory_se, rel=0.3)
    # SLQ is exact in expectation for the trace (one run here: within 25%)
    assert v["hessian/slq_trace"] == pytest.approx(true_trace, rel=0.25)
    table = out.tables["hessian_density"]
    assert table["weight"].sum() == pytest.approx(1.0)


def test_hutchinson_variance_is_twice_the_off_diagonal_mass():
    # Avron & Toledo 2011: Var(vᵀAv) = 2 Σ_{i≠j} A_ij² for Rademacher v
    g = torch.Generator().manual_seed(3)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    A = (A + A.T) / 2
    samples = linalg.hutchinson(lambda v: A @ v, 30, 20_000, generator=g)
    want = 2 * float((A**2).sum() - (A.diag() ** 2).sum())
    assert float(samples.mean()) == pytest.approx(
        float(A.trace()), abs=4 * math.sqrt(want / 20_000)
    )
    # the sample variance of 20k draws has a relative standard error of ~1.5% here
    assert float(samples.var()) == pytest.approx(want, rel=0.08)


def test_slq_density_matches_the_spectrum():
    A, lam = _matrix(seed=5)
    nodes, weights = [], []
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        tri = linalg.lanczos(lambda v: A @ v, torch.randn(D, generator=g, dtype=torch.float64), 30)
        t, w = linalg.slq_nodes(tri)
        nodes.append(t)
        weights.append(w / 20)
    nodes, weights = torch.cat(nodes), torch.cat(weights)
    assert float(weights.sum()) == pytest.approx(1.0)
    # fraction of eigenvalues below 0 and the mean eigenvalue (first moment)
    assert float(weights[nodes < 0].sum()) == pytest.approx(
        float((lam < 0).double().mean()), abs=0.06
    )
    # one run's first moment vᵀAv/|v|² has variance ≈ 2 Var(λ)/D; 20 runs: 4-sigma band
    sigma = math.sqrt(2 * float(lam.var()) / D / 20)
    assert float((weights * nodes).sum()) == pytest.approx(float(lam.mean()), abs=4 * sigma)
    grid = torch.linspace(-10, 60, 2001, dtype=torch.float64)
    dens = linalg.density(nodes, weights, grid, sigma=0.5)
    assert float(torch.trapezoid(dens, grid)) == pytest.approx(1.0, rel=1e-3)


def test_lanczos_is_exact_on_a_small_matrix():
    A = torch.diag(torch.tensor([3.0, 1.0, -2.0, 0.5], dtype=torch.float64))
    tri = linalg.lanczos(lambda v: A @ v, torch.ones(4, dtype=torch.float64), 10)
    theta, _ = tri.ritz()
    torch.testing.assert_close(theta, torch.tensor([-2.0, 0.5, 1.0, 3.0], dtype=torch.float64))


def test_matches_autograd_hessian_on_a_small_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    probe = Probe(net, lambda: ((net(x) - y) ** 2).mean(), n=16)
    params = probe.params()
    shapes = [p.shape for p in params]

    def f(flat):
        chunks = torch.split(flat, [math.prod(s) for s in shapes])
        ps = {n: c.view(s) for (n, _), c, s in zip(net.named_parameters(), chunks, shapes)}
        return ((torch.func.functional_call(net, ps, (x,)) - y) ** 2).mean()

    w = torch.cat([p.detach().reshape(-1) for p in params])
    H = torch.autograd.functional.hessian(f, w)
    out = hessian(
        probe,
        HessianSettings(top_k=3, lanczos_steps=len(w)),
        generator=torch.Generator().manual_seed(0),
    )
    ev = torch.linalg.eigvalsh(H)
    for i in range(3):
        assert out.values[f"hessian/top_eig/{i}"] == pytest.approx(
            float(ev[-1 - i]), rel=1e-6, abs=1e-9
        )
    assert out.values["hessian/min_eig"] == pytest.approx(float(ev[0]), rel=1e-6, abs=1e-9)


def test_batched_hessian_of_a_known_spectrum_at_several_checkpoints():
    # a quadratic has the Hessian A at every w: three "checkpoints" (different w) measured at
    # once must each give A's spectrum, with their own start vectors and probes
    from phasewatch.signals.base import step_generator
    from phasewatch.signals.batched import hessian_batch

    A, lam = _matrix()
    probe = _probe(A)
    g = torch.Generator().manual_seed(5)
    states = [[torch.randn(p.shape, generator=g, dtype=p.dtype) for p in probe.params()]]
    states += [[p.detach().clone() for p in probe.params()] for _ in range(2)]
    settings = HessianSettings(top_k=5, lanczos_steps=40, hutchinson_probes=200)
    gens = [step_generator(0, s) for s in (0, 100, 200)]
    out = hessian_batch(probe, states, settings, generators=gens)
    for m in out:
        v = m.values
        for i, want in enumerate(TOP.tolist()):
            assert v[f"hessian/top_eig/{i}"] == pytest.approx(want, rel=1e-6)
        assert v["hessian/min_eig"] == pytest.approx(MOST_NEGATIVE, rel=1e-6)
        assert v["hessian/converged"] == 1.0
        assert abs(v["hessian/trace"] - float(lam.sum())) < 4 * v["hessian/trace_se"]
    assert out[1].values["hessian/trace"] != out[2].values["hessian/trace"]  # own probes


def test_batched_lanczos_stops_each_row_where_lanczos_does():
    # row 0: three distinct eigenvalues (the Krylov space is invariant after 3 steps);
    # row 1: a generic spectrum (runs all steps); each row equals its own lanczos run
    g = torch.Generator().manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    lam0 = torch.tensor([3.0] * 4 + [1.0] * 4 + [-2.0] * 4, dtype=torch.float64)
    mats = [Q @ torch.diag(lam0) @ Q.T, _matrix()[0][:12, :12]]
    v0 = torch.randn(2, 12, generator=g, dtype=torch.float64)
    got = linalg.lanczos_batched(lambda V: torch.stack([m @ v for m, v in zip(mats, V)]), v0, 8)
    for k, m in enumerate(mats):
        want = linalg.lanczos(lambda v, m=m: m @ v, v0[k], 8)
        assert len(got[k].alpha) == len(want.alpha)
        torch.testing.assert_close(got[k].alpha, want.alpha)
        torch.testing.assert_close(got[k].beta, want.beta)
    assert len(got[0].alpha) == 3 and len(got[1].alpha) == 8
    torch.testing.assert_close(
        got[0].ritz()[0], torch.tensor([-2.0, 1.0, 3.0], dtype=torch.float64)
    )
