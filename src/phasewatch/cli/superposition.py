"""``phasewatch superposition ...``: superposition tools beyond ``run`` (a typer sub-app).

``capacity`` trains toy models (Elhage et al. 2022) for each n and sparsity and prints,
per row, the represented features and their measured interference beside the
Johnson–Lindenstrauss, random-vector union and Welch bounds for the same m and n.
Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import json
import math
import sys

import typer
from rich.console import Console
from rich.table import Table

from phasewatch.cli.errors import handle_errors
from phasewatch.config import require, require_choice

superposition_app = typer.Typer(
    help="Superposition tools: the capacity-vs-bounds table.", no_args_is_help=True
)


@superposition_app.callback()
def _group() -> None:
    """Superposition (Elhage et al. 2022) tools; train with ``phasewatch run superposition``."""


def parse_list(field: str, text: str, kind: type) -> list:
    """``"50,100,200"`` → ``[50, 100, 200]``; :class:`ConfigError` naming ``field`` if bad."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    require(len(values) > 0, field, f"a comma-separated list of {kind.__name__}s", text)
    return values


_COLUMNS = {
    "n": "n",
    "sparsity": "S",
    "represented": "represented",
    "mean_abs_cos": "mean |cos|",
    "max_abs_cos": "max |cos|",
    "max_pos_cos": "max cos>0",
    "random_mean_abs_cos": "random E|cos|",
    "jl_epsilon": "JL ε",
    "union_epsilon": "union ε",
    "welch_bound": "Welch",
}


def _cell(v) -> str:
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.3g}"
    return str(v)


@superposition_app.command("capacity")
@handle_errors
def capacity_command(
    m: int = typer.Option(20, help="Hidden dimensions m (an integer >= 1)."),
    n: str = typer.Option("50,100,200,400", help="Feature counts n, comma-separated."),
    sparsity: str = typer.Option("0.9,0.99,0.999", help="Sparsities S in [0, 1), comma-separated."),
    steps: int = typer.Option(10_000, help="Training steps per model (the paper: 10,000)."),
    seed: int = typer.Option(0, help="Seed of initialisation and data."),
    batch: int = typer.Option(1024, help="Examples per step."),
    threads: int = typer.Option(0, help="CPU threads for torch (0 = all cores)."),
    format: str = typer.Option("table", help="table, csv or json."),
    progress: bool = typer.Option(True, help="Show a progress bar (table format only)."),
) -> None:
    """Represented features and measured |cos| vs JL, union and Welch bounds, per (n, S)."""
    require_choice("format", format, ("table", "csv", "json"))
    require(threads >= 0, "threads", "an integer >= 0 (0 = all cores)", threads)
    ns = parse_list("n", n, int)
    ss = parse_list("sparsity", sparsity, float)
    import torch

    from phasewatch.phenomena.superposition.capacity import capacity

    if threads:
        torch.set_num_threads(threads)
    rows = capacity(
        m, ns, ss, steps=steps, seed=seed, batch=batch, progress=progress and format == "table"
    )
    if format == "json":
        typer.echo(json.dumps(rows.to_dict(orient="records"), indent=2, default=str))
        return
    if format == "csv":
        rows.to_csv(sys.stdout, index=False)
        return
    table = Table(title=f"Superposition capacity, m={m} ({steps:,} steps, seed {seed})")
    for label in _COLUMNS.values():
        table.add_column(label, justify="right")
    for _, row in rows.iterrows():
        table.add_row(*(_cell(row[c]) for c in _COLUMNS))
    console = Console()
    console.print(table)
    for sentence in rows["sentence"]:
        console.print(f"• {sentence}", highlight=False)
