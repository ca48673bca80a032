"""The contract between a phenomenon (or a watched run) and its consumers: the trainer and
the signals runner."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn


class Task(Protocol):
    """A built phenomenon instance: model plus data for one seed.

    ``train_loss(step)`` returns the scalar training loss (nats) of the current weights at
    update ``step``; a task that samples fresh data must derive it from (seed, step) alone
    (e.g. ``torch.Generator().manual_seed(seed * 1_000_003 + step)``) so that a resumed
    run sees the same batches. ``evaluate`` returns flat slash-keyed metrics
    (``train/acc``, ``test/loss``, ...).

    Optional methods read by :mod:`phasewatch.signals.runner`: ``per_sample_loss(step)``
    (batch,) nats whose mean is ``train_loss(step)`` (needed for ``grad/noise_scale``), and
    ``probe_inputs(step)``, the model inputs for hook-point activations (geometry signals).
    """

    model: nn.Module

    def train_loss(self, step: int) -> Tensor:
        """The training loss of the current weights at update ``step``.

        Args:
            step: the number of optimiser updates so far (0 before the first).

        Returns:
            A scalar tensor (shape ``()``), in nats, with a graph to the parameters.
        """
        ...

    def evaluate(self) -> dict[str, float]:
        """Metrics of the current weights, ``{"train/acc": ..., "test/loss": ...}``
        (losses in nats); called without gradients being needed."""
        ...
