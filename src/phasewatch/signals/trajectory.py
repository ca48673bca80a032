"""Trajectory signals: measurements at step t of what a run logged up to t.

A per-checkpoint signal (:mod:`.base`) sees one checkpoint. Several published precursors
of a transition are statistics of the *trajectory* instead: a window of per-sample losses
over recent checkpoints, the updates between checkpoints, the training-loss curve so far.
A trajectory signal is one decorated function of a :class:`History`::

    @trajectory("loss_spectrum", settings=LossSpectrumSettings)
    def loss_spectrum(history: History, settings, *, generator) -> dict[str, float]:
        curve = history.series("train/loss")      # steps <= history.step only
        ...

**Causal by construction**: a :class:`History` holds the metrics, the per-step tables of
other signals and the checkpoints at steps <= ``history.step`` only (loading a later
checkpoint raises), so a value at t cannot depend on anything logged after t. The signals
runner and the Watcher build the history; ``tests/unit/test_trajectory.py`` perturbs a
run's future and checks that no value up to t moves.

A trajectory signal that cannot apply to a run (no per-sample losses, too few
checkpoints so far) raises :class:`NotApplicable` with one line naming what it needs; the
runner and the Watcher record that line as a warning and go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import torch
from torch import Tensor

from phasewatch.signals.base import Measurement, NoSettings, Signal, register_signal


class NotApplicable(Exception):
    """A signal cannot be measured on this run (the message names what it needs)."""


@dataclass(frozen=True)
class History:
    """What a run logged up to and including ``step``.

    Attributes:
        step: the step t the signal is measured at (updates).
        metrics: tidy ``(step, key, value)`` rows of ``metrics.parquet`` with step <= t.
        tables: per-step tables of per-checkpoint signals (``per_sample_loss``: step,
            sample, loss), rows with step <= t.
        checkpoints: the checkpoint steps <= t, ascending.
        loader: ``loader(step) -> state dict`` of a checkpoint in ``checkpoints``.
    """

    step: int
    metrics: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    checkpoints: tuple[int, ...] = ()
    loader: Callable[[int], dict[str, Tensor]] | None = None

    def series(self, key: str) -> pd.Series:
        """The values of metric ``key`` indexed by step (ascending, steps <= t).

        Raises:
            NotApplicable: if the run has not logged ``key`` by step t.
        """
        m = self.metrics
        rows = m[(m["key"] == key) & (m["step"] <= self.step)]
        if rows.empty:
            raise NotApplicable(f"needs the metric {key!r}, not logged by step {self.step}")
        s = rows.drop_duplicates("step", keep="last").set_index("step")["value"]
        return s.sort_index().astype(float)

    def table(self, name: str) -> pd.DataFrame:
        """The per-step table ``name`` (rows with step <= t, even if the history was built
        with later rows).

        Raises:
            NotApplicable: if no such table was measured by step t (naming the signal that
                writes it).
        """
        df = self.tables.get(name)
        if df is not None:
            df = df[df["step"] <= self.step]
        if df is None or df.empty:
            raise NotApplicable(
                f"needs the table {name!r} (measure its signal on the checkpoints up to "
                f"step {self.step} first)"
            )
        return df

    def load(self, step: int) -> dict[str, Tensor]:
        """The state dict of checkpoint ``step`` (<= t).

        Raises:
            ValueError: for a step after t or without a checkpoint (causality guard).
            NotApplicable: if this history carries no checkpoints.
        """
        if self.loader is None:
            raise NotApplicable("needs the run's checkpoints")
        if step > self.step or step not in self.checkpoints:
            raise ValueError(f"no checkpoint at step {step} in the history up to {self.step}")
        return self.loader(step)


def truncate(
    step: int,
    metrics: pd.DataFrame,
    tables: dict[str, pd.DataFrame | None],
    checkpoints: Sequence[int],
    loader: Callable[[int], dict[str, Tensor]] | None,
) -> History:
    """The :class:`History` at ``step`` of a run's full logs (drops every row after it)."""
    kept = {n: t[t["step"] <= step] for n, t in tables.items() if t is not None}
    return History(
        step=step,
        metrics=metrics[metrics["step"] <= step],
        tables=kept,
        checkpoints=tuple(s for s in checkpoints if s <= step),
        loader=loader,
    )


class TrajectoryFn(Protocol):
    """``fn(history, settings, *, generator) -> {key: float} | Measurement``."""

    def __call__(
        self, history: History, settings: Any, *, generator: torch.Generator
    ) -> dict[str, float] | Measurement:
        """Measure ``history`` (logged up to ``history.step``) with ``settings``."""
        ...


def trajectory(
    name: str, *, settings: type = NoSettings, needs: tuple[str, ...] = ()
) -> Callable[[TrajectoryFn], TrajectoryFn]:
    """Decorator: register ``fn(history, settings, *, generator)`` as trajectory signal
    ``name``; ``needs`` lists the per-checkpoint signals whose tables it reads (the runner
    measures them first on the same checkpoints)."""

    def register(fn: TrajectoryFn) -> TrajectoryFn:
        """Add ``fn`` to the registry under ``name`` and return it unchanged."""
        register_signal(Signal(name, fn, settings, kind="trajectory", needs=needs))
        return fn

    return register
