"""Signals measured inline: on the live model, inside the training step.

Measuring never changes training: the model is put in eval mode, torch's RNG state is
forked (CPU and the model's CUDA devices) and grad is enabled while the signals run, and
all of it is restored afterwards; the signals never touch ``.grad``. The background
alternative, on copies of the weights, is :mod:`phasewatch.watch.worker`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from phasewatch.signals import runner
from phasewatch.signals.base import Probe
from phasewatch.watch.probe import WatchedTask
from phasewatch.watch.worker import Jobs, weights


@contextlib.contextmanager
def isolated(model: nn.Module) -> Iterator[None]:
    """Eval mode, a forked RNG and grad enabled while signals run on ``model``; all restored."""
    modes = [(m, m.training) for m in model.modules()]
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
    model.eval()
    try:
        with torch.random.fork_rng(devices=cuda), torch.enable_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


class Inline:
    """Measure signals on the live ``model`` at a training step.

    Args:
        model: the user's model (read only).
        task: the probe batch and loss (None: only ``geometry``, which reads the weights).

    Attributes:
        prev: ``(step, weights)`` at the last step ``gradients`` was measured, for its
            ``grad/cos_prev`` (None before).
    """

    def __init__(self, model: nn.Module, task: WatchedTask | None) -> None:
        self.model, self.task = model, task
        self.prev: tuple[int, dict[str, torch.Tensor]] | None = None

    def probe(self, step: int) -> Probe:
        """The runner's probe of the model's current weights at ``step``."""
        prev = self.prev
        if self.task is None:  # geometry only: it reads the weights
            return Probe(self.model, loss=lambda: torch.zeros(()), n=1, step=step)
        return runner.make_probe(self.task, step, prev[1] if prev else None, prev and prev[0])

    def measure(self, step: int, jobs: Jobs) -> tuple[runner.StepResult, dict[str, str]]:
        """Run ``jobs`` (signal name, settings fields) on the model in isolation.

        Returns:
            The runner's result and ``{signal: error message}`` of the signals that raised.
        """
        errors: dict[str, str] = {}
        with isolated(self.model):
            res = runner.measure_probe(self.probe(step), jobs, errors=errors)
        if any(n == "gradients" for n, _ in jobs) and "gradients" not in errors:
            self.prev = (step, weights(self.model))
        return res, errors
