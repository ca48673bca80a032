"""One seed of an Omnigrok run: the MLP, the digits split and the metrics of every eval
step. The data is scikit-learn's bundled 8×8 digits (no download: the images ship inside
the scikit-learn wheel); MNIST itself cannot be fetched on an offline machine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from phasewatch.config import TrainConfig
from phasewatch.errors import MissingDependency
from phasewatch.models import HookPoint
from phasewatch.phenomena.omnigrok.config import N_TEST, OmnigrokConfig


def load_digits_tensors() -> tuple[Float[Tensor, "1797 64"], Int[Tensor, " 1797"]]:
    """The 1,797 digits as pixel intensities in [0, 1] and their labels 0-9.

    Raises:
        MissingDependency: without scikit-learn (``pip install scikit-learn``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise MissingDependency("omnigrok needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    return torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)


class MLP(nn.Module):
    """``depth`` linear layers with ReLU between them; hook points ``hook_hidden<i>``
    on each hidden layer's activations ``(batch, width)``."""

    def __init__(self, cfg: OmnigrokConfig) -> None:
        super().__init__()
        dims = [64] + [cfg.width] * (cfg.depth - 1) + [10]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.hooks = nn.ModuleList(HookPoint() for _ in self.layers[:-1])
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(cfg.alpha)

    def forward(self, x: Float[Tensor, "batch 64"]) -> Float[Tensor, "batch 10"]:
        """Logits (or MSE outputs) of the ten classes."""
        for layer, hook in zip(self.layers[:-1], self.hooks):
            x = hook(torch.relu(layer(x)))
        return self.layers[-1](x)


class OmnigrokTask:
    """Model plus data of one seed (the :class:`~phasewatch.training.task.Task` protocol).

    The seed draws the permutation of the images (the first ``n_train`` train, the last
    797 test) and the initialisation. Inputs are centred on the training mean.
    """

    def __init__(self, cfg: OmnigrokConfig, train: TrainConfig) -> None:
        self.cfg = cfg
        x, y = load_digits_tensors()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(train.seed))
        tr, te = perm[: cfg.n_train], perm[-N_TEST:]
        x = x - x[tr].mean(0)
        dev = torch.device(train.device)
        self.x, self.y = x[tr].to(dev), y[tr].to(dev)
        self.x_test, self.y_test = x[te].to(dev), y[te].to(dev)
        torch.manual_seed(train.seed)
        self.model = MLP(cfg).to(dev)

    def _losses(self, out: Float[Tensor, "n 10"], y: Int[Tensor, " n"]) -> Float[Tensor, " n"]:
        if self.cfg.loss == "mse":
            return (out - F.one_hot(y, 10).to(out.dtype)).pow(2).sum(-1)
        return F.cross_entropy(out, y, reduction="none")

    def per_sample_loss(self, step: int) -> Float[Tensor, " n_train"]:
        """Each training image's loss (squared error summed over classes, or nats)."""
        return self._losses(self.model(self.x), self.y)

    def train_loss(self, step: int) -> Float[Tensor, ""]:
        """The full-batch mean of :meth:`per_sample_loss`."""
        return self.per_sample_loss(step).mean()

    def probe_inputs(self, step: int) -> Float[Tensor, "n_train 64"]:
        """The training images (the probe batch of the signals)."""
        return self.x

    def probe_logits(self, step: int) -> Float[Tensor, "n_train 10"]:
        """The model's ten outputs on the training images."""
        return self.model(self.x)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Train/test loss and accuracy, and the parameters' L2 norm
        (``weights/total_norm``: Omnigrok's explanatory variable)."""
        out = {}
        for split, x, y in (("train", self.x, self.y), ("test", self.x_test, self.y_test)):
            pred = self.model(x)
            out[f"{split}/loss"] = self._losses(pred, y).mean().item()
            out[f"{split}/acc"] = (pred.argmax(-1) == y).float().mean().item()
        sq = sum(p.double().pow(2).sum() for p in self.model.parameters())
        out["weights/total_norm"] = float(sq) ** 0.5
        return out
