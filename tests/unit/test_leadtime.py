"""detect / leadtime on synthetic run directories with planted transitions
(:mod:`phasewatch.detect.synthetic`: an AR(1) signal slowing down before a jump of
``test/acc`` at an onset drawn from 2,600–3,400 steps; null runs without either)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from phasewatch.api import leadtime
from phasewatch.detect.leadtime import leadtime as compute_leadtime
from phasewatch.detect.run import DetectConfig, detect
from phasewatch.detect.sweep import MIN_NULL, detect_sweep
from phasewatch.detect.synthetic import write_run as _make_run
from phasewatch.detect.synthetic import write_sweep
from phasewatch.detect.transitions import Target
from phasewatch.errors import ConfigError
from phasewatch.store import open_run


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = write_sweep(tmp_path_factory.mktemp("sweep"), 14, MIN_NULL + 4)
    _make_run(root, "crashed", 999, 3000, status="failed")
    _make_run(root, "unfinished", 998, 3000, status="running")
    return root


# Windows of a fifth of the planned run (80 points): on these series the ac1 warning then
# hits 14/14 runs (AUC 0.99); at 0.1 (40 points) the null maxima of τ are as high as the
# transition runs' and it hits 2/14 (AUC 0.81), at 0.25 the burn-in reaches the onsets.
WIDE = DetectConfig(window_frac=0.2)


def test_leadtime_ranks_the_planted_warning_and_measures_its_lead(sweep):
    report = leadtime(sweep, Target("test/acc", 0.99), WIDE)
    out = report.parent
    table = pd.read_parquet(out / "leadtime.parquet")
    row = table[(table["key"] == "signal/x") & (table["indicator"] == "ac1")].iloc[0]
    assert row["n_transition"] == 14 and row["n_null"] == MIN_NULL + 4
    assert row["auc"] >= 0.9 and row["hit_rate"] >= 0.8
    assert row["false_alarm_rate"] <= 0.25  # leave-one-out, calibrated at alpha = 0.1
    assert 0 < row["lead_median"] < 3400 and 0 < row["lead_frac_median"] < 1
    summary = json.loads((out / "summary.json").read_text())
    assert {e["reason"] for e in summary["excluded"]} == {"status failed", "status running"}
    (cds,) = summary["critical_data_size"]
    assert cds["per_fraction"] == {"0.3": 0.0, "0.4": 1.0}
    assert summary["polymorphs"]["distinct_sets"] == 2
    roc = pd.read_parquet(out / "roc.parquet")
    assert roc["hit_rate"].between(0, 1).all() and "signal/x" in set(roc["key"])
    assert "ROC" in report.read_text() and "| key |" in (out / "leadtime.md").read_text()


def test_leadtime_without_enough_null_runs_still_reports_change_points(tmp_path):
    # a confirmation set of transition runs only: no warning can be calibrated, but the
    # outputs are written and say why
    root = write_sweep(tmp_path / "conf", 3, 0)
    report = leadtime(root, Target("test/acc", 0.99), WIDE)
    table = pd.read_parquet(report.parent / "leadtime.parquet")
    assert set(table["indicator"]) == {"main_change_point"}
    assert table["n_transition"].max() == 3
    summary = json.loads((report.parent / "summary.json").read_text())
    assert f"Too few null runs (< {MIN_NULL})" in summary["summary"]
    assert "main change point" in report.read_text()


def test_detect_sweep_calibrates_on_null_runs_and_writes_every_run(sweep):
    detect_sweep(sweep, Target("test/acc", 0.99), WIDE)
    ev = open_run(sweep / "t0").events()["detect"]
    assert "null runs" in ev["settings"]["calibration"]
    assert ev["target"]["step"] is not None and ev["start"]["step"] == 40
    assert open_run(sweep / "n0").events()["detect"]["target"]["step"] is None
    ews = open_run(sweep / "t0").table("ews")
    assert {"tau_ac1", "tau_variance"} <= set(ews.columns)


def test_single_run_detect_finds_the_onset_under_each_definition(tmp_path):
    rd = _make_run(tmp_path, "one", 3, 3000)
    block = detect(rd, Target("test/acc", 0.99, onset="change_point"), DetectConfig(surrogates=50))
    found = block["target"]["all"]
    assert 3000 <= found["threshold"] <= 3120  # the logistic reaches 0.99 ~ 4.6 widths later
    assert abs(found["max_slope"] - 3000) <= 20
    assert abs(found["change_point"] - 3000) <= 60
    assert block["target"]["step"] == found["change_point"]
    assert "AR(1) surrogates" in block["settings"]["calibration"]


def test_the_benchmark_itself_writes_nothing(tmp_path):
    root = write_sweep(tmp_path / "conf", 3, 0)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    res = compute_leadtime(root, Target("test/acc", 0.99), WIDE)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert set(res.tables) == {"leadtime", "roc", "change_point_leads", "window_sensitivity"}
    assert len(res.runs) == 3 and "Too few null runs" in res.meta["summary"]


def test_a_missing_target_names_the_keys_present(sweep, tmp_path):
    with pytest.raises(ConfigError, match=r"target='test/los'.*signal/x"):
        leadtime(sweep, Target("test/los", 0.1), out=tmp_path / "lt")


def test_report_shows_the_detect_section(tmp_path):
    from phasewatch.report import build_report

    rd = _make_run(tmp_path, "one", 5, 3000)
    detect(rd, Target("test/acc", 0.99), DetectConfig(surrogates=20))
    text = build_report(rd).read_text()
    assert "Transitions and early warnings" in text and "causal Kendall" in text
    assert "signal/x" in text


def test_cli_bad_input_exits_2_with_one_line(sweep):
    from typer.testing import CliRunner

    from phasewatch.cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, ["leadtime", str(sweep), "--target", "test/los"])
    assert res.exit_code == 2 and "present:" in res.output and "signal/x" in res.output
    res = runner.invoke(app, ["detect", str(sweep / "t0"), "--alpha", "2"])
    assert res.exit_code == 2 and "alpha" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["detect", str(sweep / "t1"), "--window-frac", "0.2"])
    assert res.exit_code == 0 and "onset (threshold) of test/acc" in res.output


def test_an_indicator_whose_threshold_exceeds_tau_max_is_reported_as_cannot_fire(tmp_path):
    import numpy as np

    from phasewatch.detect import ews
    from phasewatch.detect.run import analyse_run, write_detect

    # two of ten null maxima at τ = 1 and α = 0.1: θ must exceed 1, which τ never reaches
    theta = ews.calibrate(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.0]), 0.1)
    assert theta > 1.0 and not ews.can_fire(theta)
    assert ews.can_fire(ews.calibrate(np.linspace(0.1, 0.9, 10), 0.1)) and ews.can_fire(None)
    rd = _make_run(tmp_path, "one", 3, 3000)
    cfg = DetectConfig(surrogates=50)
    an = analyse_run(rd, Target("test/acc", 0.99), cfg)
    key = next(iter(an.scored))
    block = write_detect(an, {key: {"ac1": theta, "variance": 0.5}}, cfg, "by hand")
    assert block["warnings"][key]["ac1"] == {
        "step": None,
        "threshold": theta,
        "lead": None,
        "cannot_fire": True,
    }
    assert block["warnings"][key]["variance"]["cannot_fire"] is False


def test_leadtime_rows_say_whether_each_indicator_can_fire(sweep):
    table = compute_leadtime(sweep, Target("test/acc", 0.99), WIDE).tables["leadtime"]
    warn = table[table["indicator"] != "main_change_point"]
    assert len(warn) and (warn["cannot_fire"] == (warn["threshold"] > 1.0)).all()
