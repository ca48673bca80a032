"""``phasewatch forecast fit|apply|evaluate``: forecasting a transition from what runs
logged before it (:mod:`phasewatch.detect.forecast`).

``fit`` saves a forecaster (``forecaster.json``: numbers only, no pickle) fitted on runs
with known outcomes; ``apply`` scores runs it has never seen; ``evaluate`` is the
benchmark: each feature's run-level AUROC and alarm, the forecaster cross-validated by run
and with each kind of null run held out. Bad input exits 2 with one line.
"""

from __future__ import annotations

from pathlib import Path

import typer

from phasewatch.cli.errors import handle_errors

forecast_app = typer.Typer(
    help="Forecast transitions: fit a forecaster, apply it to new runs, evaluate signals.",
    no_args_is_help=True,
)

RUNS = typer.Argument(..., help="Run folders or folders of runs (searched recursively).")
TARGET = typer.Option("test/acc", help="Metric whose transition is forecast.")
THRESHOLD = typer.Option(0.99, help="Transition threshold of the target, in its units.")
OP = typer.Option(">=", help="'>=' (target rises to the threshold) or '<='.")
EVENT = typer.Option("memorisation", help="Onset the decision step is anchored to ('' = step 0).")
OFFSET = typer.Option(0.1, help="Decision step offset, as a fraction of the planned steps.")
FEATURES = typer.Option(
    "*", help="Comma-separated globs over feature names (key|stat); !glob excludes."
)
GROUP = typer.Option("preset", help="What a kind of run is: preset, or a config field.")
WINDOW = typer.Option(10, help="Feature windows, in logged points.")


def _table_kw(target, threshold, op, event, offset_frac, window, group_by) -> dict:
    from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig
    from phasewatch.detect.transitions import Target

    return {
        "target": Target(target, threshold, op),
        "rule": DecisionRule(event, offset_frac),
        "feature_cfg": FeatureConfig(window=window, min_points=max(3, window - 2)),
        "group_by": group_by,
    }


@forecast_app.command("fit")
@handle_errors
def fit(
    runs: list[Path] = RUNS,
    out: Path = typer.Option(..., help="Folder for forecaster.json and table.parquet."),
    target: str = TARGET,
    threshold: float = THRESHOLD,
    op: str = OP,
    event: str = EVENT,
    offset_frac: float = OFFSET,
    window: int = WINDOW,
    features: str = FEATURES,
    group_by: str = GROUP,
    alpha: float = typer.Option(0.05, help="False-alarm budget of the alarm threshold."),
    c: float = typer.Option(0.1, help="Inverse L2 regularisation of the regression."),
) -> None:
    """Fit the combined forecaster on runs with known outcomes and save it."""
    from phasewatch import api

    kw = _table_kw(target, threshold, op, event, offset_frac, window, group_by)
    model, tab = api.forecast_fit(runs, out, features=features.split(","), alpha=alpha, c=c, **kw)
    y = tab.rows["label"]
    typer.echo(
        f"fitted on {len(y)} runs ({int(y.sum())} transition, {int(len(y) - y.sum())} null; "
        f"{len(tab.excluded)} excluded), {len(model.features)} features; "
        f"alarm threshold {model.threshold:.3g}\nforecaster: {Path(out) / 'forecaster.json'}"
    )


@forecast_app.command("apply")
@handle_errors
def apply(
    model: Path = typer.Argument(..., help="A folder written by `forecast fit`."),
    runs: list[Path] = RUNS,
    out: Path | None = typer.Option(None, help="Write the table here (.csv or .parquet)."),
) -> None:
    """Score runs the forecaster has never seen: run, score, prediction, alarm step."""
    from phasewatch import api
    from phasewatch.store.atomic import write_parquet, write_text

    table = api.forecast_apply(model, runs)
    if out is not None:
        if out.suffix == ".parquet":
            write_parquet(out, table)
        else:
            write_text(out, table.to_csv(index=False))
    typer.echo(table.to_string(index=False))


@forecast_app.command("evaluate")
@handle_errors
def evaluate(
    runs: list[Path] = RUNS,
    out: Path = typer.Option(..., help="Folder for the benchmark tables."),
    target: str = TARGET,
    threshold: float = THRESHOLD,
    op: str = OP,
    event: str = EVENT,
    offset_frac: float = OFFSET,
    window: int = WINDOW,
    features: str = FEATURES,
    group_by: str = GROUP,
    alpha: float = typer.Option(0.05, help="False-alarm budget of the alarms."),
) -> None:
    """The benchmark: per-feature AUROC and alarms; the forecaster cross-validated by run
    and against each held-out kind of null run."""
    from phasewatch import api

    kw = _table_kw(target, threshold, op, event, offset_frac, window, group_by)
    s = api.forecast_evaluate(runs, out, features=features.split(","), alpha=alpha, **kw)
    cv = s["forecaster_cv"]
    best = s["best_single"][0] if s["best_single"] else {}
    typer.echo(
        f"{s['runs']} runs ({s['transition']} transition, {s['null']} null, "
        f"{len(s['excluded'])} excluded), decision at {s['rule']}\n"
        f"forecaster (cross-validated): AUROC {cv['auroc']:.3f} "
        f"[{cv['ci_low']:.3f}, {cv['ci_high']:.3f}]\n"
        f"best single feature: {best.get('feature')} AUROC {best.get('auroc', float('nan')):.3f}"
        f"\ntables: {out}"
    )
