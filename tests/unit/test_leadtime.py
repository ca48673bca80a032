"""detect / leadtime on synthetic run directories with planted transitions.

Each run logs every 10 steps for 4,000 planned steps. Transition runs: ``signal/x`` is an
AR(1) process whose coefficient ramps from 0 to 0.98 at the onset (critical slowing
down), and ``test/acc`` jumps (logistic) at the onset, drawn per run from 2,600–3,400.
Null runs: the same with a constant coefficient 0.5 and no jump. ``train/acc`` memorises
at step 40 in every run (the analysis starts there).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from phasewatch.detect.leadtime import MIN_NULL, detect_sweep, leadtime
from phasewatch.detect.run import DetectConfig, detect
from phasewatch.detect.transitions import Target
from phasewatch.errors import ConfigError
from phasewatch.store import create_run, open_run

STEPS = np.arange(0, 4001, 10)


def _make_run(root, name: str, seed: int, onset: int | None, status: str = "done"):
    rng = np.random.default_rng(seed)
    n = len(STEPS)
    if onset is None:
        phi = np.full(n, 0.5)
    else:
        phi = np.clip(STEPS / onset * 0.98, 0, 0.98)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi[t] * x[t - 1] + rng.normal(0, 0.1)
    acc = 0.02 + (0.98 / (1 + np.exp(-(STEPS - onset) / 20.0)) if onset else 0 * STEPS)
    train_acc = np.where(STEPS >= 40, 1.0, 0.1)
    cfg = {
        "phenomenon": "grokking",
        "preset": "small",
        "task": {"p": 47, "train_frac": 0.4 if onset else 0.3},
        "train": {"seed": seed, "steps": 4000, "weight_decay": 1.0 if onset else 0.0},
    }
    rd = create_run(root, name, cfg, {})
    rows = [
        pd.DataFrame({"step": STEPS, "key": k, "value": v})
        for k, v in (("signal/x", x), ("test/acc", acc), ("train/acc", train_acc))
    ]
    rd.write_metrics(pd.concat(rows, ignore_index=True))
    rd.write_events(
        {
            "onsets": {"memorisation": {"step": 40}},
            "key_frequencies": [3, 7] if onset and seed % 2 else [5] if onset else [],
        }
    )
    rd.set_status(status, 4000)
    return rd


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    onsets = np.random.default_rng(0).integers(2600, 3400, 14)
    for i, onset in enumerate(onsets):
        _make_run(root, f"t{i}", i, int(onset))
    for i in range(MIN_NULL + 4):
        _make_run(root, f"n{i}", 100 + i, None)
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
    assert summary["critical_data_size"]["per_fraction"] == {"0.3": 0.0, "0.4": 1.0}
    assert summary["polymorphs"]["distinct_sets"] == 2
    roc = pd.read_parquet(out / "roc.parquet")
    assert roc["hit_rate"].between(0, 1).all() and "signal/x" in set(roc["key"])
    assert "ROC" in report.read_text() and "| key |" in (out / "leadtime.md").read_text()


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

    from phasewatch.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["leadtime", str(sweep), "--target", "test/los"])
    assert res.exit_code == 2 and "present:" in res.output and "signal/x" in res.output
    res = runner.invoke(app, ["detect", str(sweep / "t0"), "--alpha", "2"])
    assert res.exit_code == 2 and "alpha" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["detect", str(sweep / "t1"), "--window-frac", "0.2"])
    assert res.exit_code == 0 and "onset (threshold) of test/acc" in res.output
