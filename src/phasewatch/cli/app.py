"""The ``phasewatch`` command line: a thin shell over :mod:`phasewatch.api`.

``phasewatch run <phenomenon>`` takes one flag per config field (the phenomenon's
config and :class:`~phasewatch.config.TrainConfig`), generated from the dataclasses so
that the CLI mirrors the configs. Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from phasewatch import api, phenomena
from phasewatch.cli.errors import fail, handle_errors
from phasewatch.config import TrainConfig
from phasewatch.errors import PhasewatchError

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


def _field_help(cls: type) -> dict[str, str]:
    """``name: text`` lines of a dataclass docstring's Attributes section."""
    out: dict[str, str] = {}
    names: list[str] = []
    for line in (cls.__doc__ or "").splitlines():
        if m := re.match(r"^\s{8}([\w, ]+):\s+(.*)$", line):
            names = [n.strip() for n in m.group(1).split(",")]
            out.update({n: m.group(2) for n in names})
        elif re.match(r"^\s{12}\S", line) and names:
            out.update({n: out[n] + " " + line.strip() for n in names})
        else:
            names = []
    return {k: v.replace("``", "") for k, v in out.items()}


def _config_params(classes: list[type]) -> list[inspect.Parameter]:
    params = []
    for cls in classes:
        hints, helps = typing.get_type_hints(cls), _field_help(cls)
        for f in dataclasses.fields(cls):
            typ = hints[f.name]
            flag = "--" + f.name.replace("_", "-")
            decls = [f"{flag}/--no-{flag[2:]}"] if typ is bool else [flag]
            option = typer.Option(
                None,
                *decls,
                help=helps.get(f.name, ""),
                rich_help_panel=cls.__name__,
                show_default=False,
            )
            params.append(
                inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=typ | None
                )
            )
    return params


def _make_run_command(name: str):
    phen = phenomena.get(name)
    presets = ", ".join(f"{k} ({v.description})" for k, v in phen.presets.items())

    def command(**kwargs: Any) -> None:
        preset, out, resume = kwargs.pop("preset"), kwargs.pop("out"), kwargs.pop("resume")
        progress = kwargs.pop("progress")
        try:
            rd = api.run(name, preset, kwargs, out=out, resume=resume, progress=progress)
        except PhasewatchError as e:
            raise fail(e) from None
        from phasewatch.report.summary import summarise

        console.print(summarise(rd.events(), rd.status()))
        console.print(f"run: {rd.path}\nreport: {rd.path / 'report.html'}")

    fixed = [
        inspect.Parameter(
            "preset",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=str | None,
            default=typer.Option(
                None, help=f"Preset; default {phen.default_preset}. Allowed: {presets}"
            ),
        ),
        inspect.Parameter(
            "out",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Path,
            default=typer.Option(Path("runs"), help="Directory for run folders."),
        ),
        inspect.Parameter(
            "resume",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Path | None,
            default=typer.Option(
                None, help="Continue this run from its last checkpoint (uses its stored config)."
            ),
        ),
        inspect.Parameter(
            "progress",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=bool,
            default=typer.Option(True, help="Show a progress bar."),
        ),
    ]
    params = fixed + _config_params([phen.config_cls, TrainConfig])
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = (sys.modules[type(phen).__module__].__doc__ or "").split("\n\n")[0]
    return command


for _name in phenomena.names():
    run_app.command(_name)(_make_run_command(_name))


# Commands that live in their own modules (kept out of this file to keep it thin).
from phasewatch.cli.detect import detect as _detect  # noqa: E402
from phasewatch.cli.detect import leadtime as _leadtime  # noqa: E402
from phasewatch.cli.eval import eval_app, mirage  # noqa: E402
from phasewatch.cli.measure import measure as _measure  # noqa: E402
from phasewatch.cli.superposition import superposition_app  # noqa: E402
from phasewatch.cli.sweep import CONTEXT as _SWEEP_CONTEXT  # noqa: E402
from phasewatch.cli.sweep import runs_ls as _runs_ls  # noqa: E402
from phasewatch.cli.sweep import sweep as _sweep  # noqa: E402

app.command("measure")(handle_errors(_measure))
app.command("detect")(handle_errors(_detect))
app.command("leadtime")(handle_errors(_leadtime))
app.command("sweep", context_settings=_SWEEP_CONTEXT)(_sweep)
runs_app.command("ls")(handle_errors(_runs_ls))
app.add_typer(superposition_app, name="superposition")
app.add_typer(eval_app, name="eval")
app.command("mirage")(mirage)


@app.command()
@handle_errors
def report(run: Path = typer.Argument(..., help="A run directory.")) -> None:
    """Write (or refresh) the run's report.html and PNG figures; print the path."""
    from phasewatch.report import build_report
    from phasewatch.store import open_run

    typer.echo(str(build_report(open_run(run))))


def main() -> None:
    app()
