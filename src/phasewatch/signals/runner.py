"""Measure signals on a run's checkpoints and store them (``signals.parquet``).

The caller hands the runner a ``build_task(run) -> Task`` callable (``phasewatch.api``
rebuilds phenomena and watched runs); the runner loads each selected checkpoint into
``task.model`` and hands the signals a :class:`~phasewatch.signals.base.Probe` whose loss
is ``task.train_loss(step)``. It never imports a phenomenon.

Store layout added to a run (:mod:`phasewatch.store.signals`): ``signals.parquet``,
``signals.json``, ``tables/<llc_traces|hessian_density>.parquet`` (calibrating the LLC on
a run is :func:`phasewatch.signals.calibrate.calibrate_run`).

A checkpoint already measured by a signal with the same settings hash is skipped, so an
interrupted or repeated ``measure`` only does the missing work. ``llc`` and ``hessian`` of
many checkpoints are measured at once (:mod:`.batchrun`) unless ``batched=False``.

Optional task capabilities (duck-typed, beyond :class:`~phasewatch.training.task.Task`):
    ``per_sample_loss(step) -> Tensor (n,)``: per-sample losses whose mean is
        ``train_loss(step)``; gives n and enables ``grad/noise_scale``.
    ``probe_inputs(step) -> Tensor | tuple``: the probe batch's model inputs; gives n and
        residual-stream geometry through ``run_with_cache``.
Without them, n is the leading (batch) dimension of the first hook point that fires during
``train_loss(step)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from itertools import chain
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from phasewatch.config import require
from phasewatch.errors import ConfigError, StoreError
from phasewatch.models import HookPoint
from phasewatch.signals import base, batchrun
from phasewatch.signals.base import Probe, settings_hash
from phasewatch.signals.history import (
    measure_trajectories,
    not_applicable,
    run_jobs,
    trajectory_todo,
    with_needs,
)
from phasewatch.signals.selection import select_steps
from phasewatch.store import RunDir, open_run
from phasewatch.store.signals import SignalStore, StepResult
from phasewatch.training.progress import progress_bar

BuildTask = Callable[[RunDir], Any]
"""``build_task(run) -> Task``: the run's task rebuilt from its config (a module-level
function, so that worker processes can receive it)."""

DEFAULT_SIGNALS = ("llc", "hessian", "gradients", "geometry")


# ---- building probes --------------------------------------------------------------------
def _hook_batch_size(task: Any, step: int) -> int | None:
    sizes: list[int] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[0]))
        for m in task.model.modules()
        if isinstance(m, HookPoint)
    ]
    try:
        with torch.no_grad():
            task.train_loss(step)
    finally:
        for h in handles:
            h.remove()
    return sizes[0] if sizes else None


def _optional_fields(task: Any, step: int) -> dict[str, Any]:
    """``Probe.logits/outputs`` as ``(rows=None) -> Tensor`` and ``Probe.targets`` as
    ``() -> Tensor`` from the task's ``probe_logits/outputs/targets(step)``; a task method
    with a ``rows`` parameter computes only those rows, otherwise the full output is sliced."""

    def rows_fn(fn: Any) -> Any:
        """``fn(step)`` as a ``(rows=None) -> Tensor`` closure (None if not callable)."""
        if not callable(fn):
            return None
        if "rows" in inspect.signature(fn).parameters:
            return lambda rows=None: fn(step, rows=rows)
        return lambda rows=None: fn(step) if rows is None else fn(step)[rows]

    targets = getattr(task, "probe_targets", None)
    return {
        "logits": rows_fn(getattr(task, "probe_logits", None)),
        "outputs": rows_fn(getattr(task, "probe_outputs", None)),
        "targets": (lambda: targets(step)) if callable(targets) else None,
    }


def make_probe(
    task: Any, step: int, previous: dict[str, torch.Tensor] | None = None, previous_step=None
) -> Probe:
    """A probe of ``task`` at ``step`` (its model must hold that checkpoint's weights).

    Besides the capabilities in the module docstring, a task may give
    ``probe_logits(step) -> Tensor (rows, classes)``, ``probe_targets(step)`` (labels or
    regression targets) and ``probe_outputs(step) -> Tensor (rows, k)`` (a regression
    model's outputs): they become ``Probe.logits``, ``.targets`` and ``.outputs``
    (:func:`_optional_fields`).

    Raises:
        ConfigError: if the probe size n cannot be determined (see module docstring).
    """
    per_sample = getattr(task, "per_sample_loss", None)
    ps = (lambda: per_sample(step)) if callable(per_sample) else None
    get_inputs = getattr(task, "probe_inputs", None)
    inputs = get_inputs(step) if callable(get_inputs) else None
    if inputs is not None and not isinstance(inputs, tuple):
        inputs = (inputs,)
    optional = _optional_fields(task, step)
    if getattr(task, "probe_size", None):
        n = int(task.probe_size)
    elif ps is not None:
        with torch.no_grad():
            n = int(ps().shape[0])
    elif inputs is not None:
        n = int(inputs[0].shape[0])
    else:
        n = _hook_batch_size(task, step)
    if n is None:
        raise ConfigError(
            f"cannot tell the probe batch size n of {type(task).__name__}: give the task a "
            "per_sample_loss(step) or probe_inputs(step) method"
        )
    return Probe(
        model=task.model,
        loss=lambda: task.train_loss(step),
        n=n,
        step=step,
        per_sample_loss=ps,
        inputs=inputs,
        previous=previous,
        previous_step=previous_step,
        **optional,
    )


# ---- one checkpoint ---------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _task_for(build_task: BuildTask, path: str) -> Any:
    """The task of run ``path``, built once per process and reused across checkpoints."""
    if _WORKER.get("path") != path or _WORKER.get("build") is not build_task:
        _WORKER.update(path=path, build=build_task, task=build_task(RunDir(path)))
    return _WORKER["task"]


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads, then restore the previous count.

    Measuring defaults to one thread: with two OpenMP threads on a 2-core machine that other
    jobs share, the LLC's many small SGLD steps spin-wait (measured here: 97 s of CPU for
    two checkpoints with 2 threads under load vs 10 s with 1).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def measure_step(
    build_task: BuildTask,
    path: str,
    step: int,
    previous_step: int | None,
    jobs: list[tuple[str, dict[str, Any]]],
) -> StepResult:
    """Run ``jobs`` (signal name, settings fields) on checkpoint ``step`` of run ``path``."""
    run = RunDir(path)
    task = _task_for(build_task, path)
    task.model.load_state_dict(run.load_checkpoint(step))
    prev = run.load_checkpoint(previous_step) if previous_step is not None else None
    probe = make_probe(task, step, prev, previous_step)
    return measure_probe(probe, jobs)


def measure_probe(
    probe: Probe, jobs: list[tuple[str, dict[str, Any]]], *, errors: dict[str, str] | None = None
) -> StepResult:
    """Run ``jobs`` (signal name, settings fields) on ``probe`` at ``probe.step``.

    Args:
        probe: the model at the step, its loss and probe size.
        jobs: ``(signal name, settings fields)`` pairs of checkpoint signals, run in order.
        errors: if given, a signal that raises is recorded as ``errors[name] = message``
            and the others go on; if None, the exception propagates. A signal that raises
            :class:`~phasewatch.signals.trajectory.NotApplicable` is neither: it gets one
            warning ``"<signal>: not applicable: <what it needs>"``.

    Returns:
        The rows (step, key, value, signal, settings hash), tables and warnings.

    Raises:
        ConfigError: if a job is a trajectory signal (see :mod:`.history`).
    """
    return run_jobs(probe, jobs, step=probe.step, kind="checkpoint", errors=errors)


# ---- the whole run ----------------------------------------------------------------------
def resolve(signals: Sequence[str], settings: dict | None, defaults: dict | None = None) -> dict:
    """Each signal's settings object, ``{name: settings}``, from overrides ``settings`` on
    per-run ``defaults`` (``{name: {field: value}}``, e.g. a preset's calibrated LLC); a
    trajectory signal's ``needs`` are added before it (:func:`.history.with_needs`).

    Raises:
        ConfigError: on an unknown signal, bad settings, or settings for a signal not in
            ``signals`` or their needs.
    """
    specs = [base.get(n) for n in with_needs(signals)]
    settings = dict(settings or {})
    extra = sorted(set(settings) - {s.name for s in specs})
    if extra:
        raise ConfigError(
            f"settings given for signal(s) not measured: {', '.join(extra)}; "
            f"allowed: {', '.join(s.name for s in specs)}"
        )
    for name, fields in (defaults or {}).items():
        if name in with_needs(signals) and isinstance(settings.get(name) or {}, dict):
            settings[name] = {**fields, **(settings.get(name) or {})}
    return {s.name: s.settings(settings.get(s.name)) for s in specs}


def measure(
    run: str | Path,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    *,
    every: int = 1,
    until: int | None = None,
    workers: int = 1,
    threads: int = 1,
    settings: dict[str, Any] | None = None,
    steps: Iterable[int] | None = None,
    progress: bool = True,
    on_warning: Callable[[dict[str, Any]], None] | None = None,
    batched: bool = True,
    defaults: dict[str, dict[str, Any]] | None = None,
    build_task: BuildTask,
) -> pd.DataFrame:
    """Measure ``signals`` on the run's checkpoints and merge them into ``signals.parquet``.

    Checkpoint signals (with trajectory signals' ``needs``) first, per checkpoint; then
    each trajectory signal at each selected step t, ascending, on the run's logs up to t
    (:mod:`.history`). A signal that does not apply gives a warning ``"<signal>: not
    applicable: <what it needs>"`` (printed once per signal); the others go on.

    Args:
        run: a run directory.
        build_task: ``build_task(run) -> Task`` (see :data:`BuildTask`).
        signals: registered signal names (``llc``, ``hessian``, ``gradients``, ``geometry``,
            trajectory signals such as ``loss_spectrum``).
        every: measure every ``every``-th checkpoint (always including the last).
        until: only checkpoints at steps <= ``until`` (None: all).
        workers: parallel processes over checkpoints; 1 runs in this process.
        threads: torch threads per worker (default 1; see :func:`torch_threads`).
        settings: per-signal settings, ``{"llc": LLCSettings(...) or {"epsilon": 1e-5}}``.
        steps: measure exactly these checkpoint steps instead of ``every``.
        progress: show a progress bar.
        on_warning: optional ``callable(dict)`` for each warning (default: print it).
        batched: with one worker, measure ``llc``/``hessian`` of many checkpoints at once
            (:mod:`.batchrun`; same estimates up to rounding); False: one at a time.
        defaults: per-signal default fields under ``settings`` (a preset's calibration).

    Returns:
        The run's whole ``signals.parquet`` table after the merge.

    Raises:
        ConfigError: on an unknown signal (the message lists the available ones), bad
            settings, ``every``/``workers`` < 1, a ``steps`` entry without checkpoint, or
            a task that ``build_task`` cannot rebuild.
        StoreError: if the run is missing or corrupted, or has no checkpoints.
    """
    for name, value in (("every", every), ("workers", workers), ("threads", threads)):
        require(value >= 1, name, "an integer >= 1", value)
    resolved = resolve(signals, settings, defaults)
    rd = open_run(run)
    _task_for(build_task, str(rd.path))  # fail before anything is written
    store, todo, chosen = _missing(rd, resolved, (every, until), steps, build_task)
    later = trajectory_todo(store, resolved, chosen)
    # lazy: the run's logs are read after every checkpoint result is stored
    results = chain(_execute(todo, workers, threads, batched), measure_trajectories(rd, later))
    _store_all(store, results, len(todo) + len(later), progress, on_warning or _printer())
    return store.table.reset_index(drop=True)


def _store_all(store: SignalStore, results: Iterable[StepResult], total: int, progress: bool,
               warn: Callable[[dict[str, Any]], None]) -> None:  # fmt: skip
    """Store each result as it comes, hand on its warnings, advance the bar."""
    with progress_bar(progress) as bar:
        tid = bar.add_task("measure", total=total)
        for res in results:
            store.add(res)
            for w in res.warnings:
                warn(w)
            bar.advance(tid)


def _printer() -> Callable[[dict[str, Any]], None]:
    """The default ``on_warning``: print each warning, a not-applicable one once per signal."""
    told: set[str] = set()

    def show(w: dict[str, Any]) -> None:
        """Print ``w`` as one line (unless its signal was already reported not applicable)."""
        if not_applicable(w):
            if w["signal"] in told:
                return
            told.add(w["signal"])
        print(f"warning: step {w['step']}: {w['message']}")

    return show


def _missing(
    rd: RunDir,
    resolved: dict[str, Any],
    every: tuple[int, int | None],
    steps: Iterable[int] | None,
    build_task: BuildTask,
) -> tuple[SignalStore, list[tuple], list[int]]:
    """The run's signal store, the work it lacks — :func:`measure_step` arguments for
    every checkpoint selected by ``every = (every, until)`` with a checkpoint signal not
    yet measured at these settings — and the selected steps.

    Raises:
        StoreError: if the run has no checkpoints.
        ConfigError: if a step in ``steps`` has no checkpoint.
    """
    all_steps = rd.checkpoint_steps()
    if not all_steps:
        raise StoreError(
            f"{rd.path}: no checkpoints to measure (checkpoints/step_*.safetensors); "
            "train the run first or check --checkpoint-every"
        )
    fields = {n: dataclasses.asdict(s) for n, s in resolved.items()}
    hashes = {n: settings_hash(n, s) for n, s in resolved.items()}
    store = SignalStore(rd, resolved, hashes)
    checkpoint = [n for n in resolved if base.get(n).kind == "checkpoint"]
    todo = []
    chosen = select_steps(all_steps, every[0], steps, every[1])
    for step in chosen:
        jobs = [(n, fields[n]) for n in checkpoint if not store.done(step, n, hashes[n])]
        if jobs:
            i = all_steps.index(step)
            todo.append((build_task, str(rd.path), step, all_steps[i - 1] if i else None, jobs))
    return store, todo, chosen


def _execute(todo: list[tuple], workers: int, threads: int, batched: bool) -> Iterator[StepResult]:
    """Run :func:`measure_step` on each ``todo`` entry (batched: :func:`.batchrun.execute`),
    in this process or in a pool of ``workers`` processes; yield results as they finish."""
    if batched and workers == 1 and any(n in batchrun.BATCHABLE for e in todo for n, _ in e[4]):
        with torch_threads(threads):
            yield from batchrun.execute(todo, task_for=_task_for, make_probe=make_probe)
        return
    if workers == 1 or len(todo) <= 1:
        for args in todo:
            with torch_threads(threads):
                res = measure_step(*args)
            yield res
        return
    # fork where available (workers inherit the imported modules and work from any
    # launcher; each runs its own thread count, no re-entered OpenMP pool); else spawn
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(
        min(workers, len(todo)), mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    ) as ex:
        futures = [ex.submit(measure_step, *args) for args in todo]
        for f in as_completed(futures):
            yield f.result()
