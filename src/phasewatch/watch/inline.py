"""Signals measured inline: on the live model, inside the training step.

Measuring never changes training: the model is put in eval mode, torch's RNG state is
forked (CPU and the model's CUDA devices) and grad is enabled while the signals run, and
all of it is restored afterwards; the signals never touch ``.grad``. The background
alternative, on copies of the weights, is :mod:`phasewatch.watch.worker`.

Trajectory signals (:mod:`phasewatch.signals.trajectory`) are measured here too, after the
step's checkpoint signals, on a :class:`~phasewatch.signals.trajectory.History` of what the
Watcher has logged so far: its metrics rows up to the step, the tables of the signals
measured inline (``per_sample_loss`` of ``samples``, ...) and the checkpoints it has
saved (the one of the current step is saved after the signals run, so it is not in the
history yet; background signals' tables are not either). A signal that is not applicable
(yet) gives a warning, never an error, and is measured again at the next step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import torch
from torch import nn

from phasewatch.signals import base, runner
from phasewatch.signals.base import Probe
from phasewatch.signals.history import run_jobs
from phasewatch.signals.trajectory import History, truncate
from phasewatch.store.run import RunDir, tidy
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
        logs: ``logs() -> (metric rows, run dir)``: the Watcher's ``(step, key, value)``
            rows so far and its run directory (for checkpoints), read by trajectory
            signals; None: they see no metrics and no checkpoints.

    Attributes:
        prev: ``(step, weights)`` at the last step ``gradients`` was measured, for its
            ``grad/cos_prev`` (None before).
        tables: the per-step tables of the signals measured inline so far, by name (kept
            at the steps where trajectory signals are measured, the same cadence).
    """

    def __init__(
        self,
        model: nn.Module,
        task: WatchedTask | None,
        logs: Callable[[], tuple[list[tuple[int, str, float]], RunDir | None]] | None = None,
    ) -> None:
        self.model, self.task, self.logs = model, task, logs
        self.prev: tuple[int, dict[str, torch.Tensor]] | None = None
        self.tables: dict[str, list[pd.DataFrame]] = {}

    def probe(self, step: int) -> Probe:
        """The runner's probe of the model's current weights at ``step``."""
        prev = self.prev
        if self.task is None:  # geometry only: it reads the weights
            return Probe(self.model, loss=lambda: torch.zeros(()), n=1, step=step)
        return runner.make_probe(self.task, step, prev[1] if prev else None, prev and prev[0])

    def measure(self, step: int, jobs: Jobs) -> tuple[runner.StepResult, dict[str, str]]:
        """Run ``jobs`` (signal name, settings fields) on the model in isolation: the
        checkpoint signals on the live model, then the trajectory signals on
        :meth:`history` (which includes the tables the checkpoint signals just wrote).

        Returns:
            The runner's result (a not-applicable signal: a warning, no rows) and
            ``{signal: error message}`` of the signals that raised.
        """
        errors: dict[str, str] = {}
        now = [(n, f) for n, f in jobs if base.get(n).kind != "trajectory"]
        later = [(n, f) for n, f in jobs if base.get(n).kind == "trajectory"]
        res = runner.StepResult(step)
        with isolated(self.model):
            if now:
                res = runner.measure_probe(self.probe(step), now, errors=errors)
            if later:  # tables are kept only for trajectory signals, which read them
                for name, df in res.tables.items():
                    self.tables.setdefault(name, []).append(df)
                history = self.history(step)
                res.extend(run_jobs(history, later, step=step, kind="trajectory", errors=errors))
        if any(n == "gradients" for n, _ in jobs) and "gradients" not in errors:
            self.prev = (step, weights(self.model))
        return res, errors

    def history(self, step: int) -> History:
        """What the Watcher has logged up to ``step`` (module docstring)."""
        rows, rd = self.logs() if self.logs is not None else ([], None)
        tables = {n: pd.concat(dfs, ignore_index=True) for n, dfs in self.tables.items()}
        steps: Any = rd.checkpoint_steps() if rd is not None else ()
        loader = rd.load_checkpoint if rd is not None else None
        return truncate(step, tidy(rows), tables, steps, loader)
