"""``phasewatch import tensorboard|csv``: runs logged elsewhere as ordinary run directories
(thin shells over :mod:`phasewatch.store.importers`).

Registered in :mod:`phasewatch.cli.app` as ``import``. Bad input exits 2 with one line
naming the file and the problem, and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import typer

from phasewatch.cli.errors import handle_errors

import_app = typer.Typer(
    help="Import runs logged with other tools (TensorBoard, CSV exports of W&B or MLflow) "
    "as run directories that detect, leadtime, forecast and report read.",
    no_args_is_help=True,
)

OUT = typer.Option(..., help="The run directory to create (a folder of runs for several).")
ONSET = typer.Option(
    [], help="A known onset NAME=STEP for events.json (repeatable), e.g. memorisation=200."
)
REPLACE = typer.Option(False, help="Overwrite --out if it exists.")


def _echo(imported, source: Path) -> None:
    for item in imported:
        typer.echo(f"{item.summary()} (from {source})")


@import_app.command("tensorboard")
@handle_errors
def tensorboard(
    logdir: Path = typer.Argument(..., help="A TensorBoard log directory (or one event file)."),
    out: Path = OUT,
    onset: list[str] = ONSET,
    replace: bool = REPLACE,
) -> None:
    """One run per directory holding event files; scalar tags become slash keys."""
    from phasewatch.store.importers import import_tensorboard, parse_onsets

    _echo(import_tensorboard(logdir, out, onsets=parse_onsets(onset), replace=replace), logdir)


@import_app.command("csv")
@handle_errors
def csv(
    file: Path = typer.Argument(..., help="A tidy (step,key,value) or wide (step column) CSV."),
    out: Path = OUT,
    onset: list[str] = ONSET,
    replace: bool = REPLACE,
) -> None:
    """One run from a tidy (MLflow) or wide (W&B) CSV of metrics.

    Tidy: columns step, key, value (MLflow's metric history).
    Wide: a step column (step, _step, Step, global_step), one column per key (W&B's export).
    """
    from phasewatch.store.importers import import_csv, parse_onsets

    _echo([import_csv(file, out, onsets=parse_onsets(onset), replace=replace)], file)
