"""``phasewatch runs ls``: the table of run directories under a folder, queried with duckdb.

    phasewatch runs ls runs/wd --where "status='done' and weight_decay > 0.3" --sort -seed

The run index (:mod:`phasewatch.store.index`, which needs duckdb) is imported when the
command runs, so that ``phasewatch --help`` does not load it. Bad input exits with code 2
and one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from phasewatch.cli.errors import handle_errors

runs_app = typer.Typer(help="List and query run directories.", no_args_is_help=True)
console = Console()


@runs_app.command("ls")
@handle_errors
def runs_ls(
    root: Path = typer.Argument(Path("runs"), help="Directory searched for runs (recursively)."),
    where: str | None = typer.Option(
        None,
        help="One boolean expression over the columns (not SQL: columns, numbers, "
        "'strings', operators, and/or/not, a few functions), e.g. \"status='done' and "
        'weight_decay > 0.3".',
    ),
    sort: str | None = typer.Option(
        None, help="Columns to sort by, comma-separated; -col for descending."
    ),
    columns: str | None = typer.Option(
        None, help="Columns to show, comma-separated, or all (default: run .. onsets)."
    ),
    format: str = typer.Option("table", help="table, csv or json."),
) -> None:
    """Table of runs under ROOT (one row per run directory) queried with duckdb: status,
    onsets, every config field and final headline metrics (see --columns all). A damaged
    run is left out with one warning line on stderr."""
    import csv
    import json
    import sys

    from rich.table import Table
    from rich.text import Text

    from phasewatch.config import require_choice
    from phasewatch.store.index import query

    require_choice("--format", format, ("table", "csv", "json"))
    cols, rows = query(root, where=where, sort=sort, columns=columns)
    if format == "json":
        typer.echo(json.dumps([dict(zip(cols, r)) for r in rows], indent=2))
    elif format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(cols)
        writer.writerows([["" if v is None else v for v in r] for r in rows])
    else:
        # runs are shown relative to ROOT and never cut (two runs must be told apart at 80
        # columns); other values wrap rather than end in "…" (headers may be cut)
        base = str(Path(root).resolve())
        cells = [[_cell(v) for v in r] for r in rows]
        if "run" in cols:
            i = cols.index("run")
            for c in cells:
                rel = os.path.relpath(c[i], base) if c[i].startswith(base) else c[i]
                c[i] = rel if rel != "." else Path(c[i]).name
        table = Table(title=f"runs under {root}" + ("" if rows else " (none)"))
        for j, c in enumerate(cols):
            width = max([len(r[j]) for r in cells] + [3]) if c == "run" else None
            head = Text(c.replace("onset/", "onset: "), no_wrap=True, overflow="ellipsis")
            table.add_column(head, overflow="fold", no_wrap=c == "run", min_width=width)
        for c in cells:  # Text, not str: a value is never read as rich markup or emoji
            table.add_row(*(Text(v) for v in c))
        console.print(table)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
