"""The toy model of superposition and its fused losses.

Elhage et al. 2022, "Toy Models of Superposition" (§"Demonstrating Superposition"):
x' = ReLU(WᵀWx + b) for many instances at once along a leading instance dimension, the
importance-weighted squared error, and its closed-form gradient (:class:`FusedToyLoss`;
:class:`GramToyLoss`, the same in feature-major layout, for batched seeds with small n).
These run on every training step (the hot path): their reshapes and transposes stay
plain torch calls with shape comments. The data are in :mod:`.data`; the phenomenon is
:mod:`phasewatch.phenomena.superposition`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from phasewatch.models.hooks import HookPoint


def default_init_std(m: int, n: int, instances: int) -> float:
    """The effective std of the notebook's ``xavier_normal_`` on its joint (instances, n, m)
    tensor: torch takes fan_in = n·m and fan_out = instances·m for a 3-D tensor."""
    return math.sqrt(2.0 / (m * (n + instances)))


_CHUNK_FLOATS = 1 << 19  # activations per chunk of the fused loss (2 MB in float32)


class ToyModel(nn.Module):
    """x' = ReLU(WᵀWx + b) for many instances at once.

    Source: Elhage et al. 2022, "Demonstrating Superposition" (the ReLU output model).

    Parameters: ``W`` (instances, m, n) — column W[k, :, i] is feature i's direction in
    instance k — and ``b`` (instances, n). Hook points: ``hook_hidden`` (instances, batch,
    m) = Wx and ``hook_out`` (instances, batch, n) = x'.
    """

    def __init__(
        self,
        instances: int,
        n: int,
        m: int,
        init_std: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        W = torch.randn((instances, m, n), generator=generator) * init_std
        self.W = nn.Parameter(W)
        self.b = nn.Parameter(torch.zeros(instances, n))
        self.hook_hidden = HookPoint()
        self.hook_out = HookPoint()

    def forward(self, x: Float[Tensor, "instances batch n"]) -> Float[Tensor, "instances batch n"]:
        """x' = ReLU(WᵀWx + b) for every instance, firing ``hook_hidden`` and ``hook_out``."""
        h = self.hook_hidden(torch.bmm(x, self.W.transpose(1, 2)))  # (I, B, m)
        return self.hook_out(torch.relu(torch.baddbmm(self.b[:, None, :], h, self.W)))


def weighted_mse(
    out: Float[Tensor, "instances batch n"],
    x: Float[Tensor, "instances batch n"],
    importances: Float[Tensor, "instances n"],
) -> Float[Tensor, " instances"]:
    """Per-instance loss: batch mean of Σ_i I_i (x_i − x'_i)² (Elhage et al. 2022)."""
    return (importances[:, None, :] * (x - out).pow(2)).sum(-1).mean(-1)


def _relu_grad_(grad: Tensor, out: Tensor) -> Tensor:
    """``grad`` zeroed in place where the ReLU output ``out`` is 0 (ReLU'(pre) = [out > 0]),
    one pass without a boolean mask."""
    return torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


class FusedToyLoss(torch.autograd.Function):
    """Per-instance :func:`weighted_mse` of :class:`ToyModel` with its gradient formed in
    the forward pass, in closed form — the same maths as autograd with fewer passes over
    the (instances, batch, n) activations, taken in batch chunks of about 2 MB so that
    the passes stay in cache (~25% faster at n = 200; one chunk for the small presets).

    With h = xWᵀ, pre = hW + b, r = ReLU(pre) − x and g = (2/B) I ⊙ r ⊙ [pre > 0]:
    ∂L/∂b = Σ_batch g and ∂L/∂W = hᵀg + (gWᵀ)ᵀx. Hook points do not fire.
    ``chunk`` (examples per chunk, 0 = automatic) changes only float rounding.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Float[Tensor, "instances batch n"],
        W: Float[Tensor, "instances m n"],
        b: Float[Tensor, "instances n"],
        importances: Float[Tensor, "instances n"],
        chunk: int = 0,
    ) -> Float[Tensor, " instances"]:
        """Per-instance loss; saves ∂L/∂W and ∂L/∂b for :meth:`backward`."""
        ni, B, n = x.shape
        chunk = chunk or max(1, _CHUNK_FLOATS // (ni * n))
        Wt, bias = W.transpose(1, 2), b[:, None, :]
        scale = (importances * (2.0 / B))[:, None, :]  # (I, 1, n)
        loss, dW, db = x.new_zeros(ni), torch.zeros_like(W), torch.zeros_like(b)
        for start in range(0, B, chunk):
            xc = x[:, start : start + chunk]  # (I, C, n)
            h = torch.bmm(xc, Wt)  # (I, C, m)
            out = torch.bmm(h, W).add_(bias).clamp_(min=0)  # (I, C, n): x'
            r = torch.sub(out, xc)  # x' − x
            g = r * scale  # (2/B) I ⊙ r
            loss += torch.linalg.vecdot(g.reshape(ni, -1), r.reshape(ni, -1)) / 2
            _relu_grad_(g, out)  # (I, C, n): ∂L/∂pre
            dh = torch.bmm(g, Wt)  # (I, C, m)
            dW.baddbmm_(h.transpose(1, 2), g).baddbmm_(dh.transpose(1, 2), xc)  # (I, m, n)
            db += g.sum(1)
        ctx.save_for_backward(dW, db)
        return loss

    @staticmethod
    def backward(
        ctx: Any, grad: Float[Tensor, " instances"]
    ) -> tuple[None, Tensor, Tensor, None, None]:
        """The saved gradients scaled by each instance's incoming gradient (for W, b)."""
        dW, db = ctx.saved_tensors
        return None, dW * grad[:, None, None], db * grad[:, None], None, None


def gram_is_cheaper(n: int, m: int) -> bool:
    """Whether :class:`GramToyLoss` needs no more multiply-adds than :class:`FusedToyLoss`:
    2n² against 5mn per example (Gx and gxᵀ against xWᵀ, hW, gWᵀ, hᵀg and (gWᵀ)ᵀx),
    i.e. n <= 2.5m (the intro and phase-diagram presets, not geometry)."""
    return 2 * n <= 5 * m


_GRAM_CHUNK_FLOATS = 1 << 17  # activations per chunk of GramToyLoss (512 kB; measured best)

Fill = Any  # Callable[[int, int, Tensor], Tensor]: (lo, hi, out (hi-lo, n, B)) -> out


class GramToyLoss(torch.autograd.Function):
    """:class:`FusedToyLoss` in feature-major layout, for small n (:func:`gram_is_cheaper`):
    the same per-instance loss and closed-form gradient, with the batch dimension last
    (instances, n, batch), where CPU matrix products and broadcasts over the long batch
    dimension run far faster than with n = 5 last, taken in chunks of instances whose
    data are drawn just before use (so that they stay in cache).

    With G = WᵀW (instances, n, n): x' = ReLU(Gx + b), r = x' − x, s = (2/B) I and
    g = s ⊙ r ⊙ [x' > 0] = ∂L/∂pre; ∂L/∂b = Σ_batch g and, from ∂L/∂G = g xᵀ,
    ∂L/∂W = W(∂L/∂G + ∂L/∂Gᵀ). The per-feature factor s is applied after the sums over
    the batch (it scales rows of g). Only float rounding differs from
    :class:`FusedToyLoss` (measured: < 2e-6 relative).

    Args (of ``apply``): ``W`` (instances, m, n), ``b`` (instances, n), ``importances``
    (instances, n), ``fill(lo, hi, out)``: writes the batch of instances lo..hi into
    ``out`` (hi − lo, n, batch) and returns it; ``batch``: examples per instance.
    """

    @staticmethod
    def forward(
        ctx: Any,
        W: Float[Tensor, "instances m n"],
        b: Float[Tensor, "instances n"],
        importances: Float[Tensor, "instances n"],
        fill: Fill,
        batch: int,
    ) -> Float[Tensor, " instances"]:
        """Per-instance loss; saves ∂L/∂W and ∂L/∂b for :meth:`backward`."""
        ni, _, n = W.shape
        chunk = max(1, _GRAM_CHUNK_FLOATS // (n * batch))
        G = torch.bmm(W.transpose(1, 2), W)  # (I, n, n)
        bias = b[:, :, None]  # (I, n, 1)
        rr, sum_g, xg = W.new_empty(ni, n), W.new_empty(ni, n), W.new_empty(ni, n, n)
        bufs = W.new_empty(3, min(chunk, ni), n, batch)  # x, x', r of a chunk (reused)
        for lo in range(0, ni, chunk):
            hi = min(lo + chunk, ni)
            x = fill(lo, hi, bufs[0, : hi - lo])  # (C, n, B)
            out = torch.baddbmm(bias[lo:hi], G[lo:hi], x, out=bufs[1, : hi - lo])
            out.clamp_(min=0)  # (C, n, B): x'
            r = torch.sub(out, x, out=bufs[2, : hi - lo])  # (C, n, B)
            torch.linalg.vecdot(r, r, out=rr[lo:hi])  # (C, n): Σ_batch r²
            g = torch.ops.aten.threshold_backward.grad_input(r, out, 0, grad_input=r)
            torch.sum(g, -1, out=sum_g[lo:hi])  # (C, n)
            torch.bmm(g, x.transpose(1, 2), out=xg[lo:hi])  # (C, n, n): r[x'>0] xᵀ
        s = importances * (2.0 / batch)  # (I, n)
        dG = xg.mul_(s[:, :, None])  # (I, n, n): ∂L/∂G
        ctx.save_for_backward(torch.bmm(W, dG + dG.transpose(1, 2)), sum_g.mul_(s))
        return torch.linalg.vecdot(rr, s) / 2

    @staticmethod
    def backward(
        ctx: Any, grad: Float[Tensor, " instances"]
    ) -> tuple[Tensor, Tensor, None, None, None]:
        """The saved gradients scaled by each instance's incoming gradient (for W, b)."""
        dW, db = ctx.saved_tensors
        return dW * grad[:, None, None], db * grad[:, None], None, None, None
