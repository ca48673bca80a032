"""Training and measuring runs: resolve a config, train (or resume, restart), analyse,
rebuild a run's task and model, measure signals and calibrate the LLC."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from phasewatch import phenomena
from phasewatch.config import (
    TrainConfig,
    estimate_bytes,
    from_dict,
    override,
    require,
    require_memory,
    to_dict,
)
from phasewatch.detect.onsets import onsets
from phasewatch.errors import ConfigError, StoreError
from phasewatch.signals import runner
from phasewatch.signals.calibrate import calibrate_run
from phasewatch.store import RunDir, create_run, open_run
from phasewatch.store.atomic import write_dir
from phasewatch.store.env import describe
from phasewatch.store.lock import run_lock
from phasewatch.store.run import tidy
from phasewatch.training import train
from phasewatch.watch.probe import WATCHED, load_task

MetricsHook = Callable[[RunDir, int, dict[str, float]], Any]  # the trainer's on_metrics


def resolve_config(
    phenomenon: str, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The full config dict (as stored in ``config.json``) of a new run.

    Raises:
        ConfigError: on an unknown phenomenon, preset or field, or an invalid value.
    """
    phen = phenomena.get(phenomenon)
    require(preset is None or bool(preset.strip()), "preset", ", ".join(phen.presets), preset)
    pre = phenomena.base.preset(phen, preset)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    fields = {f.name for f in dataclasses.fields(phen.config_cls)} | {
        f.name for f in dataclasses.fields(TrainConfig)
    }
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown}; allowed: {', '.join(sorted(fields))}")
    return {
        "phenomenon": phen.name,
        "preset": preset or phen.default_preset,
        "task": to_dict(override(pre.task, overrides)),
        "train": to_dict(override(pre.train, overrides)),
    }


def devices() -> list[str]:
    """The torch devices available in this process: ``cpu``, ``cuda:N`` …, ``mps``."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def check_runnable(task_cfg: Any, train_cfg: TrainConfig, *, copies: int = 1) -> None:
    """Check, before anything is written, what the frozen config cannot: that its device
    exists in this torch and that the run's estimated peak memory
    (:func:`~phasewatch.config.estimate_bytes`, ``copies`` seeds batched) fits in RAM.

    Raises:
        ConfigError: naming the device and the available ones, or giving the estimate.
    """
    device = train_cfg.device
    require(device in devices() or device == "cpu:0", "device", ", ".join(devices()), device)
    require_memory("model and data sizes", estimate_bytes(task_cfg, copies=copies))


def configs(cfg: dict[str, Any]) -> tuple[Any, Any, TrainConfig]:
    """``(phenomenon, task config, TrainConfig)`` of a stored ``config.json`` dict.

    Raises:
        ConfigError: on an unknown phenomenon, an unknown field or an invalid value.
    """
    phen = phenomena.get(cfg["phenomenon"])
    task = from_dict(phen.config_cls, cfg["task"], where="config.json task")
    return phen, task, from_dict(TrainConfig, cfg["train"], where="config.json train")


def run(
    phenomenon: str,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    out: str | Path = "runs",
    resume: str | Path | None = None,
    restart: str | Path | None = None,
    progress: bool = True,
    report: bool = True,
    on_metrics: MetricsHook | None = None,
) -> RunDir:
    """Train a phenomenon (or resume or restart a run), analyse it and write its report.

    The run folder is locked while it trains (``.run.lock``, :func:`run_lock`), so a
    second process cannot train the same run.

    Args:
        phenomenon: a registered name (``grokking``).
        preset: a preset of that phenomenon (default: its default preset).
        overrides: config fields to change, e.g. ``{"p": 97, "lr": 3e-3}``.
        out: the directory in which the run folder is created.
        resume: an existing run folder of ``phenomenon`` to continue from its last
            checkpoint (model and optimiser state) instead.
        restart: an existing run folder of ``phenomenon`` to train again from step 0 with
            its stored config, in the same folder (its checkpoints, metrics, events,
            signals and report are deleted first).
        on_metrics: called as ``on_metrics(run_dir, step, metrics)`` at each eval step
            while it trains (the CLI's ``--log-to`` loggers, :mod:`phasewatch.watch.loggers`).

    Returns:
        The run directory.

    Raises:
        ConfigError: on invalid configuration (nothing is written), config flags or a
            different phenomenon with ``resume``/``restart``, or a run another process is
            training.
        StoreError: on an unwritable ``out``, a missing/corrupted ``resume`` run, or one
            that cannot be continued (no checkpoints or optimiser state; the message says
            to use ``--restart``).
        RunFailed: if training diverged (the run is kept, marked ``failed``).
    """
    if resume is None and restart is None:
        cfg = resolve_config(phenomenon, preset, overrides)
        phen, task_cfg, train_cfg = configs(cfg)
        check_runnable(task_cfg, train_cfg)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = f"{phen.name}-{cfg['preset']}-s{train_cfg.seed}-{stamp}"
        rd = create_run(out, run_id, cfg, describe(train_cfg.device, train_cfg.num_threads))
        with run_lock(rd.path):
            return train_run(rd, resume=False, progress=progress, report=report, hook=on_metrics)
    rd = _existing(phenomenon, preset, overrides, resume, restart)
    check_runnable(*configs(rd.config())[1:])
    if restart is not None:
        with run_lock(rd.path):
            rd.clear_training()
            rd.set_status("running", 0)
            return train_run(rd, resume=False, progress=progress, report=report, hook=on_metrics)
    return _resume(rd, phenomenon, progress=progress, report=report, hook=on_metrics)


def _resume(
    rd: RunDir, phenomenon: str, *, progress: bool, report: bool, hook: MetricsHook | None = None
) -> RunDir:
    """Continue ``rd`` from its last checkpoint under its lock (a finished run is returned
    as it is).

    Raises:
        StoreError: if it cannot be continued (the message says to use ``--restart``).
    """
    if rd.status().get("status") == "done":
        return rd
    with run_lock(rd.path):
        rd.remove_temporary()
        missing = rd.resume_problem()
        if missing is not None:
            raise StoreError(
                f"{rd.path}: cannot resume: {missing}; start it over from step 0 with: "
                f"phasewatch run {phenomenon} --restart {rd.path}"
            )
        return train_run(rd, resume=True, progress=progress, report=report, hook=hook)


def _existing(
    phenomenon: str,
    preset: str | None,
    overrides: dict[str, Any] | None,
    resume: str | Path | None,
    restart: str | Path | None,
) -> RunDir:
    """The run to resume or restart, once its stored config is checked: no config flags,
    the same phenomenon, a config that still validates.

    Raises:
        ConfigError: on both ``resume`` and ``restart``, config flags, another phenomenon
            or an invalid stored config.
        StoreError: if the run is missing or its files are corrupted.
    """
    flag = "--resume" if restart is None else "--restart"
    if resume is not None and restart is not None:
        raise ConfigError("--resume and --restart exclude each other; allowed: one of them")
    rd = open_run(resume if restart is None else restart)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if given or preset:
        names = ", ".join(["preset"] * bool(preset) + sorted(given))
        raise ConfigError(f"{flag} uses the run's stored config; drop: {names}")
    recorded = rd.config()["phenomenon"]
    if recorded != phenomenon:
        how = (
            f"phasewatch run {recorded} {flag} {rd.path}"
            if recorded in phenomena.names()
            else "a run of a registered phenomenon"
        )
        raise ConfigError(f"{rd.path} is a {recorded!r} run, not {phenomenon!r}; allowed: {how}")
    configs(rd.config())  # the stored config still validates
    return rd


def train_run(
    rd: RunDir,
    *,
    resume: bool = True,
    progress: bool = True,
    report: bool = True,
    hook: MetricsHook | None = None,
) -> RunDir:
    """Train an existing run directory with its stored config (from its last checkpoint if
    ``resume`` and it has one), then :func:`finish_run` it; ``hook`` is the trainer's
    ``on_metrics`` (:func:`run`).

    Raises:
        StoreError: on a corrupted config or checkpoint.
        RunFailed: if training diverged (the run is marked ``failed``).
    """
    phen, task_cfg, train_cfg = configs(rd.config())
    task = phen.build(task_cfg, train_cfg)
    train(rd, task, train_cfg, resume=resume, progress=progress, on_metrics=hook)
    return finish_run(rd, report=report, progress=progress)


def finish_run(rd: RunDir, *, report: bool = True, progress: bool = False) -> RunDir:
    """After training: whole-run analysis (:func:`analyse`, with a progress bar over the
    checkpoints if ``progress``), status ``done``, report."""
    analyse(rd, progress=progress)
    rd.set_status("done", configs(rd.config())[2].steps)
    if report:
        from phasewatch.report import build_report

        build_report(rd)
    return rd


def analyse(rd: RunDir, *, progress: bool = False) -> dict[str, Any]:
    """Whole-run progress measures and onsets: updates ``metrics.parquet`` and ``events.json``
    (``progress``: a bar over the checkpoints the phenomenon reads)."""
    from phasewatch.training.progress import progress_bar

    phen, task_cfg, train_cfg = configs(rd.config())
    steps = rd.checkpoint_steps()
    if not steps:
        raise StoreError(f"{rd.path}: no checkpoints to analyse")
    with progress_bar(progress) as bar:
        job = bar.add_task("analysing checkpoints", total=len(steps))

        def ckpts() -> Iterator[tuple[int, dict[str, Any]]]:
            for s in steps:
                yield s, rd.load_checkpoint(s)
                bar.advance(job)

        final = rd.load_checkpoint(steps[-1])
        found = phen.checkpoint_measures(task_cfg, train_cfg, ckpts(), final)
        bar.update(job, completed=len(steps))  # done, whichever checkpoints it read
    metrics = rd.metrics()
    new = tidy(found.rows)
    if not new.empty:
        metrics = metrics[~metrics["key"].isin(set(new["key"]))]
        metrics = pd.concat([metrics, new])
        rd.write_metrics(metrics)
    events = dict(rd.events())
    events.update({"onsets": onsets(metrics, phen.onsets), **found.events})
    rd.write_events(events)
    for name, table in found.tables.items():
        rd.write_table(name, table)
    for name, write in found.exports.items():
        write_dir(rd.path / name, write)
    return events


def build_task(run: RunDir, *, factory: str | None = None, trust_run_factory: bool = False) -> Any:
    """The run's task rebuilt from ``config.json`` (weights are then loaded per checkpoint):
    a registered phenomenon's, or a watched run's model from its recorded factory, which is
    imported only if the user vouches for it (``factory`` equal to the recorded import
    string, or ``trust_run_factory``).

    Raises:
        ConfigError: on a bad config, ``factory`` for a run that is not watched, or a
            watched run whose model cannot or may not be rebuilt
            (:func:`phasewatch.watch.probe.load_task`).
    """
    cfg = run.config()
    if cfg["phenomenon"] == WATCHED:
        return load_task(run, factory=factory, trust_run_factory=trust_run_factory)
    if factory is not None:
        raise ConfigError(
            f"--factory applies to watched runs only; {run.path} is a "
            f"{cfg['phenomenon']!r} run (rebuilt from its phenomenon)"
        )
    phen, task_cfg, train_cfg = configs(cfg)
    return phen.build(task_cfg, train_cfg)


def _builder(factory: str | None, trust_run_factory: bool) -> runner.BuildTask:
    """:func:`build_task` with the user's factory permission bound (picklable, for worker
    processes)."""
    if factory is None and not trust_run_factory:
        return build_task
    return functools.partial(build_task, factory=factory, trust_run_factory=trust_run_factory)


def measure(
    run: str | Path,
    signals: Sequence[str] = runner.DEFAULT_SIGNALS,
    *,
    factory: str | None = None,
    trust_run_factory: bool = False,
    **kwargs: Any,
):
    """Measure ``signals`` on a run's checkpoints (:func:`phasewatch.signals.runner.measure`
    with this module's :func:`build_task`); returns the run's whole signals table.

    ``factory`` / ``trust_run_factory``: for a watched run, the permission to run its
    recorded factory (see :func:`build_task`). The run's preset's calibrated signal
    settings (:func:`preset_signals`) are the defaults under ``settings``.
    """
    build = _builder(factory, trust_run_factory)
    kwargs.setdefault("defaults", preset_signals(run))
    return runner.measure(run, signals, build_task=build, **kwargs)


def preset_signals(run: str | Path) -> dict[str, dict[str, Any]]:
    """The signal settings calibrated for the run's preset (``Preset.signals``); {} for a
    watched run, an unknown preset or a run that cannot be read (``measure`` reports it)."""
    try:
        cfg = open_run(run).config()
        return phenomena.get(cfg["phenomenon"]).presets[cfg["preset"]].signals
    except (StoreError, ConfigError, KeyError, TypeError, AttributeError):
        return {}


def calibrate(
    run: str | Path,
    *,
    factory: str | None = None,
    trust_run_factory: bool = False,
    **kwargs: Any,
):
    """Sweep the LLC's SGLD settings on one checkpoint
    (:func:`phasewatch.signals.calibrate.calibrate_run` with this module's :func:`build_task`;
    ``factory`` / ``trust_run_factory`` as in :func:`measure`)."""
    return calibrate_run(run, build_task=_builder(factory, trust_run_factory), **kwargs)


def load_model(run: str | Path, step: int | None = None) -> Any:
    """The run's model (phasewatch's own, with its hook points) holding the weights of a
    checkpoint, in eval mode on the run's device; a base64 ladder gives its members as an
    ``nn.ModuleDict``.

    Args:
        run: a run directory.
        step: a step with a checkpoint; None = the last one.

    Raises:
        StoreError: if the run is missing or has no checkpoint.
        ConfigError: if ``step`` has no checkpoint or the run cannot be rebuilt.
        MissingDependency: if the phenomenon needs an extra that is not installed.
    """
    from phasewatch.store.checkpoints import checkpoint_step

    rd = open_run(run)
    step = checkpoint_step(rd, step)
    task = build_task(rd)
    task.model.load_state_dict(rd.load_checkpoint(step))
    return task.model.eval()
