"""One seed of a grokking run: the model, the data, the float64 loss and the measures of
every eval step (Nanda et al. 2023, arXiv 2301.05217).

The phenomenon (presets, whole-run findings) is :mod:`phasewatch.phenomena.grokking`.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from phasewatch.config import TrainConfig
from phasewatch.models import Transformer
from phasewatch.phenomena.grokking import fourier
from phasewatch.phenomena.grokking.config import GrokkingConfig
from phasewatch.phenomena.grokking.data import make_data
from phasewatch.phenomena.grokking.model import readout_logits


def cross_entropy_f64(
    logits: Float[Tensor, "batch p"], labels: Int[Tensor, " batch"]
) -> Float[Tensor, ""]:
    """Mean cross-entropy in nats, computed in float64 as in Nanda et al.'s code."""
    logp = logits.double().log_softmax(-1)
    return -logp.gather(-1, labels[:, None]).mean()


class GrokkingTask:
    """One seed of a grokking run: the model, the data and its metrics.

    Args:
        cfg: the task and model.
        train: the training loop's config (its ``seed`` and ``device`` are read); the seed
            draws both the split and the initialisation.
    """

    def __init__(self, cfg: GrokkingConfig, train: TrainConfig) -> None:
        self.cfg = cfg
        dev = torch.device(train.device)
        self.data = make_data(cfg, train.seed)
        g = torch.Generator().manual_seed(train.seed)
        self.model = Transformer(cfg.transformer(), generator=g).to(dev)
        d = self.data
        self.a, self.b, self.labels = d.a.to(dev), d.b.to(dev), d.labels.to(dev)
        self.train_idx = d.train.nonzero()[:, 0].to(dev)
        self.train_mask = d.train.to(dev)
        self.tokens = d.tokens().to(dev)

    def logits(self, idx: Int[Tensor, " n"] | None = None) -> Float[Tensor, "n p"]:
        """Read-out logits of the pairs ``idx`` (all pairs if None), by
        :func:`~.model.readout_logits` if ``cfg.fast`` else the full forward pass."""
        a, b = (self.a, self.b) if idx is None else (self.a[idx], self.b[idx])
        if self.cfg.fast:
            return readout_logits(self.model, a, b)
        tokens = self.tokens if idx is None else self.tokens[idx]
        return self.model(tokens)[:, -1]

    def train_loss(self, step: int) -> Float[Tensor, ""]:
        """Full-batch cross-entropy (nats, float64) on the training pairs (any ``step``)."""
        return cross_entropy_f64(self.logits(self.train_idx), self.labels[self.train_idx])

    def train_batch(self, step: int) -> tuple[Int[Tensor, " n"], Float[Tensor, " n"]]:
        """For batched seeds: this member's training pairs and a 0/1 weight per pair
        (float64; zero-padded rows get weight 0 when members' train fractions differ)."""
        return self.train_idx, torch.ones(len(self.train_idx), dtype=torch.float64)

    def loss_on(self, idx: Int[Tensor, " n"], weight: Float[Tensor, " n"]) -> Float[Tensor, ""]:
        """Weighted mean cross-entropy (nats, float64) of pairs ``idx``; with unit weights
        the same as :meth:`train_loss` up to float rounding."""
        logp = self.logits(idx).double().log_softmax(-1)
        nll = -logp.gather(-1, self.labels[idx][:, None])[:, 0]
        return (nll * weight).sum() / weight.sum()

    def per_sample_loss(self, step: int) -> Float[Tensor, " n_train"]:
        """Cross-entropy (nats) per training pair, float64; its mean is ``train_loss(step)``."""
        logits = self.logits(self.train_idx).double()
        return -logits.log_softmax(-1).gather(-1, self.labels[self.train_idx, None])[:, 0]

    def probe_inputs(self, step: int) -> Int[Tensor, "n_train 3"]:
        """The ``a b =`` tokens of the training pairs, for hook-point activations."""
        return self.tokens[self.train_idx]

    def probe_logits(
        self, step: int, rows: Int[Tensor, " m"] | None = None
    ) -> Float[Tensor, "rows p"]:
        """Read-out logits (answer position) of the training pairs, the probe batch of
        ``train_loss`` (only its ``rows`` if given); differentiable (``logit_scale``,
        ``ntk_alignment``)."""
        idx = self.train_idx if rows is None else self.train_idx[rows.to(self.train_idx.device)]
        return self.logits(idx)

    def probe_targets(self, step: int) -> Int[Tensor, " n_train"]:
        """The answers ``(a op b) mod p`` of the training pairs (rows of :meth:`probe_logits`)."""
        return self.labels[self.train_idx]

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """The metrics of one eval step: ``train|test/loss`` (nats) and ``/acc``, the total
        weight norm and the Fourier sparsity of ``W_E`` (Gini and per-frequency norms;
        Nanda et al. 2023, §5.1)."""
        logits = self.logits()
        out: dict[str, float] = {}
        for split, mask in (("train", self.train_mask), ("test", ~self.train_mask)):
            lg, y = logits[mask], self.labels[mask]
            out[f"{split}/loss"] = float(cross_entropy_f64(lg, y))
            out[f"{split}/acc"] = float((lg.argmax(-1) == y).double().mean())
        out["weights/total_norm"] = float(
            torch.sqrt(sum(p.detach().double().pow(2).sum() for p in self.model.parameters()))
        )
        W_E = self.model.embed.W_E[: self.cfg.p].detach().double().cpu()
        out["fourier/embed_gini"] = fourier.embed_fourier_gini(W_E)
        for k, v in enumerate(fourier.frequency_norms(W_E).tolist(), start=1):
            out[f"fourier/embed_norm/{k}"] = v
        return out
