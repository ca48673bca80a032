"""The run × feature table of a set of runs: one row per run at its decision step, with
its label (does the target transition within the budget?) and its group (the kind of run,
for leave-one-null-kind-out).

Series a phenomenon marks as hindsight measures (their value at t depends on the final
model: grokking's restricted/excluded loss with the final key frequencies) are left out of
the features; their causal variants stay.

A run whose target has already crossed by the decision step is excluded (there is nothing
left to forecast), as are unfinished runs and runs whose anchoring event never happened;
each exclusion is listed with its reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from phasewatch.detect.forecast.features import DecisionRule, FeatureConfig, run_features
from phasewatch.detect.onsets import first_crossing, series
from phasewatch.detect.transitions import Target
from phasewatch.errors import ConfigError, StoreError
from phasewatch.phenomena.base import hindsight_keys
from phasewatch.store import RunDir
from phasewatch.store.signals import read_signals

META = ("run", "group", "label", "start", "decision_step", "onset", "planned")


@dataclass
class ForecastTable:
    """Rows of the runs that could be scored, and those left out.

    Attributes:
        rows: one row per run: :data:`META` columns, then one column per feature.
        excluded: ``{"run", "reason"}`` of every run left out.
    """

    rows: pd.DataFrame
    excluded: list[dict[str, str]] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        """The feature columns (``<key>|<stat>``)."""
        return [c for c in self.rows.columns if c not in META]


def group_of(cfg: dict[str, Any], group_by: str) -> str:
    """The run's group: its preset (``group_by="preset"``), or ``field=value`` of a task or
    train config field.

    Raises:
        ConfigError: for a field the run's config does not have.
    """
    if group_by == "preset":
        return str(cfg.get("preset"))
    fields = {**cfg.get("task", {}), **cfg.get("train", {})}
    if group_by not in fields:
        raise ConfigError(
            f"group_by={group_by!r} is not a config field; allowed: preset, "
            + ", ".join(sorted(fields))
        )
    return f"{group_by}={fields[group_by]}"


def run_row(
    rd: RunDir, target: Target, rule: DecisionRule, cfg: FeatureConfig, group_by: str
) -> dict[str, Any]:
    """The table row of one run.

    Raises:
        ValueError: with the reason the run cannot be scored (not done, no anchoring event,
            target missing, target crossed before the decision step).
    """
    status = rd.status().get("status")
    if status != "done":
        raise ValueError(f"status {status}")
    conf = rd.config()
    planned = int(conf["train"]["steps"])
    onsets = rd.events().get("onsets", {})
    t = rule.step(onsets, planned)
    if t is None:
        raise ValueError(f"no {rule.event!r} onset to anchor the decision step")
    metrics = rd.metrics()
    s = series(metrics, target.key).dropna()
    if s.empty:
        raise ValueError(f"no series {target.key!r}")
    onset = first_crossing(s, target.op, target.threshold)
    if onset is not None and onset <= t:
        raise ValueError(f"target crossed at step {onset}, before the decision step {t}")
    start = (onsets.get(rule.event) or {}).get("step") or 0 if rule.event else 0
    feats = run_features(metrics, read_signals(rd), int(start), t, cfg)
    hindsight = hindsight_keys(str(conf.get("phenomenon")))
    feats = {f: v for f, v in feats.items() if f.split("|")[0] not in hindsight}
    meta = {
        "run": str(rd.path),
        "group": group_of(conf, group_by),
        "label": int(onset is not None),
        "start": int(start),
        "decision_step": t,
        "onset": onset,
        "planned": planned,
    }
    return meta | feats


def forecast_table(
    runs: Sequence[RunDir],
    target: Target,
    rule: DecisionRule,
    cfg: FeatureConfig | None = None,
    *,
    group_by: str = "preset",
) -> ForecastTable:
    """The :class:`ForecastTable` of ``runs``.

    Raises:
        ConfigError: for an unknown ``group_by`` field.
    """
    cfg = cfg or FeatureConfig()
    rows, excluded = [], []
    for rd in runs:
        try:
            rows.append(run_row(rd, target, rule, cfg, group_by))
        except (ValueError, StoreError) as e:
            excluded.append({"run": str(rd.path), "reason": str(e)})
    df = pd.DataFrame(rows, columns=None if rows else list(META))
    if rows:
        feats = sorted(c for c in df.columns if c not in META)
        df = df[list(META) + feats]
    return ForecastTable(df, excluded)
