"""The faster :class:`FusedToyLoss` (ReLU derivative without a boolean mask) keeps the
numbers: bit for bit the previous formulation in float32, and known answers where every
ReLU is off."""

from __future__ import annotations

import pytest
import torch

from phasewatch.phenomena.superposition.model import FusedToyLoss


def _previous(x, W, b, importances, chunk):
    """The previous formulation (the ReLU derivative as a 0/1 mask multiplied in)."""
    ni, B, _ = x.shape
    scale = (importances * (2.0 / B))[:, None, :]
    loss, dW, db = x.new_zeros(ni), torch.zeros_like(W), torch.zeros_like(b)
    for start in range(0, B, chunk):
        xc = x[:, start : start + chunk]
        h = torch.bmm(xc, W.transpose(1, 2))
        r = torch.bmm(h, W).add_(b[:, None, :]).clamp_(min=0)
        active = r > 0
        r.sub_(xc)
        g = r * scale
        loss += torch.linalg.vecdot(g.reshape(ni, -1), r.reshape(ni, -1)) / 2
        g.mul_(active)
        dh = torch.bmm(g, W.transpose(1, 2))
        dW.baddbmm_(h.transpose(1, 2), g).baddbmm_(dh.transpose(1, 2), xc)
        db += g.sum(1)
    return loss, dW, db


def _case(seed: int, instances: int = 4, batch: int = 300, n: int = 40, m: int = 6):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(instances, batch, n, generator=g) * (
        torch.rand(instances, batch, n, generator=g) < 0.2
    )
    W = torch.randn(instances, m, n, generator=g) * 0.3
    b = torch.randn(instances, n, generator=g) * 0.1
    imp = torch.rand(instances, n, generator=g) + 0.5
    return x, W.requires_grad_(), b.requires_grad_(), imp


@pytest.mark.parametrize("chunk", [0, 64, 300])
def test_fused_loss_equals_the_previous_formulation_bit_for_bit(chunk):
    x, W, b, imp = _case(0)
    loss = FusedToyLoss.apply(x, W, b, imp, chunk)
    dW, db = torch.autograd.grad(loss.sum(), (W, b))
    auto_chunk = chunk or max(1, (1 << 19) // (x.shape[0] * x.shape[2]))
    ref_loss, ref_dW, ref_db = _previous(x, W.detach(), b.detach(), imp, auto_chunk)
    assert torch.equal(loss.detach(), ref_loss)
    assert torch.equal(dW, ref_dW) and torch.equal(db, ref_db)


def test_all_relus_off_give_zero_gradient_and_the_squared_input_loss():
    x, W, b, imp = _case(1)
    b = torch.full_like(b, -100.0).requires_grad_()  # every output ReLU(·) = 0
    loss = FusedToyLoss.apply(x, W, b, imp)
    dW, db = torch.autograd.grad(loss.sum(), (W, b))
    expected = (imp[:, None, :] * x.pow(2)).sum(-1).mean(-1)  # x' = 0: the loss is Σ I x²
    torch.testing.assert_close(loss.detach(), expected)
    assert float(dW.abs().sum()) == 0.0 and float(db.abs().sum()) == 0.0
