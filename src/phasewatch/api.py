"""The Python API behind the CLI: run, analyse and report (tests call these directly)."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any

import pandas as pd

from phasewatch import phenomena
from phasewatch.config import TrainConfig, from_dict, override, to_dict
from phasewatch.detect.onsets import onsets
from phasewatch.errors import ConfigError, StoreError
from phasewatch.store import RunDir, create_run, open_run
from phasewatch.store.atomic import write_dir
from phasewatch.store.env import describe
from phasewatch.store.run import tidy
from phasewatch.training import train


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


def live_status(status: dict[str, Any]) -> str | None:
    """``running`` becomes ``interrupted`` when its process on this host is gone."""
    if status.get("status") != "running" or status.get("host") != socket.gethostname():
        return status.get("status")
    try:
        pid = int(status["pid"])
        os.kill(pid, 0)
    except (OSError, KeyError, TypeError, ValueError):
        return "interrupted"
    return "interrupted" if _zombie(pid) else "running"


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited but is not yet reaped by its parent (Linux ``/proc``; a
    SIGKILLed Ray worker stays a zombie until the raylet reaps it, and signal 0 still
    reaches it). False where ``/proc`` is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def list_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    """One summary dict per run directory found under ``root`` (recursively)."""
    root = Path(root)
    if not root.exists():
        return []
    out = []
    for cfg_file in sorted(root.rglob("config.json")):
        rd = RunDir(cfg_file.parent)
        try:
            cfg, status = rd.config(), rd.status()
        except StoreError:
            continue
        events = rd.events() if (rd.path / "events.json").exists() else {}
        row = {
            "run": str(rd.path),
            "phenomenon": cfg["phenomenon"],
            "preset": cfg.get("preset"),
            "seed": cfg["train"].get("seed"),
            "steps": status.get("step"),
            "status": live_status(status),
        }
        for name, ev in events.get("onsets", {}).items():
            row[f"onset/{name}"] = ev.get("step")
        out.append(row)
    return out
