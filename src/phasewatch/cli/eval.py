"""``phasewatch eval ...`` (LLM evaluations with inspect_ai) and ``phasewatch mirage RUN``.

``eval base64bench`` runs Base64Bench on any inspect_ai model and writes the threshold
sweep, the per-type table, figures and a summary; ``mirage`` compares exact match with
the continuous metrics of a base64 ladder across size and steps (Schaeffer et al. 2023).
Bad input exits with code 2 and one line; inspect_ai is imported only when a command runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import typer

from phasewatch.cli.errors import handle_errors
from phasewatch.config import require
from phasewatch.errors import MissingDependency

eval_app = typer.Typer(
    help="Evaluate language models with inspect_ai tasks (needs the evals extra).",
    no_args_is_help=True,
)


@eval_app.callback()
def _group() -> None:
    """LLM evaluations (inspect_ai): base64bench."""


def parse_value(text: str) -> Any:
    """``true``/``false``/``none``, an int, a float, else the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_model_args(items: list[str]) -> dict[str, Any]:
    """``["model_path=runs/x/hf", "do_sample=false"]`` → ``{"model_path": ..., ...: False}``.

    Raises:
        ConfigError: naming ``-M`` for an item without ``key=value``.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        require(bool(sep and key.strip()), "-M", "key=value (e.g. -M model_path=runs/x/hf)", item)
        out[key.strip()] = parse_value(value)
    return out


def _need_evals() -> None:
    if importlib.util.find_spec("inspect_ai") is None:
        raise MissingDependency("phasewatch eval needs inspect_ai: pip install 'phasewatch[evals]'")


@eval_app.command("base64bench")
@handle_errors
def base64bench_command(
    model: str = typer.Option(
        ..., help="inspect_ai model: provider/name, e.g. openai/gpt-4o-mini or hf/local."
    ),
    model_arg: list[str] = typer.Option(
        [], "-M", "--model-arg", help="Provider argument key=value (repeatable): -M model_path=DIR"
    ),
    limit: int | None = typer.Option(None, help="Run the first N samples (balanced over types)."),
    thresholds: str | None = typer.Option(
        None, help="Sweep thresholds in [0, 1], comma-separated (default: 0-0.8, 0.9-1 by 0.005)."
    ),
    direction: str = typer.Option("both", help="both, encode or decode."),
    n_per_type: int = typer.Option(50, help="Texts per type (34 types; the original: 50)."),
    seed: int = typer.Option(0, help="Seed of the text generator."),
    types: str | None = typer.Option(None, help="Comma-separated text types (default: all)."),
    dataset: Path | None = typer.Option(None, help="A JSONL file of texts to use instead."),
    threshold: float = typer.Option(0.95, help="Similarity at which a sample passes (task)."),
    max_tokens: int | None = typer.Option(None, help="Generation limit per answer (tokens)."),
    threads: int = typer.Option(0, help="CPU threads for torch (local models; 0 = all cores)."),
    out: str = typer.Option("runs", help="Directory for the evaluation folder."),
    progress: bool = typer.Option(True, help="Show inspect's progress."),
) -> None:
    """Run Base64Bench (base64 encode/decode without tools) on any inspect_ai model.

    Writes the threshold sweep, per-type accuracy, figures and summary.md to a new folder.
    """
    from phasewatch.evals.results import parse_thresholds

    require(limit is None or limit >= 1, "limit", "an integer >= 1 (or no --limit)", limit)
    require(max_tokens is None or max_tokens >= 1, "max_tokens", "an integer >= 1", max_tokens)
    require(bool(out.strip()), "--out", "a directory path (not empty)", out)
    sweep = parse_thresholds(thresholds)
    require(threads >= 0, "threads", "an integer >= 0 (0 = all cores)", threads)
    args = parse_model_args(model_arg)
    _need_evals()
    if threads:
        import torch

        torch.set_num_threads(threads)
    from phasewatch import api

    result = api.eval_base64bench(
        model, model_args=args, limit=limit, direction=direction, n_per_type=n_per_type,
        seed=seed, types=types, dataset=dataset, threshold=threshold, thresholds=sweep,
        max_tokens=max_tokens, out=Path(out), display="plain" if progress else "none",
    )  # fmt: skip
    acc = result.info["accuracy"]
    typer.echo(
        f"{result.info['model']}: {result.info['samples']} samples; accuracy at 1.0 "
        f"{acc['1']:.3f}, at 0.95 {acc['0.95']:.3f}; failed before comparison: "
        f"{sum(v for k, v in result.info['status_counts'].items() if k != 'ok')}"
    )
    typer.echo(f"eval: {result.path}\nsummary: {result.path / 'summary.md'}")


@handle_errors
def mirage(run: Path = typer.Argument(..., help="A base64-ladder run directory.")) -> None:
    """Emergence or mirage: exact match vs smooth metrics of a base64 ladder.

    Across size and training steps, the Schaeffer et al. (2023) check stated from the data,
    and the closed-form toy p^L vs L(1 - p); writes RUN/mirage/.
    """
    from phasewatch.report.sections.base64 import write_mirage
    from phasewatch.store import open_run

    out, result = write_mirage(open_run(run))
    for sentence in result["statements"]:
        typer.echo(f"• {sentence}")
    typer.echo(f"mirage: {out / 'mirage.html'}")


@eval_app.command("introspection")
@handle_errors
def introspection_command(
    model: str = typer.Option(
        ..., help="smollm2, a .gguf file or a local Hugging Face folder (see phasewatch models)."
    ),
    layer: str = typer.Option("0.25", help="Injection layer: an index or a fraction of depth."),
    scale: float = typer.Option(10.0, help="Multiplier of the concept vector (> 0)."),
    trials: int = typer.Option(100, help="Trials of 5 predictions each."),
    seed: int = typer.Option(0, help="Seed of the draw of sentences and concepts."),
    data: Path | None = typer.Option(None, help="JSON of sentences and pairs (default: shipped)."),
    threads: int = typer.Option(0, help="CPU threads for torch (0 = all cores)."),
    out: Path = typer.Option(Path("runs"), help="Directory for the evaluation folder."),
) -> None:
    """Thought-injection localization: which of 5 sentences received a concept vector?

    Writes predictions.parquet and summary.json (accuracy, Clopper-Pearson 95% interval,
    binomial p-value against 20%) to a new folder.
    """
    from phasewatch.evals.catalog import need

    require(threads >= 0, "--threads", "an integer >= 0 (0 = all cores)", threads)
    need("transformers", "pip install 'phasewatch[evals]'")
    from phasewatch.evals import catalog
    from phasewatch.evals.introspection import IntrospectionConfig, load_data, run_introspection

    cfg = IntrospectionConfig(
        model, layer, scale, trials, seed, None if data is None else str(data)
    )
    load_data(cfg.data)
    folder = catalog.resolve(model)
    if threads:
        import torch

        torch.set_num_threads(threads)
    result = run_introspection(cfg, folder, out=out)
    s = result.summary
    typer.echo(
        f"{model}: layer {s['layer']}/{s['n_layers']}, scale {s['scale']:g}: accuracy "
        f"{s['accuracy']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}] over "
        f"{s['predictions']} predictions (chance 0.2, p = {s['p_value']:.3g})"
    )
    typer.echo(f"eval: {result.path}\nsummary: {result.path / 'summary.json'}")
