"""``phasewatch measure``: developmental signals on a run's checkpoints (a thin shell over
:mod:`phasewatch.signals.runner`).

Registered in :mod:`phasewatch.cli` as a command; errors are raised as
:class:`~phasewatch.errors.ConfigError` / :class:`~phasewatch.errors.StoreError` and turned
into one line and exit code 2 by the CLI's error handler.
"""

from __future__ import annotations

from pathlib import Path

import typer

from phasewatch.errors import ConfigError


def _names(signals: str) -> list[str]:
    names = [s.strip() for s in signals.split(",") if s.strip()]
    if not names:
        raise ConfigError(f"--signals={signals!r} is invalid; allowed: a comma-separated list")
    return names


def _llc_overrides(**values: float | int | None) -> dict[str, float | int]:
    return {k: v for k, v in values.items() if v is not None}


def _floats(**lists: str | None) -> dict[str, tuple[float, ...]]:
    out = {}
    for name, text in lists.items():
        if text is None:
            continue
        try:
            out[name] = tuple(float(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise ConfigError(
                f"--{name}={text!r} is invalid; allowed: comma-separated numbers"
            ) from None
    return out


def measure(
    run: Path = typer.Argument(..., help="A run directory."),
    signals: str = typer.Option(
        "llc,hessian,gradients,geometry",
        help="Comma-separated signals: llc, hessian, gradients, geometry.",
    ),
    every: int = typer.Option(
        5, help="Measure every N-th checkpoint (the last is always included)."
    ),
    workers: int = typer.Option(1, help="Parallel processes over checkpoints."),
    threads: int = typer.Option(
        1,
        help="Torch threads per worker (1 by default: many small SGLD steps gain little "
        "from more and spin-wait when the cores are shared).",
    ),
    calibrate: bool = typer.Option(
        False,
        "--calibrate",
        help="Sweep the LLC's SGLD step ε × localization γ on one checkpoint, save the traces "
        "and recommend a setting (instead of measuring).",
    ),
    step: int | None = typer.Option(
        None, help="With --calibrate: the checkpoint step to calibrate on (default: the last)."
    ),
    epsilon: float | None = typer.Option(
        None, help="LLC: SGLD step size ε.", rich_help_panel="LLC"
    ),
    gamma: float | None = typer.Option(None, help="LLC: localization γ.", rich_help_panel="LLC"),
    nbeta: float | None = typer.Option(
        None, help="LLC: inverse temperature nβ (default n / log n).", rich_help_panel="LLC"
    ),
    chains: int | None = typer.Option(None, help="LLC: SGLD chains.", rich_help_panel="LLC"),
    draws: int | None = typer.Option(
        None, help="LLC: draws per chain after burn-in.", rich_help_panel="LLC"
    ),
    epsilons: str | None = typer.Option(
        None,
        help="With --calibrate: the ε grid, comma-separated (default 1e-5,3e-5,1e-4,3e-4,1e-3).",
        rich_help_panel="LLC",
    ),
    gammas: str | None = typer.Option(
        None,
        help="With --calibrate: the γ grid, comma-separated (default 10,100,1000).",
        rich_help_panel="LLC",
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Measure LLC, Hessian, gradient and geometry signals into the run's signals.parquet.

    Checkpoints already measured with the same settings are skipped. Refresh the report
    with ``phasewatch report RUN`` to see the new section.
    """
    from phasewatch import api

    llc = _llc_overrides(epsilon=epsilon, gamma=gamma, nbeta=nbeta, chains=chains, draws=draws)
    if calibrate:
        grid = _llc_overrides(chains=chains, draws=draws)
        grid.update(_floats(epsilons=epsilons, gammas=gammas))
        summary, chosen = api.calibrate(
            run, step=step, grid=grid, threads=threads, progress=progress
        )
        cols = ["epsilon", "gamma", "nbeta", "llc_mean", "llc_std", "drift", "reason"]
        typer.echo(summary[cols].to_string(index=False))
        if chosen is None:
            typer.echo(
                "no grid point passed; widen the grid with --epsilons/--gammas or raise "
                "--draws (the rule: signals/calibrate.py)"
            )
        else:
            flags = " ".join(f"--{k} {v:g}" for k, v in chosen.items() if v is not None)
            typer.echo(f"recommended: {flags}\n  phasewatch measure {run} --signals llc {flags}")
        return
    names = _names(signals)
    settings = {"llc": llc} if llc else None
    if epsilons or gammas:
        raise ConfigError("--epsilons/--gammas are calibration grids: they need --calibrate")
    if settings and "llc" not in names:
        raise ConfigError(
            f"--epsilon/--gamma/--nbeta/--chains/--draws need llc in --signals={signals}"
        )
    table = api.measure(
        run,
        names,
        every=every,
        workers=workers,
        threads=threads,
        settings=settings,
        progress=progress,
    )
    steps = table["step"].nunique() if not table.empty else 0
    typer.echo(f"signals: {run / 'signals.parquet'} ({len(table)} rows, {steps} checkpoints)")
    typer.echo(f"refresh the report: phasewatch report {run}")
