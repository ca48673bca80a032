"""The grokking phenomenon: data, operations, model and its fast read-out path."""

from __future__ import annotations

import pytest
import torch

from phasewatch.config import TrainConfig
from phasewatch.errors import ConfigError
from phasewatch.phenomena.grokking import GrokkingConfig
from phasewatch.phenomena.grokking.data import make_data
from phasewatch.phenomena.grokking.model import readout_logits
from phasewatch.phenomena.grokking.task import GrokkingTask, cross_entropy_f64


def test_nanda_split_sizes():
    d = make_data(GrokkingConfig(p=113, train_frac=0.3), seed=0)
    assert (int(d.train.sum()), int((~d.train).sum())) == (3830, 8939)
    assert d.tokens().shape == (113 * 113, 3)
    assert (d.tokens()[:, 2] == 113).all()


def test_split_depends_on_seed_only():
    cfg = GrokkingConfig(p=17)
    assert torch.equal(make_data(cfg, 3).train, make_data(cfg, 3).train)
    assert not torch.equal(make_data(cfg, 3).train, make_data(cfg, 4).train)


@pytest.mark.parametrize(
    "op,a,b,expected",
    [
        ("add", 5, 4, 2),
        ("sub", 2, 5, 4),
        ("mul", 3, 5, 1),
        ("div", 3, 2, 5),
        ("x2+y2", 3, 2, 6),
        ("x2+xy+y2", 3, 2, 5),
        ("x3+xy", 2, 3, 0),
    ],
)
def test_operations_mod_7(op, a, b, expected):
    d = make_data(GrokkingConfig(p=7, op=op), seed=0)
    row = ((d.a == a) & (d.b == b)).nonzero()[0, 0]
    assert d.labels[row].item() == expected


def test_division_skips_zero_divisor():
    d = make_data(GrokkingConfig(p=7, op="div"), seed=0)
    assert len(d.a) == 7 * 6 and (d.b != 0).all()


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("p", 1, "p=1"),
        ("p", 15, "prime"),
        ("train_frac", 1.5, r"train_frac=1.5.*\(0, 1\)"),
        ("op", "pow", "op='pow'.*add, sub, mul, div"),
    ],
)
def test_config_errors_name_field_and_allowed_values(field, value, match):
    with pytest.raises(ConfigError, match=match):
        GrokkingConfig(**{field: value})


def test_readout_path_equals_full_forward_and_its_gradients():
    cfg = GrokkingConfig(p=23, d_model=32, n_heads=4, d_head=8, d_mlp=64)
    task = GrokkingTask(cfg, TrainConfig(seed=1))
    model = task.model
    full = model(task.tokens)[:, -1]
    fast = readout_logits(model, task.a, task.b)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    g_full = torch.autograd.grad(cross_entropy_f64(full, task.labels), list(model.parameters()))
    fast = readout_logits(model, task.a, task.b)
    g_fast = torch.autograd.grad(cross_entropy_f64(fast, task.labels), list(model.parameters()))
    for (name, _), gf, gs in zip(model.named_parameters(), g_full, g_fast):
        torch.testing.assert_close(gs, gf, rtol=1e-4, atol=1e-6, msg=name)


def test_evaluate_reports_chance_at_init():
    task = GrokkingTask(GrokkingConfig(p=31, d_mlp=64), TrainConfig(seed=0))
    m = task.evaluate()
    assert 0 <= m["test/acc"] < 0.2
    assert m["test/loss"] == pytest.approx(torch.log(torch.tensor(31.0)).item(), rel=0.3)
    assert 0 <= m["fourier/embed_gini"] < 0.5  # random embedding: no Fourier sparsity
    assert len([k for k in m if k.startswith("fourier/embed_norm/")]) == 15


def test_readout_and_full_paths_train_identically_in_float64():
    """Same maths: in float64 the two training trajectories agree to round-off."""
    from phasewatch.config import override
    from phasewatch.training import make_optimizer

    train = TrainConfig(seed=2, lr=3e-3, warmup_steps=5)
    losses = []
    for fast in (True, False):
        cfg = override(GrokkingConfig(p=23, d_model=32, d_head=8, d_mlp=64), {"fast": fast})
        task = GrokkingTask(cfg, train)
        task.model.double()
        opt = make_optimizer(task.model, train)
        curve = []
        for step in range(30):
            loss = task.train_loss(step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(loss.item())
        losses.append(curve)
    assert losses[0][-1] < losses[0][0] - 0.5  # it trained
    for a, b in zip(*losses):
        assert abs(a - b) < 1e-9
