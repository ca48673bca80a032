"""Behavioural onsets from a tidy metrics table (step, key, value).

An onset is the first logged step at which a metric crosses a threshold
(e.g. memorisation: ``train/acc >= 0.99``), or the step of a metric's peak
(e.g. the test-loss peak of grokking, Nanda et al. 2023 §5).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from phasewatch.config import OnsetRule

__all__ = ["OnsetRule", "first_crossing", "onset", "onsets", "series"]


def series(metrics: pd.DataFrame, key: str) -> pd.Series:
    """The values of ``key`` indexed by step, sorted by step (empty if absent)."""
    rows = metrics[metrics["key"] == key]
    return rows.set_index("step")["value"].sort_index()


def onset(metrics: pd.DataFrame, rule: OnsetRule) -> int | None:
    """The step of ``rule`` in ``metrics`` (step, key, value); None if it never happens."""
    s = series(metrics, rule.key).dropna()
    if s.empty:
        return None
    if rule.kind == "peak":
        return int(s.idxmax())
    return first_crossing(s, rule.op, rule.threshold)


def first_crossing(s: pd.Series, op: str, threshold: float) -> int | None:
    """The first step (index label) of ``s`` with ``value op threshold``; None if none.

    Args:
        s: values indexed by step, sorted by step.
        op: ``>=`` (rises to) or ``<=`` (falls to).
        threshold: crossing level, in the series' units.
    """
    hit = s >= threshold if op == ">=" else s <= threshold
    return int(hit.idxmax()) if hit.any() else None


def onsets(metrics: pd.DataFrame, rules: tuple[OnsetRule, ...]) -> dict[str, dict[str, Any]]:
    """``{name: {"step": int | None, "key": ..., "rule": ...}}`` for every rule."""
    return {r.name: {"step": onset(metrics, r), "key": r.key, "rule": r.describe()} for r in rules}
