"""bench/forecast_report.py judges the protocol's hypotheses by their stated rules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "forecast_report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("forecast_report", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def leadtime(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    cols = ["key", "indicator", "auc", "hit_rate", "false_alarm_rate"]
    return pd.DataFrame(rows, columns=cols).assign(cannot_fire=False)


def family(auroc_pre: float, kinds: dict[str, float], lt: pd.DataFrame, lead=0.4) -> dict:
    fc = {"auroc": auroc_pre, "ci_low": auroc_pre - 0.1, "ci_high": 1.0, "lead_frac": lead}
    return {
        "all": {"forecaster_cv": {**fc, "auroc": 0.97}},
        "precursors": {"forecaster_cv": fc},
        "precursors_kinds": pd.DataFrame({"null_kind": list(kinds), "auroc": list(kinds.values())}),
        "leadtime": lt,
    }


def test_bar_needs_auc_hits_and_false_alarms(report):
    row = pd.Series({"auc": 0.8, "hit_rate": 0.5, "false_alarm_rate": 0.05})
    assert report.warns(row)
    assert not report.warns(row.copy().replace({0.8: 0.74}))
    assert not report.warns(pd.Series({"auc": 0.8, "hit_rate": 0.49, "false_alarm_rate": 0.0}))
    assert not report.warns(pd.Series({"auc": 0.9, "hit_rate": 0.9, "false_alarm_rate": 0.06}))


def test_hypotheses_follow_the_rules(report):
    # grokking: one CSD indicator passes the bar -> H1 not supported; a change point row
    # (not a CSD indicator) passing is ignored; H3 fails on one held-out null kind
    g_lt = leadtime([
        ("test/loss", "main_change_point", 0.99, 1.0, 0.0),
        ("llc/mean", "variance", 0.80, 0.6, 0.03),
    ])  # fmt: skip
    g = family(0.93, {"forecast-wd0": 0.95, "forecast-x2xy": 0.7}, g_lt)
    # deep linear: a weight-norm CSD indicator passes -> H2 supported
    dl_lt = leadtime([("geometry/norm/total", "ac1", 0.9, 0.8, 0.0)])
    dl = family(1.0, {}, dl_lt)
    lines = report.hypotheses({"grokking": g, "deep-linear": dl, "induction": g})
    text = "\n".join(lines)
    assert (
        "**H1** (CSD fails on grokking): not supported; passing the bar: llc/mean · variance"
        in text
    )
    assert "**H2** (CSD warns on the deep-linear control): supported" in text
    assert "**H3**" in text and "not supported" in lines[2]
    assert "forecast-x2xy 0.70" in lines[2]
    assert "target 0.95: reached" in lines[3] and "induction: reached" in lines[3]

    g_ok = family(0.91, {"forecast-wd0": 0.85, "forecast-x2xy": 0.8}, leadtime([]), lead=0.2)
    lines = report.hypotheses({"grokking": g_ok})
    assert lines[0].startswith("- **H1** (CSD fails on grokking): supported")
    assert lines[1] == "- **H2**: not yet run."
    assert ": supported;" in lines[2]
    assert "induction: pending" in lines[3]  # induction not run yet
