"""``phasewatch sweep``: train grid × seeds as ordinary run directories, locally or on Ray.

    phasewatch sweep grokking --preset quick --seeds 0:32 --grid weight_decay=0.3,1.0 \\
        train_frac=0.2,0.3 --set steps=3000 --out runs/wd [--executor ray --address auto]
    phasewatch sweep --spec sweep.yaml --out runs/wd
    phasewatch sweep --resume runs/wd

Bad input exits with code 2 and one line; nothing is written.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from phasewatch.cli.errors import fail
from phasewatch.config import require, require_memory
from phasewatch.errors import PhasewatchError

if TYPE_CHECKING:  # the sweep runner (process pools, progress bars) loads when a sweep runs
    from phasewatch.sweep import runner as sweeping
    from phasewatch.sweep import spec as sw

console = Console()


def split_args(args: list[str]) -> tuple[str | None, list[str], list[str]]:
    """``[PHENOMENON] [--grid f=v1,v2 ...] [--set f=v ...]`` (in any order) -> phenomenon,
    grid entries, set entries. ``field=...`` entries belong to the last ``--grid``/``--set``
    before them (``--grid`` if none).

    Raises:
        ConfigError: on an unknown option or a second phenomenon.
    """
    phenomenon, mode = None, "--grid"
    found: dict[str, list[str]] = {"--grid": [], "--set": []}
    for a in args:
        flag, eq, value = a.partition("=")
        if flag in found:
            mode = flag
            if eq:
                found[flag].append(value)
        elif a.startswith("-"):
            require(False, "option", "see phasewatch sweep --help", a)
        elif "=" in a:
            found[mode].append(a)
        else:
            require(phenomenon is None, "arguments", "one PHENOMENON, then field=value", a)
            phenomenon = a
    return phenomenon, found["--grid"], found["--set"]


def _spec_data(args: list[str], spec: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The spec dict: the ``--spec`` file, then the command line on top of it."""
    from phasewatch.sweep import spec as sw

    data = sw.load_spec_file(spec) if spec is not None else {}
    phenomenon, grid, sets = split_args(args)
    if phenomenon is not None:
        data["phenomenon"] = phenomenon
    data["grid"] = {**(data.get("grid") or {}), **sw.parse_assignments(grid, "--grid")}
    data["set"] = {**(data.get("set") or {}), **sw.parse_assignments(sets, "--set")}
    data.update({k: v for k, v in given.items() if v is not None})
    return data


CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def sweep(
    ctx: typer.Context,
    preset: str | None = typer.Option(None, help="Preset of the phenomenon (default: its own)."),
    seeds: str | None = typer.Option(None, help="Seeds: 0:32 (0..31), 0,3,7 or 5. Default 0."),
    out: str | None = typer.Option(None, help="Sweep directory (required unless --resume)."),
    spec: Path | None = typer.Option(None, help="A YAML/JSON spec file (flags override it)."),
    resume: Path | None = typer.Option(None, help="Finish the sweep in this directory."),
    executor: str | None = typer.Option(None, help="local (default) or ray."),
    workers: int | None = typer.Option(None, help="Local worker processes (default: cores)."),
    address: str | None = typer.Option(
        None, help="Ray address: auto or host:port (default: start a local Ray)."
    ),
    strategy: str | None = typer.Option(None, help="auto (default: measure), batched or single."),
    report: bool | None = typer.Option(
        None, "--report/--no-report", help="Write each member's report.html (default no)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train every grid point x seed of PHENOMENON as ordinary run directories.

    phasewatch sweep PHENOMENON --grid field=v1,v2 field=v1,v2 --set field=value
    field=value --out DIR: grid fields form a Cartesian product (x seeds); --set fields
    are fixed for every member; each field=... entry belongs to the --grid or --set
    before it. Values are checked against the config field types. Members are batched
    where that is faster (--strategy auto measures it).
    """
    from phasewatch.sweep import runner as sweeping
    from phasewatch.sweep import spec as sw

    try:
        how = {"executor": executor, "workers": workers, "address": address, "report": report}
        if resume is not None:
            what = {"arguments": ctx.args, "preset": preset, "seeds": seeds, "spec": spec}
            what |= {"strategy": strategy, "out": out}
            extra = sorted(k for k, v in what.items() if v)
            require(not extra, "--resume", "only --executor, --workers, --address, --report", extra)
            result = sweeping.resume_sweep(resume, how, progress=progress)
        else:
            require(bool(out and out.strip()), "--out", "a directory for the sweep", out)
            require(preset is None or bool(preset.strip()), "--preset", "a preset name", preset)
            given = {"preset": preset, "seeds": seeds, "strategy": strategy, **how}
            data = _spec_data(ctx.args, spec, given)
            spec_ = _check_model(sw.build_spec(_check_count(data)))
            result = sweeping.run_sweep(spec_, Path(out), progress=progress)
    except PhasewatchError as e:
        raise fail(e) from None
    except KeyboardInterrupt:
        where = resume or out
        typer.echo(f"interrupted; continue with: phasewatch sweep --resume {where}", err=True)
        raise typer.Exit(130) from None
    _summary(result)
    if result.unfinished:
        raise typer.Exit(1)


# Bytes of bookkeeping per sweep member (its resolved config, name, plan entry), a
# generous guess used only to refuse absurd member counts before they are listed.
MEMBER_BYTES = 64 * 1024


def _check_count(data: dict[str, Any]) -> dict[str, Any]:
    """Refuse, before the members are listed, a sweep with more members than their
    bookkeeping fits in memory (``--seeds 0:100000000``); returns ``data``.

    Raises:
        ConfigError: giving the memory estimate.
    """
    raw, n = data.get("seeds", "0"), 1
    if isinstance(raw, str) and ":" in raw:
        a, _, b = (x.strip() for x in raw.partition(":"))
        if a.isdigit() and b.isdigit():
            n = max(1, int(b) - int(a))
    elif isinstance(raw, str | list | tuple):
        n = max(1, len(raw.split(",")) if isinstance(raw, str) else len(raw))
    for values in (data.get("grid") or {}).values():
        n *= max(1, len(values.split(",") if isinstance(values, str) else values))
    require_memory("--seeds × --grid members", n * MEMBER_BYTES)
    return data


def _check_model(spec: sw.SweepSpec) -> sw.SweepSpec:
    """Refuse a sweep whose member at any grid point cannot run here (device, memory:
    :func:`phasewatch.api.runs.check_runnable`); returns ``spec``."""
    from phasewatch.api.runs import check_runnable, configs, resolve_config

    names = sorted(spec.grid)
    for point in itertools.product(*(spec.grid[k] for k in names)):
        values = {**spec.fixed, **dict(zip(names, point))}
        cfg = resolve_config(spec.phenomenon, spec.preset, values)
        check_runnable(*configs(cfg)[1:])
    return spec


def _summary(r: sweeping.SweepResult) -> None:
    plan = r.plan or {}
    console.print(
        f"sweep {r.out}: {r.total} members; this run: {len(r.done)} done, "
        f"{len(r.failed)} failed, {len(r.unfinished)} unfinished; "
        f"{len(r.skipped)} already finished"
    )
    console.print(f"strategy: {plan.get('strategy')} ({plan.get('reason')})")
    for name in r.failed:
        console.print(f"failed (non-finite loss): {r.out / name}")
    for name, err in r.unfinished:
        console.print(f"unfinished: {r.out / name}: {err}")
    console.print(f"list: phasewatch runs ls {r.out}")
