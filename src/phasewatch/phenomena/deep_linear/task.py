"""One seed of the deep linear network: model, whitened data and mode strengths.

Mode strength (Saxe et al. 2014, §2): with the target ``M = Σ_i s_i u_i v_iᵀ`` and the
network's end-to-end map ``W = W_L ⋯ W_1``, the strength of mode i is
``a_i = u_iᵀ W v_i``; we log it as the fraction learned ``a_i / s_i`` (``modes/m<i>``,
1-based). A null run (``drop_last``) keeps the direction of the last mode and its nominal
``s`` for the fraction, but its target has no such mode, so the fraction stays near 0.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from phasewatch.config import TrainConfig
from phasewatch.models import HookPoint
from phasewatch.phenomena.deep_linear.config import DeepLinearConfig


class DeepLinear(nn.Module):
    """``x ↦ W_L ⋯ W_1 x`` without biases or non-linearities; ``hook_hidden`` sees the
    first hidden layer's activations ``(batch, hidden)``."""

    def __init__(self, cfg: DeepLinearConfig, generator: torch.Generator) -> None:
        super().__init__()
        dims = [cfg.d] + [cfg.hidden] * (cfg.depth - 1) + [cfg.d]
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:])
        )
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
                layer.weight.mul_(cfg.init_scale)
        self.hook_hidden = HookPoint()

    def forward(self, x: Float[Tensor, "batch d"]) -> Float[Tensor, "batch d"]:
        """The network's output for inputs ``x``."""
        h = self.hook_hidden(self.layers[0](x))
        for layer in self.layers[1:]:
            h = layer(h)
        return h

    def end_to_end(self) -> Float[Tensor, "d d"]:
        """The product ``W_L ⋯ W_1`` (output × input)."""
        w = self.layers[0].weight
        for layer in self.layers[1:]:
            w = layer.weight @ w
        return w


def _orthogonal(n: int, g: torch.Generator) -> Float[Tensor, "n n"]:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()  # Haar-distributed


def whitened_inputs(n: int, d: int, g: torch.Generator) -> Float[Tensor, "n d"]:
    """``n`` inputs with empirical covariance exactly the identity: ``XᵀX / n = I``."""
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    return (q * n**0.5).float()


class DeepLinearTask:
    """Model plus data of one seed (the :class:`~phasewatch.training.task.Task` protocol).

    Attributes:
        model: the :class:`DeepLinear` network.
        u, v: ``(d, k)`` left and right singular vectors of the k nominal modes.
        s: ``(k,)`` nominal singular values (``cfg.modes``).
        target: ``(d, d)`` the target map (without the last mode for a null run).
    """

    def __init__(self, cfg: DeepLinearConfig, train: TrainConfig) -> None:
        g = torch.Generator().manual_seed(train.seed)
        k = len(cfg.modes)
        self.u, self.v = _orthogonal(cfg.d, g)[:, :k], _orthogonal(cfg.d, g)[:, :k]
        self.s = torch.tensor(cfg.modes)
        kept = len(cfg.target_modes)
        self.target = (self.u[:, :kept] * self.s[:kept]) @ self.v[:, :kept].T
        self.x = whitened_inputs(cfg.n_train, cfg.d, g)
        self.x_test = torch.randn(cfg.n_test, cfg.d, generator=g)
        self.y, self.y_test = self.x @ self.target.T, self.x_test @ self.target.T
        self.model = DeepLinear(cfg, g)

    def per_sample_loss(self, step: int) -> Float[Tensor, " n_train"]:
        """``½‖W x_j − y_j‖²`` per training input (squared error units, full batch)."""
        return 0.5 * (self.model(self.x) - self.y).pow(2).sum(-1)

    def train_loss(self, step: int) -> Float[Tensor, ""]:
        """The mean of :meth:`per_sample_loss` (full-batch gradient descent)."""
        return self.per_sample_loss(step).mean()

    def probe_inputs(self, step: int) -> Float[Tensor, "n_train d"]:
        """The training inputs (the probe batch of the signals)."""
        return self.x

    @torch.no_grad()
    def strengths(self) -> Float[Tensor, " k"]:
        """``a_i / s_i = u_iᵀ W v_i / s_i`` for every nominal mode (1 = learned)."""
        w = self.model.end_to_end()
        return torch.einsum("dk,de,ek->k", self.u, w, self.v) / self.s

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Train/test loss, the fraction learned of each mode (``modes/m1`` …), the last
        mode's (``modes/last``, the transition of the forecasting benchmark) and the number
        of modes past half (``modes/learned``)."""
        frac = self.strengths()
        out = {
            "train/loss": self.train_loss(0).item(),
            "test/loss": 0.5 * (self.model(self.x_test) - self.y_test).pow(2).sum(-1).mean().item(),
            "modes/last": frac[-1].item(),
            "modes/learned": float((frac > 0.5).sum()),
        }
        out |= {f"modes/m{i + 1}": f.item() for i, f in enumerate(frac)}
        return out
