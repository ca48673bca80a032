"""``phasewatch export RUN --to transformer-lens``: a checkpoint in another library's format."""

from __future__ import annotations

from pathlib import Path

import typer

from phasewatch.config import require_choice

FORMATS = ("transformer-lens",)
TOLERANCE = 1e-5  # largest logit difference --verify accepts


def export(
    run: Path = typer.Argument(..., help="A run of a transformer phenomenon."),
    to: str = typer.Option(..., "--to", help="Format; allowed: " + ", ".join(FORMATS)),
    step: int | None = typer.Option(None, help="A step with a checkpoint (default: the last)."),
    out: Path | None = typer.Option(
        None, help="Output folder (default: RUN/transformer_lens/step_NNNNNN)."
    ),
    verify: bool = typer.Option(
        False,
        help="Load the export into HookedTransformer (needs the tl extra) and compare "
        f"logits with phasewatch's model on a random batch (fails above {TOLERANCE:g}).",
    ),
) -> None:
    """Write a checkpoint as a TransformerLens HookedTransformer config (config.json) and
    state dict (model.safetensors); print each folder written."""
    from phasewatch import api

    require_choice("--to", to, FORMATS)
    if verify:
        from phasewatch.models.tlens import require_tl

        require_tl()  # before any work: a missing extra is bad input
    folders = api.export_transformer_lens(run, step=step, out=out)
    for name, folder in folders.items():
        typer.echo(f"{name + ': ' if name else ''}{folder}")
    if verify:
        _verify(run, step, folders)


def _verify(run: Path, step: int | None, folders: dict[str, Path]) -> None:
    """Compare each exported folder's HookedTransformer logits with phasewatch's model."""
    from phasewatch import api
    from phasewatch.models.tlens import load_hooked, max_logit_gap, sample_tokens

    model = api.load_model(run, step).cpu()
    for name, folder in folders.items():
        ours = model[name] if name else model
        gap = max_logit_gap(ours, load_hooked(folder), sample_tokens(ours))
        typer.echo(f"{name + ': ' if name else ''}max |logit difference| {gap:.2e}")
        if gap > TOLERANCE:
            typer.echo(f"error: {folder}: logits differ by {gap:.2e} > {TOLERANCE:g}", err=True)
            raise typer.Exit(1)
