"""Running signals at one step, and trajectory signals on a run's logs.

Two kinds of signal (:mod:`.base`, :mod:`.trajectory`) share one job loop,
:func:`run_jobs`: a ``checkpoint`` signal measures a :class:`~.base.Probe` (one checkpoint
in the model), a ``trajectory`` signal a :class:`~.trajectory.History` (what the run logged
up to the step). Either may raise :class:`~.trajectory.NotApplicable`; the loop records
that as one warning ``"<signal>: not applicable: <what it needs>"`` and goes on with the
other signals, never a traceback.

``phasewatch measure`` (:func:`phasewatch.signals.runner.measure`) first measures the
checkpoint signals (a trajectory signal's ``needs`` are added to them by
:func:`with_needs`), stores them, then reads the run store back as :class:`RunLogs` —
``metrics.parquet``, the per-step signal tables ``tables/<name>.parquet`` and the
checkpoints — and runs each trajectory signal at each selected step t, in ascending order,
on ``RunLogs.at(t)`` (everything after t dropped), sequentially in this process. The
Watcher builds the same :class:`~.trajectory.History` from what it has logged so far
(:mod:`phasewatch.watch.inline`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import torch

from phasewatch.errors import ConfigError
from phasewatch.signals import base
from phasewatch.signals.base import settings_hash, step_generator
from phasewatch.signals.trajectory import History, NotApplicable, truncate
from phasewatch.store import RunDir
from phasewatch.store.signals import SignalStore, StepResult

Jobs = list[tuple[str, dict[str, Any]]]
"""``(signal name, settings fields)`` pairs, run in order."""

_NOT_APPLICABLE = ": not applicable: "


def not_applicable(w: dict[str, Any]) -> bool:
    """Whether the warning ``w`` (a ``signals.json`` entry) says its signal did not apply."""
    return w["message"].startswith(f"{w['signal']}{_NOT_APPLICABLE}")


def with_needs(signals: Sequence[str]) -> list[str]:
    """``signals`` with each trajectory signal's ``needs`` inserted before it (once each).

    Raises:
        ConfigError: on an unknown signal (the message lists the available ones), or a
            ``needs`` entry that is not a checkpoint signal.
    """
    out: dict[str, None] = {}
    for name in signals:
        for need in base.get(name).needs:
            if base.get(need).kind != "checkpoint":
                raise ConfigError(
                    f"signal {name!r} needs {need!r}, a {base.get(need).kind} signal; "
                    "allowed: checkpoint signals"
                )
            out.setdefault(need)
        out.setdefault(name)
    return list(out)


def run_jobs(
    target: Any, jobs: Jobs, *, step: int, kind: str, errors: dict[str, str] | None = None
) -> StepResult:
    """Run ``jobs`` on ``target`` at ``step``: a probe for ``kind="checkpoint"``, a
    history for ``kind="trajectory"``.

    Args:
        target: a :class:`~.base.Probe` or a :class:`~.trajectory.History` at ``step``.
        jobs: ``(signal name, settings fields)`` pairs, all of ``kind``, run in order.
        step: the step the values belong to.
        kind: ``checkpoint`` or ``trajectory``.
        errors: if given, a signal that raises (other than :class:`NotApplicable`) is
            recorded as ``errors[name] = message`` and the others go on; if None, the
            exception propagates.

    Returns:
        The rows (step, key, value, signal, settings hash), tables and warnings; a signal
        that raised :class:`NotApplicable` has one warning and no rows.

    Raises:
        ConfigError: if a job's signal is not of ``kind``.
    """
    out = StepResult(step)
    for name, fields in jobs:
        spec = base.get(name)
        if spec.kind != kind:
            raise ConfigError(f"signal {name!r} is a {spec.kind} signal; allowed here: {kind}")
        settings = spec.settings(fields)
        h = settings_hash(name, settings)
        gen = step_generator(getattr(settings, "seed", 0), step)
        try:
            m = spec.run(target, settings, generator=gen)
        except NotApplicable as e:
            message = f"{name}{_NOT_APPLICABLE}{e}"
            out.warnings.append({"step": step, "signal": name, "settings": h, "message": message})
            continue
        except Exception as e:
            if errors is None:
                raise
            errors[name] = f"{type(e).__name__}: {e}"
            continue
        out.rows += [(step, k, float(v), name, h) for k, v in m.values.items()]
        for tname, df in m.tables.items():
            out.tables[tname] = df.assign(step=step, settings=h)
        out.warnings += [
            {"step": step, "signal": name, "settings": h, "message": w} for w in m.warnings
        ]
    return out


def _signal_tables(rd: RunDir) -> dict[str, pd.DataFrame]:
    """The run's per-step signal tables: ``tables/<name>.parquet`` with ``step`` and
    ``settings`` columns (report tables of other stages are left out)."""
    folder = rd.path / "tables"
    out = {}
    for f in sorted(folder.glob("*.parquet")) if folder.exists() else ():
        if {"step", "settings"} <= set(pq.read_schema(f).names):
            out[f.stem] = pd.read_parquet(f)
    return out


@dataclass(frozen=True)
class RunLogs:
    """Everything a run has logged, to be cut at a step by :meth:`at`.

    Attributes:
        metrics: tidy ``(step, key, value)`` metrics.
        tables: per-step signal tables by name (``per_sample_loss``: step, sample, loss).
        checkpoints: checkpoint steps, ascending.
        loader: ``loader(step) -> state dict`` (None: no checkpoints to load).
    """

    metrics: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    checkpoints: tuple[int, ...] = ()
    loader: Callable[[int], dict[str, torch.Tensor]] | None = None

    @classmethod
    def of_run(cls, rd: RunDir) -> RunLogs:
        """The logs in ``rd``'s store now: ``metrics.parquet``, the signal tables and the
        checkpoints.

        Raises:
            StoreError: if ``metrics.parquet`` is corrupted.
        """
        steps = tuple(rd.checkpoint_steps())
        return cls(rd.metrics(), _signal_tables(rd), steps, rd.load_checkpoint)

    def at(self, step: int) -> History:
        """The :class:`~.trajectory.History` at ``step`` (nothing logged after it)."""
        return truncate(step, self.metrics, self.tables, self.checkpoints, self.loader)


def trajectory_todo(
    store: SignalStore, resolved: dict[str, Any], steps: Sequence[int]
) -> list[tuple[int, Jobs]]:
    """``(step, jobs)`` for each of ``steps`` (ascending) with a trajectory signal in
    ``resolved`` (``{name: settings}``) not yet measured there at these settings."""
    todo = []
    for step in sorted(steps):
        jobs = [
            (n, dataclasses.asdict(s))
            for n, s in resolved.items()
            if base.get(n).kind == "trajectory" and not store.done(step, n, settings_hash(n, s))
        ]
        if jobs:
            todo.append((step, jobs))
    return todo


def measure_trajectories(rd: RunDir, todo: list[tuple[int, Jobs]]) -> Iterator[StepResult]:
    """Run each ``(step, jobs)`` of ``todo`` on the run's logs at that step, in order.

    The store is read when the first result is asked for, so a caller that stores the
    checkpoint signals before iterating gives the trajectory signals their tables.

    Raises:
        Exception: whatever a trajectory signal raises, except :class:`NotApplicable`
            (a warning in the result).
    """
    if not todo:
        return
    logs = RunLogs.of_run(rd)
    for step, jobs in todo:
        yield run_jobs(logs.at(step), jobs, step=step, kind="trajectory")
