"""The forecasting benchmark and forecaster (:mod:`phasewatch.detect.forecast`) on runs in
the store: the run x feature table, fit, apply, evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from phasewatch.errors import ConfigError, StoreError
from phasewatch.store import RunDir
from phasewatch.store.atomic import write_json, write_parquet, write_text

if TYPE_CHECKING:
    from phasewatch.detect.forecast.model import Forecaster
    from phasewatch.detect.forecast.table import ForecastTable


def _forecast_runs(paths: Sequence[str | Path]) -> list[RunDir]:
    """Every run directory under each of ``paths`` (a run folder or a folder of runs)."""
    from phasewatch.detect.sweep import run_dirs

    return [rd for p in paths for rd in run_dirs(p)]


def forecast_table(
    paths: Sequence[str | Path],
    *,
    target: Any = None,
    rule: Any = None,
    feature_cfg: Any = None,
    group_by: str = "preset",
):
    """The run × feature table (:mod:`phasewatch.detect.forecast.table`) of the runs under
    ``paths`` at their decision steps.

    Raises:
        StoreError: if a path holds no run.
        ConfigError: for an unknown ``group_by`` field.
    """
    from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig
    from phasewatch.detect.forecast.table import forecast_table as table
    from phasewatch.detect.transitions import Target

    return table(
        _forecast_runs(paths),
        target or Target(),
        rule or DecisionRule(),
        feature_cfg or FeatureConfig(),
        group_by=group_by,
    )


def forecast_fit(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    features: Sequence[str] = ("*",),
    alpha: float = 0.05,
    c: float = 0.1,
    **table_kw: Any,
) -> tuple[Forecaster, ForecastTable]:
    """Fit the combined forecaster on the runs under ``paths`` and save it to ``out``
    (``forecaster.json``, plus ``table.parquet`` of the training runs).

    Args:
        features: glob patterns over feature names (``llc/*|*``, ``*|tau_ac1``).
        alpha: false-alarm budget of the alarm threshold.
        c: inverse L2 regularisation of the logistic regression.
        **table_kw: ``target``, ``rule``, ``feature_cfg``, ``group_by`` (see
            :func:`forecast_table`).

    Returns:
        ``(forecaster, table)``.

    Raises:
        ConfigError: fewer than 2 runs of either label, no feature matching ``features``.
    """
    from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig
    from phasewatch.detect.forecast.model import fit
    from phasewatch.detect.transitions import Target

    tab = forecast_table(paths, **table_kw)
    chosen = _match_features(tab.features, features)
    rule = table_kw.get("rule") or DecisionRule()
    model = fit(
        tab.rows,
        chosen,
        target=table_kw.get("target") or Target(),
        rule=rule,
        feature_cfg=table_kw.get("feature_cfg") or FeatureConfig(),
        alpha=alpha,
        c=c,
        event_rule=_event_rule(tab.rows["run"], rule.event),
    )
    model.save(out)
    write_parquet(Path(out) / "table.parquet", tab.rows)
    return model, tab


def _event_rule(runs: pd.Series, event: str) -> dict[str, Any] | None:
    """The first-crossing onset rule named ``event`` of the runs' phenomenon (the first run
    whose phenomenon defines it), as ``{"key", "op", "threshold"}``; None without one."""
    from phasewatch import phenomena
    from phasewatch.store import open_run

    if not event:
        return None
    for run in runs:
        try:
            name = open_run(run).config().get("phenomenon")
            rules = phenomena.get(str(name)).onsets
        except (StoreError, ConfigError, KeyError, AttributeError):
            continue
        for r in rules:
            if r.name == event and r.kind == "cross":
                return {"key": r.key, "op": r.op, "threshold": r.threshold}
    return None


def _match_features(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The names matching any glob pattern and no ``!``-prefixed one (fnmatch; patterns are
    data, never code): ``*,!test/*`` is every feature but those of ``test/`` series.

    Raises:
        ConfigError: if no name matches.
    """
    import fnmatch

    keep = [p for p in patterns if not p.startswith("!")] or ["*"]
    drop = [p[1:] for p in patterns if p.startswith("!")]

    def wanted(n: str) -> bool:
        hit = any(fnmatch.fnmatchcase(n, p) for p in keep)
        return hit and not any(fnmatch.fnmatchcase(n, p) for p in drop)

    chosen = [n for n in names if wanted(n)]
    if not chosen:
        raise ConfigError(
            f"features={','.join(patterns)!r} matches no feature of these runs; e.g. "
            + ", ".join(list(names)[:5])
        )
    return chosen


def forecast_apply(model_dir: str | Path, paths: Sequence[str | Path]) -> pd.DataFrame:
    """Score runs a saved forecaster has never seen.

    Returns:
        One row per scored run: ``run``, ``score`` (probability of a transition within the
        budget), ``prediction`` (score >= the alarm threshold), ``alarm_step`` (the decision
        step when it alarms, else None), ``decision_step``, ``label`` (known outcome, for
        evaluation); runs that could not be scored are listed with ``excluded``.

    Raises:
        StoreError: if ``model_dir`` holds no forecaster or a path holds no run.
        ConfigError: naming the features the runs lack (another family, signals missing).
    """
    from phasewatch.detect.forecast.features import FeatureConfig
    from phasewatch.detect.forecast.model import Forecaster

    model = Forecaster.load(model_dir)
    tab = forecast_table(
        paths,
        target=model.target_spec(),
        rule=model.decision_rule(),
        feature_cfg=FeatureConfig(**model.feature_cfg),
        group_by="preset",
    )
    rows = tab.rows
    cols = ["run", "score", "prediction", "alarm_step", "decision_step", "label", "excluded"]
    if rows.empty:
        return pd.DataFrame(
            [{"run": e["run"], "excluded": e["reason"]} for e in tab.excluded], columns=cols
        )
    score = model.score(rows)
    alarm = score >= model.threshold
    out = pd.DataFrame(
        {
            "run": rows["run"],
            "score": score,
            "prediction": alarm,
            "alarm_step": rows["decision_step"].where(alarm, None),
            "decision_step": rows["decision_step"],
            "label": rows["label"],
            "excluded": None,
        }
    )
    skipped = pd.DataFrame([{"run": e["run"], "excluded": e["reason"]} for e in tab.excluded])
    return pd.concat([out, skipped], ignore_index=True)[cols] if len(skipped) else out[cols]


MIN_NULL = 10  # null runs needed to calibrate a 5% false-alarm threshold with any resolution


def _require_runs(rows: pd.DataFrame, n_excluded: int, min_null: int) -> None:
    """ConfigError unless ``rows`` hold >= ``min_null`` null and >= 2 transition runs."""
    n_trans = int(rows["label"].sum()) if len(rows) else 0
    if len(rows) - n_trans < min_null or n_trans < 2:
        raise ConfigError(
            f"runs: {len(rows) - n_trans} null and {n_trans} transition runs could be scored "
            f"({n_excluded} excluded); the benchmark needs >= {min_null} null runs "
            "and >= 2 transition runs"
        )


def forecast_evaluate(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    features: Sequence[str] = ("*",),
    alpha: float = 0.05,
    n_boot: int = 1_000,
    min_null: int = MIN_NULL,
    **table_kw: Any,
) -> dict[str, Any]:
    """The forecasting benchmark of the runs under ``paths``: every single feature's
    run-level AUROC (bootstrap 95% interval) and alarm at <= ``alpha`` false alarms, and the
    combined forecaster cross-validated by run and leave-one-null-kind-out. Writes
    ``single.parquet``/``.csv``, ``null_kinds.csv``, ``table.parquet`` and
    ``summary.json`` to ``out``.

    Raises:
        ConfigError: fewer than ``min_null`` null runs (the false-alarm budget cannot be
            calibrated on fewer) or fewer than 2 transition runs (nothing is written), no
            feature matching ``features``.
    """
    from phasewatch.detect.forecast import evaluate as ev
    from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig
    from phasewatch.detect.transitions import Target

    tab = forecast_table(paths, **table_kw)
    chosen = _match_features(tab.features, features)
    kw = dict(
        target=table_kw.get("target") or Target(),
        rule=table_kw.get("rule") or DecisionRule(),
        feature_cfg=table_kw.get("feature_cfg") or FeatureConfig(),
    )
    rows = tab.rows
    _require_runs(rows, len(tab.excluded), min_null)
    single = ev.single_features(rows, chosen, alpha=alpha, n_boot=n_boot)
    single = single.sort_values("auroc", key=lambda a: (a - 0.5).abs(), ascending=False)
    cv = ev.cross_validated(rows, chosen, **kw)
    y = rows["label"].to_numpy()
    lo, hi = ev.bootstrap_ci(cv, y, n_boot=n_boot)
    kinds = ev.leave_one_null_kind_out(rows, chosen, **kw)
    summary = {
        "runs": len(rows),
        "transition": int(y.sum()),
        "null": int(len(y) - y.sum()),
        "excluded": tab.excluded,
        "rule": kw["rule"].describe(),
        "forecaster_cv": {"auroc": ev.auroc(cv, y), "ci_low": lo, "ci_high": hi}
        | ev.alarm(cv, rows, alpha=alpha),
        "best_single": single.head(1).to_dict("records"),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "single.parquet", single.reset_index(drop=True))
    write_text(out / "single.csv", single.to_csv(index=False))
    write_text(out / "null_kinds.csv", kinds.to_csv(index=False))
    write_parquet(out / "table.parquet", rows.assign(forecaster_cv=cv))
    write_json(out / "summary.json", summary)
    return summary
