"""``measure``'s batched path: the ``llc`` and ``hessian`` signals of many checkpoints at
once (:mod:`.batched`), the other checkpoint signals one checkpoint at a time.

Only models whose forward-backward pass is small (:data:`.batched.BATCH_MAX_MFLOP`, decided
on the run's first checkpoint) are batched: on larger ones batching does not pay and the
loop runs. Checkpoints go in groups that fit :data:`.batched.MEMORY_BUDGET`; a group is
batched only if the probe loss is the same function at each of its steps (checked: the
loss of one set of weights is equal at every step), else each checkpoint is batched over
its chains alone. A model that ``torch.func`` cannot batch (e.g. data-dependent Python
control flow, or weights it cannot swap) falls back to the loop with one warning per
signal, recorded in ``signals.json``. Results are those of the loop up to floating-point
rounding: each checkpoint gets the same generator (``step_generator(seed, step)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import groupby
from typing import Any

import torch

from phasewatch.signals import base
from phasewatch.signals.base import Measurement, Probe, settings_hash, step_generator
from phasewatch.signals.batched import (
    BATCH_MAX_MFLOP,
    batch_elements,
    forward_backward_mflop,
    hessian_batch,
    llc_batch,
)
from phasewatch.signals.history import run_jobs
from phasewatch.signals.llc import LLCSettings, measurement, with_step_down
from phasewatch.store import RunDir
from phasewatch.store.signals import StepResult

BATCHABLE = ("llc", "hessian")
"""Signals with a batched implementation."""

MakeProbe = Callable[..., Probe]  # runner.make_probe(task, step, previous, previous_step)
TaskFor = Callable[[Any, str], Any]  # runner._task_for(build_task, path)


def execute(todo: list[tuple], *, task_for: TaskFor, make_probe: MakeProbe) -> Iterator[StepResult]:
    """Measure each ``todo`` entry (``build_task, path, step, previous_step, jobs``, as for
    :func:`.runner.measure_step`); yield one result per step, a group at a time.

    Raises:
        Exception: whatever a signal raises one checkpoint at a time (the batched path
            falls back to it on any error of its own).
    """
    state = {"fallback": None}

    def key(entry: tuple) -> tuple:
        """Entries that can share a batch: same run, same batchable jobs."""
        return entry[1], tuple((n, tuple(sorted(f.items()))) for n, f in _split(entry[4])[0])

    for _, same in groupby(todo, key=key):
        same = list(same)
        size = None
        while same:
            size = size or _group_size(same[0], task_for, make_probe)
            yield from _measure_group(same[:size], state, task_for, make_probe)
            same = same[size:]


def _split(jobs: list[tuple[str, dict]]) -> tuple[list, list]:
    """``jobs`` as (batchable, the rest), each in their order."""
    return [j for j in jobs if j[0] in BATCHABLE], [j for j in jobs if j[0] not in BATCHABLE]


def _group_size(entry: tuple, task_for: TaskFor, make_probe: MakeProbe) -> int:
    """Checkpoints per group: what the memory budget allows for the entry's batchable jobs
    (LLC: one model copy per chain; Hessian: one with a retained gradient graph)."""
    build, path, step, _, jobs = entry
    batch, _ = _split(jobs)
    if not batch:
        return 64
    task = task_for(build, path)
    task.model.load_state_dict(RunDir(path).load_checkpoint(step))
    probe = make_probe(task, step)
    sizes = []
    for name, fields in batch:
        if name == "llc":
            sizes.append(batch_elements(probe) // base.get(name).settings(fields).chains)
        else:
            sizes.append(batch_elements(probe, double_backward=True))
    return max(1, min(sizes))


def _measure_group(
    group: list[tuple], state: dict, task_for: TaskFor, make_probe: MakeProbe
) -> Iterator[StepResult]:
    """One group's results: batchable jobs batched (or looped if they cannot be), then the
    other jobs of each checkpoint."""
    build, path, _, _, jobs = group[0]
    batch, _ = _split(jobs)
    run, task = RunDir(path), task_for(build, path)
    steps = [e[2] for e in group]
    results = {s: StepResult(s) for s in steps}
    states = []
    for s in steps:
        task.model.load_state_dict(run.load_checkpoint(s))
        states.append([p.detach().clone() for p in task.model.parameters() if p.requires_grad])
    if batch and "pays" not in state:  # decided once per run, on its first group
        state["pays"] = forward_backward_mflop(make_probe(task, steps[0])) <= BATCH_MAX_MFLOP
    reason = state["fallback"] or ("" if state.get("pays") else "batching does not pay")
    if batch and not reason:
        # a probe batch that changes with the step: batch each checkpoint's chains alone
        subs = [steps] if _same_loss(task, steps) else [[s] for s in steps]
        try:
            for sub in subs:
                idx = [steps.index(s) for s in sub]
                probe = make_probe(task, sub[0])
                _batched(probe, [states[i] for i in idx], sub, batch, results)
        except Exception as e:  # a model torch.func cannot batch: loop, and say so
            reason = f"torch.func cannot batch this model ({type(e).__name__}: {e})"
            state["fallback"] = reason
            results = {s: StepResult(s) for s in steps}
            _warn_fallback(results[steps[0]], batch, reason)
    for _, _, step, prev, jobs in group:
        todo = jobs if reason else _split(jobs)[1]
        task.model.load_state_dict(run.load_checkpoint(step))
        previous = run.load_checkpoint(prev) if prev is not None else None
        results[step].extend(
            run_jobs(make_probe(task, step, previous, prev), todo, step=step, kind="checkpoint")
        )
        yield results[step]


def _same_loss(task: Any, steps: Sequence[int]) -> bool:
    """Whether the task's probe loss at the model's current weights is equal at every
    step (the same probe batch, so one loss function serves all of them)."""
    with torch.no_grad():
        return len({float(task.train_loss(s)) for s in steps}) <= 1


def _warn_fallback(res: StepResult, batch: list, reason: str) -> None:
    """One warning per batchable signal: measured one checkpoint at a time, and why."""
    for name, fields in batch:
        h = settings_hash(name, base.get(name).settings(fields))
        msg = f"{name}: measured one checkpoint at a time: {reason}"
        res.warnings.append({"step": res.step, "signal": name, "settings": h, "message": msg})


def _batched(
    probe: Probe,
    states: list[list[torch.Tensor]],
    steps: list[int],
    batch: list[tuple[str, dict]],
    results: dict[int, StepResult],
) -> None:
    """Run the batchable jobs on all ``states`` and record them in ``results``."""
    for name, fields in batch:
        settings = base.get(name).settings(fields)
        gens = [step_generator(settings.seed, s) for s in steps]
        if name == "llc":
            out = _llc(probe, states, settings, gens)
        else:
            out = hessian_batch(probe, states, settings, generators=gens)
        for step, m in zip(steps, out):
            _record(results[step], name, settings, m)


def _llc(
    probe: Probe, states: list, settings: LLCSettings, gens: list[torch.Generator]
) -> list[Measurement]:
    """The ``llc`` signal of every checkpoint, with ε stepped down where all chains diverged."""

    def estimate(idx: list[int], s: LLCSettings) -> list:
        """:func:`.batched.llc_batch` on the checkpoints ``idx``."""
        return llc_batch(probe, [states[i] for i in idx], s, generators=[gens[i] for i in idx])

    return [measurement(r) for r in with_step_down(estimate, len(states), settings)]


def _record(out: StepResult, name: str, settings: Any, m: Measurement) -> None:
    """Add measurement ``m`` of signal ``name`` to ``out`` as :func:`.history.run_jobs` does."""
    h = settings_hash(name, settings)
    out.rows += [(out.step, k, float(v), name, h) for k, v in m.values.items()]
    for tname, df in m.tables.items():
        out.tables[tname] = df.assign(step=out.step, settings=h)
    out.warnings += [
        {"step": out.step, "signal": name, "settings": h, "message": w} for w in m.warnings
    ]
