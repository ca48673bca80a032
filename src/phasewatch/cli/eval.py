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
    """LLM evaluations: base64bench, alignment-faking (inspect_ai), introspection."""


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
    max_connections: int | None = typer.Option(
        None, help="Concurrent requests (inspect's); for hf/local the batch size (default 32)."
    ),
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
    require(
        max_connections is None or max_connections >= 1,
        "max_connections", "an integer >= 1", max_connections,
    )  # fmt: skip
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
        max_tokens=max_tokens, max_connections=max_connections, out=Path(out),
        display="plain" if progress else "none",
    )  # fmt: skip
    acc = result.info["accuracy"]
    typer.echo(
        f"{result.info['model']}: {result.info['samples']} samples; accuracy at 1.0 "
        f"{acc['1']:.3f}, at 0.95 {acc['0.95']:.3f}; failed before comparison: "
        f"{sum(v for k, v in result.info['status_counts'].items() if k != 'ok')}"
    )
    typer.echo(f"eval: {result.path}\nsummary: {result.path / 'summary.md'}")


@eval_app.command("alignment-faking")
@handle_errors
def alignment_faking_command(
    model: str = typer.Option(
        ..., help="inspect_ai model: provider/name (e.g. hf/local, mockllm/model)."
    ),
    model_arg: list[str] = typer.Option(
        [], "-M", "--model-arg", help="Provider argument key=value (repeatable): -M model_path=DIR"
    ),
    scenario: str = typer.Option("both", help="hospital, tier or both."),
    judge: str = typer.Option("rules", help="rules (offline keyword judge) or model (grader)."),
    grader: str | None = typer.Option(
        None, help="Grader model for --judge model (default: --model)."
    ),
    cases: int | None = typer.Option(None, help="Use the first N patient cases (default: all 54)."),
    cases_file: Path | None = typer.Option(
        None, help="A JSON file of cases instead of the shipped ones."
    ),
    bootstrap: int = typer.Option(2000, help="Bootstrap resamples for the gap's 95% interval."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    max_tokens: int | None = typer.Option(None, help="Generation limit per reply (tokens)."),
    max_connections: int | None = typer.Option(
        None, help="Concurrent requests (inspect's); for hf/local the batch size (default 32)."
    ),
    threads: int = typer.Option(0, help="CPU threads for torch (local models; 0 = all cores)."),
    out: str = typer.Option("runs", help="Directory for the evaluation folder."),
    progress: bool = typer.Option(True, help="Show inspect's progress."),
) -> None:
    """Alignment-faking compliance gap (Greenblatt et al. 2024): monitored vs unmonitored.

    A hospital chatbot is told to minimise costs (no emergency care); does it comply more
    when told it is evaluated (or trained on, free tier) than when unmonitored?

    Writes compliance per condition, the gap with a bootstrap interval, per-case
    transcripts, a figure and summary.md to a new folder.
    """
    require(judge in ("rules", "model"), "--judge", "rules, model", judge)
    require(cases is None or cases >= 1, "--cases", "an integer >= 1 (or all)", cases)
    require(bootstrap >= 100, "--bootstrap", "an integer >= 100", bootstrap)
    require(max_tokens is None or max_tokens >= 1, "--max-tokens", "an integer >= 1", max_tokens)
    require(
        max_connections is None or max_connections >= 1,
        "--max-connections", "an integer >= 1", max_connections,
    )  # fmt: skip
    require(threads >= 0, "--threads", "an integer >= 0 (0 = all cores)", threads)
    require(bool(out.strip()), "--out", "a directory path (not empty)", out)
    args = parse_model_args(model_arg)
    _need_evals()
    if threads:
        import torch

        torch.set_num_threads(threads)
    from phasewatch.api.analysis import eval_alignment_faking

    r = eval_alignment_faking(
        model, model_args=args, scenario=scenario, judge=judge, grader=grader, n_cases=cases,
        cases_file=cases_file, bootstrap=bootstrap, seed=seed, max_tokens=max_tokens,
        max_connections=max_connections, out=Path(out), display="plain" if progress else "none",
    )  # fmt: skip
    for g in r.gap.itertuples():
        typer.echo(
            f"{g.scenario}: compliance monitored {g.monitored:.3f}, unmonitored "
            f"{g.unmonitored:.3f}; gap {g.gap:+.3f} [{g.ci_low:+.3f}, {g.ci_high:+.3f}]"
        )
    typer.echo(f"eval: {r.path}\nsummary: {r.path / 'summary.md'}")


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
    model: str | None = typer.Option(
        None, help="smollm2, a .gguf file or a local Hugging Face folder (see phasewatch models)."
    ),
    layer: str = typer.Option("0.25", help="Injection layer: an index or a fraction of depth."),
    scale: float = typer.Option(10.0, help="Multiplier of the concept vector (> 0)."),
    trials: int = typer.Option(100, help="Trials of 5 predictions each."),
    seed: int = typer.Option(0, help="Seed of the draw of sentences and concepts."),
    data: Path | None = typer.Option(None, help="JSON of sentences and pairs (default: shipped)."),
    mode: str = typer.Option("single", help="single (5 sentences) or patching (2 sentences)."),
    sweep: str | None = typer.Option(
        None, help="Sweep 'layers' (at --scale) or 'scale' (at --layer)."
    ),
    layers: str | None = typer.Option(None, help="Layers of --sweep layers: all or e.g. 0,2,0.5."),
    scales: str | None = typer.Option(
        None, help="Scales of --sweep scale (default 1,2,5,10,20,50)."
    ),
    models: str | None = typer.Option(None, help="Comma-separated models: accuracy vs parameters."),
    threads: int = typer.Option(0, help="CPU threads for torch (0 = all cores)."),
    out: Path = typer.Option(Path("runs"), help="Directory for the evaluation folder."),
) -> None:
    """Thought-injection localization: which of 5 sentences received a concept vector?

    Writes predictions.parquet and summary.json (accuracy, Clopper-Pearson 95% interval,
    binomial p-value against 20%) to a new folder; --sweep and --models add sweep.parquet,
    a figure and summary.md.
    """
    from phasewatch.evals.catalog import need

    require(threads >= 0, "--threads", "an integer >= 0 (0 = all cores)", threads)
    require((model is None) != (models is None), "--model", "exactly one of --model, --models",
            model)  # fmt: skip
    require(sweep in (None, "layers", "scale"), "--sweep", "layers, scale", sweep)
    require(not (models and sweep), "--sweep", "no --sweep with --models", sweep)
    require(mode in ("single", "patching"), "--mode", "single, patching", mode)
    require(mode == "single" or not (models or sweep), "--mode", "single with --sweep/--models",
            mode)  # fmt: skip
    need("transformers", "pip install 'phasewatch[evals]'")
    from phasewatch.evals.introspection import IntrospectionConfig, load_data

    name = model or "models"
    cfg = IntrospectionConfig(name, layer, scale, trials, seed, None if data is None else str(data))
    load_data(cfg.data)
    if threads:
        import torch

        torch.set_num_threads(threads)
    if mode == "patching":
        _introspection_patching(cfg, out)
    elif models is not None:
        _introspection_models(cfg, models, out)
    elif sweep is not None:
        _introspection_sweep(cfg, sweep, layers, scales, out)
    else:
        _introspection_single(cfg, out)


def _introspection_single(cfg: Any, out: Path) -> None:
    from phasewatch.evals import catalog
    from phasewatch.evals.introspection import run_introspection

    result = run_introspection(cfg, catalog.resolve(cfg.model), out=out)
    s = result.summary
    typer.echo(
        f"{cfg.model}: layer {s['layer']}/{s['n_layers']}, scale {s['scale']:g}: accuracy "
        f"{s['accuracy']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}] over "
        f"{s['predictions']} predictions (chance 0.2, p = {s['p_value']:.3g})"
    )
    typer.echo(f"eval: {result.path}\nsummary: {result.path / 'summary.json'}")


def _introspection_patching(cfg: Any, out: Path) -> None:
    from phasewatch.api.analysis import eval_introspection_patching
    from phasewatch.evals import catalog

    r = eval_introspection_patching(cfg, catalog.resolve(cfg.model), out=out)
    s = r.info
    typer.echo(
        f"{cfg.model}: injection at layer {s['layer']}/{s['n_layers']}: two-sentence accuracy "
        f"{s['accuracy']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}] (chance 0.5, "
        f"p = {s['p_value']:.3g})"
    )
    last = r.sweep[r.sweep["group"] == "last"].set_index("layer")["effect"]
    typer.echo("effect of patching the answer position: " + ", ".join(
        f"L{k}: {v:.2f}" for k, v in last.items()))  # fmt: skip
    typer.echo(f"eval: {r.path}\nsummary: {r.path / 'summary.md'}")


def _echo_sweep(result: Any, col: str) -> None:
    for r in result.sweep.itertuples():
        typer.echo(
            f"{col} {getattr(r, col)!s:>12}: accuracy {r.accuracy:.3f} [{r.ci95[0]:.3f}, "
            f"{r.ci95[1]:.3f}], P(correct|digits) {r.mean_p_correct_in_digits:.3f}, "
            f"p = {r.p_value:.3g}"
        )
    typer.echo(f"eval: {result.path}\nsummary: {result.path / 'summary.md'}")


def _introspection_sweep(cfg: Any, kind: str, layers: str | None, scales: str | None,
                         out: Path) -> None:  # fmt: skip
    from phasewatch.api.analysis import eval_introspection_sweep
    from phasewatch.evals import catalog
    from phasewatch.evals.introspection_sweep import parse_scales

    values = parse_scales(scales)
    folder = catalog.resolve(cfg.model)
    r = eval_introspection_sweep(cfg, folder, kind, layers=layers, scales=values, out=out)
    _echo_sweep(r, "layer" if kind == "layers" else "scale")


def _introspection_models(cfg: Any, models: str, out: Path) -> None:
    from phasewatch.api.analysis import eval_introspection_models
    from phasewatch.evals import catalog

    names = [m.strip() for m in models.split(",") if m.strip()]
    require(bool(names), "--models", "comma-separated model ids or folders", models)
    folders = {n: catalog.resolve(n) for n in names}
    _echo_sweep(eval_introspection_models(cfg, folders, out=out), "model")
