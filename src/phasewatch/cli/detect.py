"""``phasewatch detect`` and ``phasewatch leadtime`` (thin shells over :mod:`phasewatch.detect`
and :func:`phasewatch.api.leadtime`).

Registered in :mod:`phasewatch.cli`; invalid settings raise
:class:`~phasewatch.errors.ConfigError`, which the CLI turns into one line and exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import typer

from phasewatch.config import require

TARGET = typer.Option(
    None,
    help="Metric whose onset signals should anticipate (default: the target a watched run "
    "recorded, with its threshold and op; else test/acc).",
)
THRESHOLD = typer.Option(0.99, help="Onset threshold of the target, in its units.")
OP = typer.Option(">=", help="'>=' (target rises to the threshold) or '<='.")
ONSET = typer.Option(
    "threshold", help="Onset definition used for lead times: threshold, max_slope, change_point."
)
WINDOW = typer.Option(0.05, help="Indicator window as a fraction of the planned run length.")
ALPHA = typer.Option(0.1, help="False-alarm rate the warning threshold is calibrated to.")
START = typer.Option("memorisation", help="Onset event at which the analysis starts.")
PENALTY = typer.Option(3.0, help="Change-point penalty c in c·σ²·ln n.")


def _settings(target, threshold, op, onset, window_frac, alpha, start_event, penalty):
    """(Target, DetectConfig) of the flags; ConfigError on a non-finite number or an empty
    target."""
    from phasewatch.detect.run import DetectConfig
    from phasewatch.detect.transitions import Target

    numbers = {"threshold": threshold, "window_frac": window_frac, "alpha": alpha}
    for name, value in (numbers | {"penalty": penalty}).items():
        require(math.isfinite(value), name, "a finite number (not nan or inf)", value)
    require(bool(target.strip()), "target", "a metric key (e.g. test/acc)", target)

    return Target(target, threshold, op, onset), DetectConfig(
        window_frac=window_frac, alpha=alpha, start_event=start_event, penalty=penalty
    )


def _recorded(path: Path) -> dict[str, Any] | None:
    """The target a watched run recorded (``config.json`` task.target), or None."""
    from phasewatch.detect.transitions import Target
    from phasewatch.store import open_run

    if not (path / "config.json").exists():
        return None
    rec = open_run(path).config().get("task", {}).get("target")
    fields = {f.name for f in dataclasses.fields(Target)}
    return dict(rec) if isinstance(rec, dict) and set(rec) <= fields and rec.get("key") else None


def detect(
    path: Path = typer.Argument(..., help="A run directory, or a sweep directory of runs."),
    target: str | None = TARGET,
    threshold: float = THRESHOLD,
    op: str = OP,
    onset: str = ONSET,
    window_frac: float = WINDOW,
    alpha: float = ALPHA,
    start_event: str = START,
    penalty: float = PENALTY,
) -> None:
    """Onsets, change points and causal early warnings of a run or a sweep.

    Writes events.json 'detect', tables/ews.parquet (rolling variance, lag-1
    autocorrelation, their Kendall τ) and tables/change_points.parquet. On a sweep
    directory, thresholds are calibrated on its null runs (runs that never reach the
    target); on a single run, on AR(1) surrogates of each series' burn-in.
    """
    from phasewatch.detect.run import detect as detect_run
    from phasewatch.detect.sweep import detect_sweep
    from phasewatch.store import open_run

    rec = _recorded(path) if target is None else None
    if rec is not None:  # the Watcher's target, as it was given
        target, threshold, op = rec["key"], rec.get("threshold", threshold), rec.get("op", op)
        onset = rec.get("onset", onset)
    target = "test/acc" if target is None else target
    tgt, cfg = _settings(target, threshold, op, onset, window_frac, alpha, start_event, penalty)
    if (path / "config.json").exists():
        rd = open_run(path)
        _check_start(_onsets(rd.events()), start_event)
        block = detect_run(rd, tgt, cfg)
        step = block["target"]["step"]
        warned = {
            k: v[i]["step"]
            for k, v in block["warnings"].items()
            for i in ("ac1", "variance")
            if v[i]["step"] is not None
        }
        typer.echo(
            f"{path}: onset ({onset}) of {target} {op} {threshold:g}: "
            f"{'never' if step is None else f'step {step:,}'}; "
            f"{len(warned)} early warning(s) over {len(block['warnings'])} series"
        )
        return
    sweep = detect_sweep(path, tgt, cfg, progress=True)
    typer.echo(
        f"{path}: {len(sweep.runs)} runs ({len(sweep.transitions)} transition, "
        f"{len(sweep.nulls)} null), {len(sweep.excluded)} excluded"
    )
    for e in sweep.excluded:
        typer.echo(f"  excluded {e['run']}: {e['reason']}")


def _onsets(events: object) -> set[str]:
    """The onset names of an ``events.json`` dict (none if it is damaged)."""
    found = events.get("onsets") if isinstance(events, dict) else None
    return set(found) if isinstance(found, dict) else set()


def _sweep_onsets(path: Path) -> set[str]:
    """The onset names of every run under ``path`` (damaged ``events.json`` skipped)."""
    names: set[str] = set()
    for f in path.rglob("events.json") if path.is_dir() else []:
        try:
            names |= _onsets(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return names


def _check_start(names: set[str], start_event: str) -> None:
    """An explicitly chosen ``--start-event`` must be one of the onsets ``names`` of the
    run(s) (the default may be absent, and '' names none: the analysis then starts at step 0).

    Raises:
        ConfigError: listing the onsets.
    """
    names = sorted(names)
    allowed = ", ".join(names) or "none (this run has no onsets; leave --start-event out)"
    require(
        start_event in (START.default, "") or start_event in names,
        "start_event",
        allowed,
        start_event,
    )


def leadtime(
    sweep: Path = typer.Argument(..., help="A directory of runs (a sweep)."),
    target: str = typer.Option("test/acc", help="Metric whose onset signals should anticipate."),
    threshold: float = THRESHOLD,
    op: str = OP,
    onset: str = ONSET,
    window_frac: float = WINDOW,
    alpha: float = ALPHA,
    start_event: str = START,
    penalty: float = PENALTY,
    out: str | None = typer.Option(None, help="Output directory (default SWEEP/leadtime)."),
) -> None:
    """The lead-time benchmark of a sweep: which signals warn before the onset.

    For every signal: hit rate, false-alarm rate, lead time and ROC of its causal early
    warnings, and its main change point against the onset; plus critical data size,
    temperature fits and the polymorph census. Writes leadtime.parquet/.md, roc.parquet,
    summary.json and report.html into SWEEP/leadtime.
    """
    from phasewatch import api

    tgt, cfg = _settings(target, threshold, op, onset, window_frac, alpha, start_event, penalty)
    require(out is None or bool(out.strip()), "--out", "a directory path (not empty)", out)
    _check_start(_sweep_onsets(sweep), start_event)
    report = api.leadtime(sweep, tgt, cfg, out=None if out is None else Path(out), progress=True)
    data = json.loads((report.parent / "summary.json").read_text())
    typer.echo(data["summary"])
    for e in data["excluded"]:
        typer.echo(f"  excluded {e['run']}: {e['reason']}")
    typer.echo(f"report: {report}")
