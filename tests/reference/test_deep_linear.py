"""Saddle-to-saddle learning in a deep linear network against Saxe, McClelland & Ganguli
2014 (arXiv 1312.6120, §2): modes learned one at a time, largest first, at the depth-2
half-learning times ``t_i = (τ / 2 s_i) ln(s_i / a_i(0) − 1)``; a null target without the
last mode never makes that transition.

The formula assumes a balanced initialisation aligned with the modes; ours is random
Gaussian, so each mode's measured onset is compared with its prediction within ±35%
(seed 0 measured here: 120 vs 148, 240 vs 241 and 420 vs 418 steps, eval every 5 steps).
"""

from __future__ import annotations

import pytest
import torch

from phasewatch import api
from phasewatch.config import TrainConfig
from phasewatch.errors import ConfigError
from phasewatch.phenomena.deep_linear import DeepLinearConfig, half_times
from phasewatch.phenomena.deep_linear.task import DeepLinearTask, whitened_inputs
from phasewatch.store import open_run


def _onset(metrics, key: str) -> int | None:
    s = metrics[metrics["key"] == key].sort_values("step")
    hit = s[s["value"] >= 0.5]
    return int(hit["step"].iloc[0]) if len(hit) else None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("dln")
    kw = dict(out=out, progress=False, report=False)
    return (
        api.run("deep-linear", "saxe", {"threads": 1}, **kw),
        api.run("deep-linear", "saxe-null", {"threads": 1}, **kw),
    )


def test_modes_are_learned_one_at_a_time_at_saxes_times(runs):
    rd, _ = runs
    m = rd.metrics()
    onsets = [_onset(m, f"modes/m{i}") for i in (1, 2, 3)]
    assert all(o is not None for o in onsets) and onsets == sorted(onsets)
    assert onsets[1] - onsets[0] >= 50 and onsets[2] - onsets[1] >= 100  # separate plateaus
    predicted = rd.events()["theory"]["half_time_steps"]
    for measured, pred in zip(onsets, predicted):
        assert pred is not None and abs(measured - pred) <= 0.35 * pred, (measured, pred)
    final = m[m["step"] == m["step"].max()].set_index("key")["value"]
    assert final["modes/learned"] == 3 and abs(final["modes/last"] - 1) < 1e-3
    assert rd.events()["onsets"]["escape"]["step"] == onsets[2]


def test_null_target_never_learns_the_last_mode(runs):
    rd, null = runs
    m = null.metrics()
    last = m[m["key"] == "modes/last"]["value"]
    assert last.abs().max() < 0.05
    assert null.events()["onsets"]["escape"]["step"] is None
    # same model, optimiser and budget: the first modes behave as in the transition run
    assert _onset(m, "modes/m1") == _onset(rd.metrics(), "modes/m1")


def test_whitened_inputs_have_identity_covariance():
    x = whitened_inputs(50, 7, torch.Generator().manual_seed(0))
    assert torch.allclose(x.T @ x / 50, torch.eye(7), atol=1e-5)


def test_half_time_formula_on_an_exact_logistic():
    # a(t) = s e^{2st/τ} / (e^{2st/τ} − 1 + s/a0) crosses s/2 at t = τ/(2s) ln(s/a0 − 1)
    cfg, lr, a0 = DeepLinearConfig(modes=(2.0,)), 0.01, 1e-3
    (t,) = half_times(cfg, lr, torch.tensor([a0]))
    tau, s = 1 / lr, 2.0
    a = s * torch.exp(torch.tensor(2 * s * t / tau))
    a = a / (torch.exp(torch.tensor(2 * s * t / tau)) - 1 + s / a0)
    assert abs(a.item() - s / 2) < 1e-6


def test_sgd_resume_is_bit_exact(tmp_path, runs, monkeypatch):
    rd, _ = runs
    real = DeepLinearTask.train_loss

    def dying(self, step):  # killed mid-way between the checkpoints at 500 and 525
        if step == 510:
            raise KeyboardInterrupt
        return real(self, step)

    monkeypatch.setattr(DeepLinearTask, "train_loss", dying)
    with pytest.raises(KeyboardInterrupt):
        api.run("deep-linear", "saxe", {"threads": 1}, out=tmp_path, progress=False)
    monkeypatch.setattr(DeepLinearTask, "train_loss", real)
    (killed,) = tmp_path.iterdir()
    assert open_run(killed).checkpoint_steps()[-1] == 500
    resumed = api.run("deep-linear", resume=killed, progress=False, report=False)
    a, b = rd.load_checkpoint(1000), resumed.load_checkpoint(1000)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = rd.metrics(), resumed.metrics()
    assert (
        ma.sort_values(["step", "key"])
        .reset_index(drop=True)
        .equals(mb.sort_values(["step", "key"]).reset_index(drop=True))
    )


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("modes", (1.0, 2.0), "decreasing order"),
        ("modes", (), "distinct positive values"),
        ("depth", 1, "an integer >= 2"),
        ("n_train", 3, "an integer >= d (10)"),
        ("init_scale", 0.0, "a float > 0"),
    ],
)
def test_bad_config_names_the_field(field, value, needle):
    with pytest.raises(ConfigError, match=field) as e:
        DeepLinearConfig(**{field: value})
    assert needle in str(e.value)


def test_optimizer_is_validated_and_sgd_is_plain_gradient_descent():
    with pytest.raises(ConfigError, match="optimizer='adam' is invalid; allowed: adamw, sgd"):
        TrainConfig(optimizer="adam")
    task = DeepLinearTask(DeepLinearConfig(), TrainConfig(seed=1))
    from phasewatch.training import make_optimizer

    opt = make_optimizer(task.model, TrainConfig(optimizer="sgd", lr=0.1, weight_decay=0.0))
    before = [p.detach().clone() for p in task.model.parameters()]
    loss = task.train_loss(0)
    grads = torch.autograd.grad(loss, list(task.model.parameters()))
    task.train_loss(0).backward()
    opt.step()
    for p, b, g in zip(task.model.parameters(), before, grads):
        assert torch.allclose(p.detach(), b - 0.1 * g, atol=1e-7)
