"""The ``phasewatch`` command line: a thin shell over :mod:`phasewatch.api`.

``phasewatch run <phenomenon>`` takes one flag per config field (the phenomenon's
config and :class:`~phasewatch.config.TrainConfig`), generated from the dataclasses
(:mod:`phasewatch.cli.flags`) so that the CLI mirrors the configs; ``measure`` and
``calibrate`` generate their LLC flags the same way. Bad input exits with code 2 and one
line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from phasewatch import api, phenomena
from phasewatch.cli.errors import handle_errors
from phasewatch.cli.flags import with_config_flags
from phasewatch.config import TrainConfig

app = typer.Typer(
    help="phasewatch: reproduce, measure and forecast emergence in neural networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
run_app = typer.Typer(
    help="Train a phenomenon (one subcommand per phenomenon).", no_args_is_help=True
)
runs_app = typer.Typer(help="List and query run directories.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(runs_app, name="runs")
console = Console()


def _make_run_command(name: str):
    phen = phenomena.get(name)
    presets = ", ".join(f"{k} ({v.description})" for k, v in phen.presets.items())

    @with_config_flags(phen.config_cls, TrainConfig)
    def command(
        *,
        preset: str | None = typer.Option(
            None, help=f"Preset; default {phen.default_preset}. Allowed: {presets}"
        ),
        out: Path = typer.Option(Path("runs"), help="Directory for run folders."),
        resume: Path | None = typer.Option(
            None, help="Continue this run from its last checkpoint (uses its stored config)."
        ),
        restart: Path | None = typer.Option(
            None,
            help="Train this run again from step 0 in its folder with its stored config "
            "(deletes its checkpoints, metrics, events, signals and report first).",
        ),
        progress: bool = typer.Option(True, help="Show a progress bar."),
        config: dict[str, Any],
    ) -> None:
        """Train the phenomenon (help: its module docstring's first paragraph, set below)."""
        rd = api.run(
            name, preset, config, out=out, resume=resume, restart=restart, progress=progress
        )
        from phasewatch.report.summary import summarise

        console.print(summarise(rd.events(), rd.status()))
        console.print(f"run: {rd.path}\nreport: {rd.path / 'report.html'}")

    command.__doc__ = (sys.modules[type(phen).__module__].__doc__ or "").split("\n\n")[0]
    return handle_errors(command)


for _name in phenomena.names():
    run_app.command(_name)(_make_run_command(_name))


# Commands that live in their own modules (kept out of this file to keep it thin).
from phasewatch.cli.detect import detect as _detect  # noqa: E402
from phasewatch.cli.detect import leadtime as _leadtime  # noqa: E402
from phasewatch.cli.eval import eval_app, mirage  # noqa: E402
from phasewatch.cli.export import export as _export  # noqa: E402
from phasewatch.cli.forecast import forecast_app  # noqa: E402
from phasewatch.cli.imports import import_app  # noqa: E402
from phasewatch.cli.measure import calibrate as _calibrate  # noqa: E402
from phasewatch.cli.measure import measure as _measure  # noqa: E402
from phasewatch.cli.superposition import superposition_app  # noqa: E402
from phasewatch.cli.sweep import CONTEXT as _SWEEP_CONTEXT  # noqa: E402
from phasewatch.cli.sweep import runs_ls as _runs_ls  # noqa: E402
from phasewatch.cli.sweep import sweep as _sweep  # noqa: E402
from phasewatch.cli.view import view as _view  # noqa: E402

app.command("measure")(handle_errors(_measure))
app.command("calibrate")(handle_errors(_calibrate))
app.command("detect")(handle_errors(_detect))
app.command("leadtime")(handle_errors(_leadtime))
app.command("sweep", context_settings=_SWEEP_CONTEXT)(_sweep)
runs_app.command("ls")(handle_errors(_runs_ls))
app.add_typer(superposition_app, name="superposition")
app.add_typer(eval_app, name="eval")
app.add_typer(forecast_app, name="forecast")
app.add_typer(import_app, name="import")
app.command("mirage")(mirage)
app.command("export")(handle_errors(_export))
app.command("view")(handle_errors(_view))


@app.command()
@handle_errors
def report(
    run: Path = typer.Argument(..., help="A run directory, or a directory of runs."),
) -> None:
    """Write (or refresh) the run's report.html and PNG figures; print the path. On a
    directory of runs (no config.json): write its index.html (run table, curves)."""
    from phasewatch.report import build_report
    from phasewatch.store import open_run

    if run.is_dir() and not (run / "config.json").exists():
        from phasewatch.report.runs_page import build_runs_page

        typer.echo(str(build_runs_page(run)))
        return
    typer.echo(str(build_report(open_run(run))))


def main() -> None:
    """The ``phasewatch`` console script (``python -m phasewatch`` too)."""
    app()
