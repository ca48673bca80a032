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

try:  # typer vendors click from 0.2x on; earlier versions use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

from phasewatch.cli.errors import handle_errors
from phasewatch.cli.lazy import Lazy, LazyGroup, command


class OneLineErrors(LazyGroup):
    """The top-level command group: click's usage errors (bad type, unknown option, missing
    argument) become one ``error:`` line on stderr and exit code 2, like phasewatch's own
    errors (:mod:`phasewatch.cli.errors`); help pages are shown as usual. ``run``,
    ``measure`` and ``calibrate`` are imported on first use (:data:`LAZY`)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """:meth:`click.Group.main`, with usage errors printed on one line."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as e:
            e.show()
            sys.exit(e.exit_code)
        except click_errors.ClickException as e:
            where = f" (see: {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
            message = " ".join(e.format_message().split())
            typer.echo(f"error: {message}{where}", err=True)
            sys.exit(2 if isinstance(e, click_errors.UsageError) else e.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    help="phasewatch: reproduce, measure and forecast emergence in neural networks.",
    cls=OneLineErrors,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="List and query run directories.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
console = Console()
RUN_HELP = "Train a phenomenon (one subcommand per phenomenon)."


def _make_run_command(name: str):
    from phasewatch import phenomena
    from phasewatch.cli.flags import with_config_flags
    from phasewatch.config import TrainConfig

    phen = phenomena.get(name)
    presets = ", ".join(f"{k} ({v.description})" for k, v in phen.presets.items())

    @with_config_flags(phen.config_cls, TrainConfig)
    def command(
        *,
        preset: str | None = typer.Option(
            None, help=f"Preset; default {phen.default_preset}. Allowed: {presets}"
        ),
        out: str = typer.Option("runs", help="Directory for run folders."),
        resume: Path | None = typer.Option(
            None, help="Continue this run from its last checkpoint (uses its stored config)."
        ),
        restart: Path | None = typer.Option(
            None,
            help="Train this run again from step 0 in its folder with its stored config "
            "(deletes its checkpoints, metrics, events, signals and report first).",
        ),
        progress: bool = typer.Option(True, help="Show a progress bar."),
        log_to: list[str] = typer.Option(
            [],
            "--log-to",
            help="Also log the metrics at each eval step (live) and the summary to your "
            "tracker: tensorboard (RUN/tensorboard), wandb, mlflow; repeatable or a,b.",
        ),
        config: dict[str, Any],
    ) -> None:
        """Train the phenomenon (help: its module docstring's first paragraph, set below)."""
        from phasewatch import api
        from phasewatch.config import require
        from phasewatch.watch.loggers import RunLoggers, names

        sink = RunLoggers(names(log_to, "--log-to"))  # a bad name or missing package: exit 2 here
        require(bool(out.strip()), "--out", "a directory path (not empty)", out)
        try:
            hook = sink if log_to else None
            rd = api.run(name, preset, config, out=Path(out), resume=resume, restart=restart,
                         progress=progress, on_metrics=hook)  # fmt: skip
            from phasewatch.report.summary import summarise

            summary = summarise(rd.events(), rd.status())
            sink.log_text(rd.status().get("step") or 0, "phasewatch/summary", summary)
        finally:
            sink.close()
        console.print(summary)
        console.print(f"run: {rd.path}\nreport: {rd.path / 'report.html'}")

    command.__doc__ = (sys.modules[type(phen).__module__].__doc__ or "").split("\n\n")[0]
    return handle_errors(command)


def _run_group() -> Any:
    """``phasewatch run``: one subcommand per registered phenomenon (imports them)."""
    from phasewatch import phenomena

    run_app = typer.Typer(help=RUN_HELP, no_args_is_help=True)
    for name in phenomena.names():
        run_app.command(name)(_make_run_command(name))
    return typer.main.get_group(run_app)


def _measure_command(name: str) -> Any:
    """``phasewatch measure`` or ``calibrate`` (their flags come from signals' configs)."""
    from phasewatch.cli import measure

    return command(name, handle_errors(getattr(measure, name)))


OneLineErrors.lazy = {
    "run": Lazy(_run_group, RUN_HELP),
    "measure": Lazy(
        lambda: _measure_command("measure"),
        "Measure LLC, Hessian, gradient and geometry signals into the run's signals.parquet.",
    ),
    "calibrate": Lazy(
        lambda: _measure_command("calibrate"),
        "Sweep the LLC's SGLD step ε × localization γ on one checkpoint and recommend one.",
    ),
}


# Commands that live in their own modules (kept out of this file to keep it thin).
from phasewatch.cli.detect import detect as _detect  # noqa: E402
from phasewatch.cli.detect import leadtime as _leadtime  # noqa: E402
from phasewatch.cli.eval import eval_app, mirage  # noqa: E402
from phasewatch.cli.export import export as _export  # noqa: E402
from phasewatch.cli.forecast import forecast_app  # noqa: E402
from phasewatch.cli.imports import import_app  # noqa: E402
from phasewatch.cli.models import models_app  # noqa: E402
from phasewatch.cli.superposition import superposition_app  # noqa: E402
from phasewatch.cli.sweep import CONTEXT as _SWEEP_CONTEXT  # noqa: E402
from phasewatch.cli.sweep import runs_ls as _runs_ls  # noqa: E402
from phasewatch.cli.sweep import sweep as _sweep  # noqa: E402
from phasewatch.cli.view import view as _view  # noqa: E402

app.command("detect")(handle_errors(_detect))
app.command("leadtime")(handle_errors(_leadtime))
app.command("sweep", context_settings=_SWEEP_CONTEXT)(_sweep)
runs_app.command("ls")(handle_errors(_runs_ls))
app.add_typer(superposition_app, name="superposition")
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")
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
    from phasewatch.errors import StoreError
    from phasewatch.report import build_report
    from phasewatch.store import RunDir

    if run.is_dir() and not (run / "config.json").exists():
        from phasewatch.report.runs_page import build_runs_page

        typer.echo(str(build_runs_page(run)))
        return
    if not run.is_dir():
        raise StoreError(f"{run}: no such run directory")
    typer.echo(str(build_report(RunDir(run))))  # a damaged status/events: drawn as a box


def main() -> None:
    """The ``phasewatch`` console script (``python -m phasewatch`` too)."""
    app()
