"""``phasewatch measure`` and ``phasewatch calibrate``: developmental signals on a run's
checkpoints, and the LLC's SGLD calibration (thin shells over :func:`phasewatch.api.measure`
and :func:`phasewatch.api.calibrate`).

The LLC flags are generated from :class:`~phasewatch.signals.llc.LLCSettings` (``measure``)
and :class:`~phasewatch.signals.calibrate.LLCCalibration` (``calibrate``). Registered in
:mod:`phasewatch.cli.app` as commands; errors are raised as
:class:`~phasewatch.errors.ConfigError` / :class:`~phasewatch.errors.StoreError` and turned
into one line and exit code 2 by the CLI's error handler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from phasewatch.cli.flags import with_config_flags
from phasewatch.errors import ConfigError
from phasewatch.signals.calibrate import LLCCalibration
from phasewatch.signals.llc import LLCSettings

RUN = typer.Argument(..., help="A run directory.")
THREADS = typer.Option(
    1,
    help="Torch threads per worker (1 by default: many small SGLD steps gain little "
    "from more and spin-wait when the cores are shared).",
)
PROGRESS = typer.Option(True, help="Show a progress bar.")
FACTORY = typer.Option(
    None,
    help="Watched runs: the import string 'pkg.mod:build' you trust to rebuild the model; it "
    "must equal the run's recorded factory (a run folder's own code is never run without it "
    "or --trust-run-factory).",
)
TRUST = typer.Option(
    False, help="Watched runs: run the factory recorded in the run's config.json as is."
)
CALIBRATION_COLUMNS = ["epsilon", "gamma", "nbeta", "llc_mean", "llc_std", "drift", "reason"]


def _names(signals: str) -> list[str]:
    names = [s.strip() for s in signals.split(",") if s.strip()]
    if not names:
        raise ConfigError(f"--signals={signals!r} is invalid; allowed: a comma-separated list")
    return names


def _flags(values: dict[str, Any]) -> str:
    """``--name value`` for each entry (``burn_in`` → ``--burn-in``), None values left out."""
    return " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in values.items() if v is not None)


@with_config_flags(LLCSettings, defaults=True)
def measure(
    run: Path = RUN,
    signals: str = typer.Option(
        "llc,hessian,gradients,geometry",
        help="Comma-separated signals: llc, hessian, gradients, geometry.",
    ),
    every: int = typer.Option(
        5, help="Measure every N-th checkpoint (the last is always included)."
    ),
    until: int | None = typer.Option(
        None, help="Only checkpoints at steps <= UNTIL (default: all)."
    ),
    workers: int = typer.Option(1, help="Parallel processes over checkpoints."),
    threads: int = THREADS,
    progress: bool = PROGRESS,
    factory: str | None = FACTORY,
    trust_run_factory: bool = TRUST,
    batched: bool = typer.Option(
        True,
        help="With one worker, measure llc and hessian of many checkpoints at once "
        "(torch.func; same estimates up to rounding).",
    ),
    *,
    config: dict[str, Any],
) -> None:
    """Measure LLC, Hessian, gradient and geometry signals into the run's signals.parquet.

    Checkpoints already measured with the same settings are skipped. The LLCSettings flags
    set the llc signal over the preset's calibrated defaults (find them with ``phasewatch
    calibrate RUN``); if every chain diverges, ε is stepped down by itself (--step-down).
    Refresh the report with ``phasewatch report RUN`` to see the new section. A watched
    run's model is rebuilt only with --factory (equal to the recorded one) or
    --trust-run-factory.
    """
    from phasewatch import api

    names = _names(signals)
    if config and "llc" not in names:
        given = ", ".join(f"--{k.replace('_', '-')}" for k in config)
        raise ConfigError(f"{given} need llc in --signals={signals}")
    table = api.measure(
        run,
        names,
        every=every,
        until=until,
        workers=workers,
        threads=threads,
        settings={"llc": config} if config else None,
        progress=progress,
        factory=factory,
        trust_run_factory=trust_run_factory,
        batched=batched,
    )
    steps = table["step"].nunique() if not table.empty else 0
    typer.echo(f"signals: {run / 'signals.parquet'} ({len(table)} rows, {steps} checkpoints)")
    typer.echo(f"refresh the report: phasewatch report {run}")


@with_config_flags(LLCCalibration, defaults=True)
def calibrate(
    run: Path = RUN,
    step: int | None = typer.Option(
        None, help="The checkpoint step to calibrate on (default: the last)."
    ),
    threads: int = THREADS,
    progress: bool = PROGRESS,
    factory: str | None = FACTORY,
    trust_run_factory: bool = TRUST,
    *,
    config: dict[str, Any],
) -> None:
    """Sweep the LLC's SGLD step ε × localization γ on one checkpoint and recommend one.

    Prints one row per grid point (estimate, stationarity drift, why it fails the rule of
    signals/calibrate.py) and the recommended ``phasewatch measure`` flags. Writes
    tables/llc_calibration.parquet, tables/llc_calibration_traces.parquet and the
    recommendation in signals.json; ``phasewatch report RUN`` then shows the traces.
    """
    from phasewatch import api

    summary, chosen = api.calibrate(
        run,
        step=step,
        grid=config,
        threads=threads,
        progress=progress,
        factory=factory,
        trust_run_factory=trust_run_factory,
    )
    typer.echo(summary[CALIBRATION_COLUMNS].to_string(index=False))
    if chosen is None:
        typer.echo(
            "no grid point passed; widen the grid with --epsilons/--gammas or raise "
            "--draws (the rule: signals/calibrate.py)"
        )
    else:
        flags = _flags(chosen)
        vouch = f" --factory {factory}" if factory else " --trust-run-factory" * trust_run_factory
        typer.echo(f"recommended: {flags}\n  phasewatch measure {run} --signals llc {flags}{vouch}")
