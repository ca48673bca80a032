"""The ``phasewatch`` command line: a thin shell over :mod:`phasewatch.api`.

``phasewatch run <phenomenon>`` takes one flag per config field (the phenomenon's
config and :class:`~phasewatch.config.TrainConfig`), generated from the dataclasses
(:mod:`phasewatch.cli.flags`) so that the CLI mirrors the configs; ``measure`` and
``calibrate`` generate their LLC flags the same way. Bad input exits with code 2 and one
line.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
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
    errors (:mod:`phasewatch.cli.errors`); help pages are shown as usual. Every command
    is imported on first use (:attr:`lazy`), so a command loads only its own module."""

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


def _command(module: str, name: str, *, errors: bool = True, context: str = "") -> Callable:
    """A loader of command ``name``: the function ``name`` of ``phasewatch.cli.<module>``
    (one-line errors by :func:`handle_errors` if ``errors``; the module's attribute
    ``context`` as its ``context_settings`` if given)."""

    def load() -> Any:
        mod = importlib.import_module(f"phasewatch.cli.{module}")
        fn = getattr(mod, name)
        settings = {"context_settings": getattr(mod, context)} if context else {}
        return command(name, handle_errors(fn) if errors else fn, **settings)

    return load


def _group(module: str, attr: str) -> Callable:
    """A loader of the command group ``phasewatch.cli.<module>.<attr>`` (a Typer)."""
    return lambda: typer.main.get_group(
        getattr(importlib.import_module(f"phasewatch.cli.{module}"), attr)
    )


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


# Every command, in the order of the help page, with the first paragraph of its own help
# (``test_cli_start`` checks that they agree); each is imported on first use.
OneLineErrors.lazy = {
    "run": Lazy(_run_group, RUN_HELP),
    "measure": Lazy(
        _command("measure", "measure"),
        "Measure LLC, Hessian, gradient and geometry signals into the run's signals.parquet.",
    ),
    "calibrate": Lazy(
        _command("measure", "calibrate"),
        "Sweep the LLC's SGLD step ε × localization γ on one checkpoint and recommend one.",
    ),
    "detect": Lazy(
        _command("detect", "detect"),
        "Onsets, change points and causal early warnings of a run or a sweep.",
    ),
    "leadtime": Lazy(
        _command("detect", "leadtime"),
        "The lead-time benchmark of a sweep: which signals warn before the onset.",
    ),
    "sweep": Lazy(
        _command("sweep", "sweep", errors=False, context="CONTEXT"),
        "Train every grid point x seed of PHENOMENON as ordinary run directories.",
    ),
    "mirage": Lazy(
        _command("eval", "mirage", errors=False),
        "Emergence or mirage: exact match vs smooth metrics of a base64 ladder.",
    ),
    "export": Lazy(
        _command("export", "export"),
        "Write a checkpoint as a TransformerLens HookedTransformer config (config.json) and\n"
        "state dict (model.safetensors); print each folder written.",
    ),
    "view": Lazy(
        _command("view", "view"),
        "Serve ROOT's runs page (index.html) on localhost and print its URL; the page redraws\n"
        "as runs train (it polls runs.json, rebuilt from the store on each request). Ctrl-C\n"
        "stops.",
    ),
    "report": Lazy(
        lambda: command("report", report),
        "Write (or refresh) the run's report.html and PNG figures; print the path. On a\n"
        "directory of runs (no config.json): write its index.html (run table, curves).",
    ),
    "runs": Lazy(_group("runs", "runs_app"), "List and query run directories."),
    "superposition": Lazy(
        _group("superposition", "superposition_app"),
        "Superposition tools: the capacity-vs-bounds table.",
    ),
    "eval": Lazy(
        _group("eval", "eval_app"),
        "Evaluate language models with inspect_ai tasks (needs the evals extra).",
    ),
    "models": Lazy(
        _group("models", "models_app"),
        "Language models that load offline (SmolLM2 GGUF, local folders, ladder exports).",
    ),
    "forecast": Lazy(
        _group("forecast", "forecast_app"),
        "Forecast transitions: fit a forecaster, apply it to new runs, evaluate signals.",
    ),
    "import": Lazy(
        _group("imports", "import_app"),
        "Import runs logged with other tools (TensorBoard, CSV exports of W&B or MLflow) as "
        "run directories that detect, leadtime, forecast and report read.",
    ),
}


@app.callback()
def _root() -> None:
    # typer needs a callback or a registered command to build a group (every command here
    # is lazy); the app's help is its help= text above.
    pass


def main() -> None:
    """The ``phasewatch`` console script (``python -m phasewatch`` too)."""
    app()
