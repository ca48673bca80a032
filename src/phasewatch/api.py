"""The Python API behind the CLI: run, analyse and report (tests call these directly)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from phasewatch import phenomena
from phasewatch.config import TrainConfig, from_dict, override, to_dict
from phasewatch.detect.onsets import onsets
from phasewatch.errors import ConfigError, StoreError
from phasewatch.signals import runner
from phasewatch.signals.calibrate import calibrate_run
from phasewatch.store import RunDir, create_run, open_run
from phasewatch.store.atomic import write_dir
from phasewatch.store.env import describe
from phasewatch.store.index import list_runs
from phasewatch.store.run import tidy
from phasewatch.training import train
from phasewatch.watch.probe import WATCHED, load_task

if TYPE_CHECKING:
    from phasewatch.detect.run import DetectConfig
    from phasewatch.detect.transitions import Target

__all__ = [
    "analyse",
    "build_task",
    "calibrate",
    "eval_base64bench",
    "finish_run",
    "leadtime",
    "list_runs",
    "measure",
    "resolve_config",
    "run",
    "train_run",
]


def resolve_config(
    phenomenon: str, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The full config dict (as stored in ``config.json``) of a new run.

    Raises:
        ConfigError: on an unknown phenomenon, preset or field, or an invalid value.
    """
    phen = phenomena.get(phenomenon)
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


def _configs(cfg: dict[str, Any]) -> tuple[Any, Any, TrainConfig]:
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
    progress: bool = True,
    report: bool = True,
) -> RunDir:
    """Train a phenomenon (or resume a run), analyse it and write its report.

    Args:
        phenomenon: a registered name (``grokking``).
        preset: a preset of that phenomenon (default: its default preset).
        overrides: config fields to change, e.g. ``{"p": 97, "lr": 3e-3}``.
        out: the directory in which the run folder is created.
        resume: an existing run folder to continue from its last checkpoint instead.

    Returns:
        The run directory.

    Raises:
        ConfigError: on invalid configuration (nothing is written).
        StoreError: on an unwritable ``out`` or a missing/corrupted ``resume`` run.
        RunFailed: if training diverged (the run is kept, marked ``failed``).
    """
    if resume is not None:
        rd = open_run(resume)
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        if given or preset:
            names = ", ".join(["preset"] * bool(preset) + sorted(given))
            raise ConfigError(f"--resume continues with the run's stored config; drop: {names}")
        cfg = rd.config()
    else:
        cfg = resolve_config(phenomenon, preset, overrides)
    phen, task_cfg, train_cfg = _configs(cfg)
    if resume is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = f"{phen.name}-{cfg['preset']}-s{train_cfg.seed}-{stamp}"
        rd = create_run(out, run_id, cfg, describe(train_cfg.device))
    elif rd.status().get("status") == "done":
        return rd
    return train_run(rd, resume=resume is not None, progress=progress, report=report)


def train_run(
    rd: RunDir, *, resume: bool = True, progress: bool = True, report: bool = True
) -> RunDir:
    """Train an existing run directory with its stored config (from its last checkpoint if
    ``resume`` and it has one), then :func:`finish_run` it.

    Raises:
        StoreError: on a corrupted config or checkpoint.
        RunFailed: if training diverged (the run is marked ``failed``).
    """
    phen, task_cfg, train_cfg = _configs(rd.config())
    task = phen.build(task_cfg, train_cfg)
    train(rd, task, train_cfg, resume=resume, progress=progress)
    return finish_run(rd, report=report)


def finish_run(rd: RunDir, *, report: bool = True) -> RunDir:
    """After training: whole-run analysis (:func:`analyse`), status ``done``, report."""
    analyse(rd)
    rd.set_status("done", _configs(rd.config())[2].steps)
    if report:
        from phasewatch.report import build_report

        build_report(rd)
    return rd


def analyse(rd: RunDir) -> dict[str, Any]:
    """Whole-run progress measures and onsets: updates ``metrics.parquet`` and ``events.json``."""
    phen, task_cfg, train_cfg = _configs(rd.config())
    steps = rd.checkpoint_steps()
    if not steps:
        raise StoreError(f"{rd.path}: no checkpoints to analyse")
    ckpts = ((s, rd.load_checkpoint(s)) for s in steps)
    found = phen.checkpoint_measures(task_cfg, train_cfg, ckpts, rd.load_checkpoint(steps[-1]))
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


def build_task(run: RunDir) -> Any:
    """The run's task rebuilt from ``config.json`` (weights are then loaded per checkpoint):
    a registered phenomenon's, or a watched run's model from its recorded factory.

    Raises:
        ConfigError: on a bad config, or a watched run whose model cannot be rebuilt
            (:func:`phasewatch.watch.probe.load_task`).
    """
    cfg = run.config()
    if cfg["phenomenon"] == WATCHED:
        return load_task(run)
    phen, task_cfg, train_cfg = _configs(cfg)
    return phen.build(task_cfg, train_cfg)


def measure(run: str | Path, signals: Sequence[str] = runner.DEFAULT_SIGNALS, **kwargs: Any):
    """Measure ``signals`` on a run's checkpoints (:func:`phasewatch.signals.runner.measure`
    with this module's :func:`build_task`); returns the run's whole signals table."""
    return runner.measure(run, signals, build_task=build_task, **kwargs)


def calibrate(run: str | Path, **kwargs: Any):
    """Sweep the LLC's SGLD settings on one checkpoint
    (:func:`phasewatch.signals.calibrate.calibrate_run` with this module's :func:`build_task`)."""
    return calibrate_run(run, build_task=build_task, **kwargs)


def leadtime(
    root: str | Path,
    target: Target,
    cfg: DetectConfig | None = None,
    *,
    out: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """The lead-time benchmark of a sweep directory
    (:func:`phasewatch.detect.leadtime.leadtime`), written by
    :func:`phasewatch.report.leadtime.write_outputs`.

    Writes into ``out``: ``leadtime.parquet``/``.md`` (one row per series × indicator:
    hit_rate, false_alarm_rate, lead_median/q25/q75 in steps, lead_frac_median, auc),
    ``roc.parquet``, ``change_point_leads.parquet``, ``runs.parquet``,
    ``window_sensitivity.parquet``, ``summary.json`` and ``report.html``.

    Args:
        root: a directory of runs (a sweep).
        target: the metric and threshold whose onset signals should anticipate.
        cfg: detection settings (None: the defaults).
        out: the output directory (default ``<root>/leadtime``).
        progress: show a progress bar while the runs are analysed.

    Returns:
        The path of ``report.html``.

    Raises:
        ConfigError: if the target is in no finished run (the message lists the keys).
        StoreError: if ``root`` holds no run.
    """
    from phasewatch.detect.leadtime import leadtime as benchmark
    from phasewatch.report.leadtime import write_outputs

    res = benchmark(root, target, cfg, progress=progress)
    dest = Path(out) if out else Path(root) / "leadtime"
    return write_outputs(dest, res.tables, res.runs, res.views, res.meta)


def eval_base64bench(model: Any, **kwargs: Any):
    """Run Base64Bench on ``model`` (:func:`phasewatch.evals.runner.run_base64bench`, same
    arguments) and add its figures, ``summary.md`` and ``report.html``
    (:func:`phasewatch.report.evals.write_eval_report`).

    Returns:
        The :class:`~phasewatch.evals.runner.EvalResult` (folder and tables).

    Raises:
        ConfigError: on invalid arguments or a model inspect cannot load (nothing written).
        StoreError: if ``out`` is not writable.
        RunFailed: if inspect's evaluation ends in error (the folder and log are kept).
    """
    from phasewatch.evals.runner import run_base64bench
    from phasewatch.report.evals import write_eval_report

    result = run_base64bench(model, **kwargs)
    write_eval_report(result.path, result.info, result.sweep, result.per_type)
    return result
