"""The per-checkpoint precursors against known answers, and measured on real runs.

* ``commutator`` (Xu 2026): for quadratic losses L_S = ½θᵀH_Sθ two SGD steps give
  θ_AB − θ_BA = η²[H_B, H_A]θ exactly, so the defect is 0 for commuting H_A, H_B and
  ‖[H_A, H_B]θ‖ / (‖H_Aθ‖‖H_Bθ‖) otherwise, for every η.
* ``logit_scale`` (Khanh 2026): the mean logit norm by hand, scaling, uniform logits
  (centred scale 0, chance-level max probability), saturated logits.
* ``ntk_alignment`` (Kumar et al. 2024): a linear model f(x) = Wx has the trace NTK
  k·XXᵀ; alignment 1 when K ∝ Y; 1/√3 on a hand-computed case; scale invariance.

Tolerances are two-sided: exact identities to float64 rounding (rel. 1e-9), the
projection estimate of the NTK to 20% in Frobenius norm with 400 projections (its
relative standard error is about √(2/400) ≈ 7% per entry and smaller in norm).
"""

from __future__ import annotations

import math

import pytest
import torch
from tiny_configs import GROKKING
from torch import nn

from phasewatch import api
from phasewatch.config import TrainConfig
from phasewatch.errors import ConfigError
from phasewatch.phenomena.grokking.config import GrokkingConfig
from phasewatch.phenomena.grokking.task import GrokkingTask
from phasewatch.phenomena.induction.config import InductionConfig
from phasewatch.phenomena.induction.task import InductionTask
from phasewatch.phenomena.superposition.config import SuperpositionConfig
from phasewatch.phenomena.superposition.task import SuperpositionTask
from phasewatch.signals import base
from phasewatch.signals.base import Probe
from phasewatch.signals.precursors import ntk_alignment as ntk_module
from phasewatch.signals.precursors.commutator import CommutatorSettings, commutator_vector
from phasewatch.signals.precursors.logit_scale import LogitScaleSettings
from phasewatch.signals.precursors.ntk_alignment import (
    NTKAlignmentSettings,
    centred_alignment,
    empirical_ntk,
    target_kernel,
)
from phasewatch.signals.runner import make_probe, measure_probe
from phasewatch.signals.trajectory import NotApplicable
from phasewatch.watch.probe import WatchedTask, cross_entropy


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run_signal(name: str, probe: Probe, **fields):
    spec = base.get(name)
    return spec.run(probe, spec.settings(fields or None), generator=gen())


# ---- commutator ---------------------------------------------------------------------------
class TwoQuadratics(nn.Module):
    """Two per-sample losses ½θᵀH_1θ and ½θᵀH_2θ (float64)."""

    def __init__(self, H1: torch.Tensor, H2: torch.Tensor, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.register_buffer("H", torch.stack([H1, H2]))

    def per_sample(self) -> torch.Tensor:
        return 0.5 * torch.einsum("i,sij,j->s", self.theta, self.H, self.theta)


def quadratic_probe(H1, H2, theta) -> Probe:
    model = TwoQuadratics(H1, H2, theta)
    return Probe(model, lambda: model.per_sample().mean(), n=2, per_sample_loss=model.per_sample)


def spd(d: int, seed: int) -> torch.Tensor:
    A = torch.randn(d, d, generator=gen(seed), dtype=torch.float64)
    return A @ A.T + d * torch.eye(d, dtype=torch.float64)


THETA = torch.tensor([0.7, -1.2, 0.4, 2.0], dtype=torch.float64)


def test_commutator_vector_is_the_bracket_for_quadratics():
    H1, H2 = spd(4, 1), spd(4, 2)
    probe = quadratic_probe(H1, H2, THETA)
    lr = 0.05
    delta, g_a, g_b = commutator_vector(lambda: tuple(probe.per_sample_loss()), probe.params(), lr)
    want = lr**2 * (H2 @ H1 - H1 @ H2) @ THETA
    torch.testing.assert_close(delta[0], want, rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(g_a[0], H1 @ THETA, rtol=1e-12, atol=0)
    torch.testing.assert_close(g_b[0], H2 @ THETA, rtol=1e-12, atol=0)


def test_commutator_defect_is_zero_for_commuting_steps():
    H1 = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    H2 = torch.diag(torch.tensor([5.0, 0.5, 2.0, 1.0], dtype=torch.float64))
    values = run_signal("commutator", quadratic_probe(H1, H2, THETA), samples=3).values
    assert 0 <= values["commutator/defect"] < 1e-9
    assert 0 <= values["commutator/norm"] < 1e-15


@pytest.mark.parametrize("lr", [1e-3, 1e-1])
def test_commutator_defect_matches_the_analytic_value_for_any_lr(lr):
    H1, H2 = spd(4, 3), spd(4, 4)
    bracket = (H1 @ H2 - H2 @ H1) @ THETA
    want = float(bracket.norm() / ((H1 @ THETA).norm() * (H2 @ THETA).norm()))
    probe = quadratic_probe(H1, H2, THETA)
    values = run_signal("commutator", probe, lr=lr).values
    assert values["commutator/defect"] == pytest.approx(want, rel=1e-7)
    assert values["commutator/norm"] == pytest.approx(lr**2 * float(bracket.norm()), rel=1e-7)
    assert values["commutator/defect_iqr"] == pytest.approx(0.0, abs=1e-9 * want)
    assert torch.equal(probe.model.theta.detach(), THETA)  # parameters restored


def test_commutator_needs_per_sample_losses_and_valid_settings():
    probe = quadratic_probe(spd(4, 1), spd(4, 2), THETA)
    probe.per_sample_loss = None
    with pytest.raises(NotApplicable, match="per-sample losses"):
        run_signal("commutator", probe)
    for field, value in (("lr", 0.0), ("samples", 0), ("batch_size", 0)):
        with pytest.raises(ConfigError, match=field):
            CommutatorSettings(**{field: value})


# ---- logit scale --------------------------------------------------------------------------
def logits_probe(z: torch.Tensor, labels: torch.Tensor | None = None) -> Probe:
    model = nn.Linear(1, 1)
    return Probe(
        model,
        lambda: torch.zeros(()),
        n=z.shape[0],
        logits=lambda: z,
        targets=None if labels is None else (lambda: labels),
    )


def test_logit_scale_by_hand_and_under_scaling():
    z = torch.randn(6, 5, generator=gen(1), dtype=torch.float64)
    v = run_signal("logit_scale", logits_probe(z)).values
    assert v["logit_scale/norm"] == pytest.approx(float(z.norm(dim=1).mean()), rel=1e-12)
    zc = z - z.mean(1, keepdim=True)
    assert v["logit_scale/centred"] == pytest.approx(float(zc.norm(dim=1).mean()), rel=1e-12)
    assert v["logit_scale/max_prob"] == pytest.approx(float(z.softmax(1).max(1)[0].mean()))
    v3 = run_signal("logit_scale", logits_probe(3.0 * z)).values
    for key in ("logit_scale/norm", "logit_scale/centred"):
        assert v3[key] == pytest.approx(3.0 * v[key], rel=1e-12)
    assert v3["logit_scale/max_prob"] > v["logit_scale/max_prob"]  # sharper softmax


def test_logit_scale_of_uniform_and_saturated_logits():
    C = 7
    v = run_signal("logit_scale", logits_probe(torch.full((4, C), 2.0))).values
    assert v["logit_scale/centred"] == pytest.approx(0.0, abs=1e-12)
    assert v["logit_scale/norm"] == pytest.approx(2.0 * math.sqrt(C), rel=1e-12)
    assert v["logit_scale/max_prob"] == pytest.approx(1 / C, rel=1e-12)  # chance
    assert v["logit_scale/saturated"] == 0.0
    hot = 50.0 * torch.eye(C)[:4]
    s = run_signal("logit_scale", logits_probe(hot)).values
    assert s["logit_scale/saturated"] == 1.0
    assert s["logit_scale/max_prob"] == pytest.approx(1.0, abs=1e-12)


def test_logit_scale_not_applicable_without_logits_and_settings_validated():
    probe = Probe(nn.Linear(1, 1), lambda: torch.zeros(()), n=1)
    with pytest.raises(NotApplicable, match="logits"):
        run_signal("logit_scale", probe)
    with pytest.raises(ConfigError, match="saturation_tol"):
        LogitScaleSettings(saturation_tol=0.0)


# ---- NTK alignment ------------------------------------------------------------------------
def linear_logits(X: torch.Tensor, k: int, seed: int = 0):
    """f(x) = Wx without bias, W (k, d) float64; returns (model, ``(rows=None) -> f``)."""
    model = nn.Linear(X.shape[1], k, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(k, X.shape[1], generator=gen(seed), dtype=torch.float64))
    return model, lambda rows=None: model(X if rows is None else X[rows])


@pytest.mark.parametrize("vjp_floats", [1 << 24, 8])  # one batched pass, or one row each
def test_linear_model_ntk_is_the_input_gram_matrix(vjp_floats, monkeypatch):
    monkeypatch.setattr(ntk_module, "_VJP_FLOATS", vjp_floats)
    X = torch.randn(10, 3, generator=gen(2), dtype=torch.float64)
    k = 4
    model, f = linear_logits(X, k)
    idx = torch.tensor([0, 3, 4, 7, 9])
    params = list(model.parameters())
    K = empirical_ntk(f(idx), params, projections=None, generator=gen())
    want = k * X[idx] @ X[idx].T  # trace over outputs of XXᵀ ⊗ I_k
    torch.testing.assert_close(K, want, rtol=1e-10, atol=1e-12)
    est = empirical_ntk(f(idx), params, projections=400, generator=gen(5))
    rel = float((est - want).norm() / want.norm())
    assert 0 <= rel < 0.2


def test_alignment_known_values_and_scale_invariance():
    K = torch.eye(4, dtype=torch.float64)
    Y = target_kernel(torch.tensor([0, 0, 1, 1]), 2)
    assert centred_alignment(K, Y) == pytest.approx(1 / math.sqrt(3), rel=1e-12)
    assert centred_alignment(7.3 * K, Y) == pytest.approx(1 / math.sqrt(3), rel=1e-12)
    assert centred_alignment(Y, Y) == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(centred_alignment(K, torch.ones(4, 4)))


def test_alignment_is_one_when_the_kernel_is_the_target_kernel():
    labels = torch.tensor([0, 2, 1, 2, 0, 1, 1, 0])
    X = torch.eye(3, dtype=torch.float64)[labels]  # x_i = e_{y_i}: XXᵀ = Y
    model, f = linear_logits(X, 3)
    probe = Probe(model, lambda: torch.zeros(()), n=8, logits=f, targets=lambda: labels)
    v = run_signal("ntk_alignment", probe, projections=None).values
    assert v["ntk/alignment"] == pytest.approx(1.0, rel=1e-10)
    assert v["ntk/trace"] == pytest.approx(3.0, rel=1e-10)  # k · ‖x_i‖² = 3
    # regression outputs with targets y_i = x_i: Y = XXᵀ ∝ K as well
    Xr = torch.randn(8, 3, generator=gen(4), dtype=torch.float64)
    model, f = linear_logits(Xr, 3)
    probe = Probe(model, lambda: torch.zeros(()), n=8, outputs=f, targets=lambda: Xr)
    v = run_signal("ntk_alignment", probe, projections=None).values
    assert v["ntk/alignment"] == pytest.approx(1.0, rel=1e-10)


def test_ntk_alignment_not_applicable_and_settings_validated():
    with pytest.raises(NotApplicable, match="logits"):
        run_signal("ntk_alignment", Probe(nn.Linear(1, 1), lambda: torch.zeros(()), n=1))
    for field, value in (("samples", 1), ("projections", 0)):
        with pytest.raises(ConfigError, match=field):
            NTKAlignmentSettings(**{field: value})


# ---- on real tasks ------------------------------------------------------------------------
KEYS = {
    "commutator": "commutator/defect",
    "logit_scale": "logit_scale/norm",
    "ntk_alignment": "ntk/alignment",
}
CHEAP = {"commutator": {"samples": 2}, "ntk_alignment": {"samples": 16, "projections": 2}}


def test_all_three_measured_on_a_tiny_grokking_run(tmp_path):
    run = api.run(
        "grokking", "quick", GROKKING | {"threads": 1}, out=tmp_path, progress=False, report=False
    )
    table = api.measure(run.path, list(KEYS), steps=[0, 40], settings=CHEAP, progress=False)
    for step in (0, 40):
        rows = table[table["step"] == step].set_index("key")["value"]
        assert rows["commutator/defect"] > 0 and math.isfinite(rows["commutator/defect"])
        assert rows["logit_scale/norm"] > 0
        assert 0 < rows["logit_scale/max_prob"] <= 1
        assert -1 <= rows["ntk/alignment"] <= 1 and rows["ntk/trace"] > 0


def test_induction_and_superposition_tasks_and_a_watched_classifier():
    small = dict(vocab=32, n_ctx=24, span_len=5, repeats=3, d_model=16, n_heads=2, d_head=8)
    induction = InductionTask(InductionConfig(**small), TrainConfig(seed=0, threads=1))
    toy = SuperpositionTask.from_config(
        SuperpositionConfig(n=5, m=2, n_densities=2, n_importances=1, batch=64),
        TrainConfig(seed=0, threads=1),
    )
    x = torch.randn(40, 3, generator=gen(6))
    watched = WatchedTask(nn.Linear(3, 4), (x, torch.arange(40) % 4), cross_entropy)
    # the runner cannot size a superposition probe (no per-sample losses, no hook fires in
    # its fused loss), so that probe is built by hand with n = the batch
    toy_probe = Probe(
        toy.model,
        lambda: toy.train_loss(0),
        n=64,
        outputs=lambda rows=None: toy.probe_outputs(0, rows),
        targets=lambda: toy.probe_targets(0),
    )
    jobs = [(name, CHEAP.get(name, {})) for name in KEYS]
    cases = (
        (make_probe(induction, 0), set()),
        (toy_probe, {"logit_scale", "commutator"}),
        (make_probe(watched, 0), set()),
    )
    for probe, missing in cases:
        errors: dict[str, str] = {}
        res = measure_probe(probe, jobs, errors=errors)
        keys = {k for _, k, *_ in res.rows}
        assert {KEYS[n] for n in KEYS if n not in missing} <= keys
        assert not errors
        skipped = {w["signal"] for w in res.warnings if "not applicable" in w["message"]}
        assert skipped == missing  # the runner records NotApplicable as one warning
    rows = torch.tensor([5, 0, 30, 7])
    grok = GrokkingTask(
        GrokkingConfig(p=17, train_frac=0.5, d_model=16, n_heads=2, d_head=8, d_mlp=32),
        TrainConfig(seed=0, threads=1),
    )
    for task in (grok, induction, watched):
        probe = make_probe(task, 0)
        with torch.no_grad():
            torch.testing.assert_close(probe.logits(rows), probe.logits()[rows])
    with torch.no_grad():
        torch.testing.assert_close(toy_probe.outputs(rows), toy_probe.outputs()[rows])
    regression = WatchedTask(nn.Linear(3, 1), x, lambda m, b: m(b).squeeze(1) ** 2)
    with pytest.raises(NotApplicable, match="classes"):
        run_signal("logit_scale", make_probe(regression, 0))
