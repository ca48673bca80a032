"""``phasewatch detect`` and ``phasewatch leadtime`` (thin shells over :mod:`phasewatch.detect`
and :func:`phasewatch.api.leadtime`).

Registered in :mod:`phasewatch.cli`; invalid settings raise
:class:`~phasewatch.errors.ConfigError`, which the CLI turns into one line and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

TARGET = typer.Option("test/acc", help="Metric whose onset signals should anticipate.")
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
    from phasewatch.detect.run import DetectConfig
    from phasewatch.detect.transitions import Target

    return Target(target, threshold, op, onset), DetectConfig(
        window_frac=window_frac, alpha=alpha, start_event=start_event, penalty=penalty
    )


def detect(
    path: Path = typer.Argument(..., help="A run directory, or a sweep directory of runs."),
    target: str = TARGET,
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

    tgt, cfg = _settings(target, threshold, op, onset, window_frac, alpha, start_event, penalty)
    if (path / "config.json").exists():
        block = detect_run(open_run(path), tgt, cfg)
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


def leadtime(
    sweep: Path = typer.Argument(..., help="A directory of runs (a sweep)."),
    target: str = TARGET,
    threshold: float = THRESHOLD,
    op: str = OP,
    onset: str = ONSET,
    window_frac: float = WINDOW,
    alpha: float = ALPHA,
    start_event: str = START,
    penalty: float = PENALTY,
    out: Path | None = typer.Option(None, help="Output directory (default SWEEP/leadtime)."),
) -> None:
    """The lead-time benchmark of a sweep: which signals warn before the onset.

    For every signal: hit rate, false-alarm rate, lead time and ROC of its causal early
    warnings, and its main change point against the onset; plus critical data size,
    temperature fits and the polymorph census. Writes leadtime.parquet/.md, roc.parquet,
    summary.json and report.html into SWEEP/leadtime.
    """
    from phasewatch import api

    tgt, cfg = _settings(target, threshold, op, onset, window_frac, alpha, start_event, penalty)
    report = api.leadtime(sweep, tgt, cfg, out=out, progress=True)
    data = json.loads((report.parent / "summary.json").read_text())
    typer.echo(data["summary"])
    for e in data["excluded"]:
        typer.echo(f"  excluded {e['run']}: {e['reason']}")
    typer.echo(f"report: {report}")
