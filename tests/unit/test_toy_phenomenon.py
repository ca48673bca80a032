"""A phenomenon defined only in ``tests/`` (``tests/toy_phenomenon.py``) goes through
``run``, ``measure``, ``detect`` and ``report`` on the command line without any edit under
``src/``: registering it with :func:`phasewatch.phenomena.register` before the CLI is
built is all it takes (the CLI's flags come from its config dataclass)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

TESTS = Path(__file__).resolve().parents[1]
# Import the user's phenomenon, then start the ordinary entry point.
PRELUDE = (
    f"import sys; sys.path.insert(0, {str(TESTS)!r}); import toy_phenomenon; "
    "from phasewatch.cli.app import main; sys.argv[0] = 'phasewatch'; main()"
)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRELUDE, *args], capture_output=True, text=True, timeout=600
    )


def test_run_measure_detect_report_a_phenomenon_defined_in_tests(tmp_path):
    r = cli("run", "toy-teacher", "--help")
    assert r.returncode == 0 and "--hidden" in r.stdout and "--n-train" in r.stdout

    bad = cli("run", "toy-teacher", "--hidden", "0", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2
    assert "hidden=0 is invalid; allowed: an integer >= 1" in bad.stderr
    assert not (tmp_path / "bad").exists()

    r = cli("run", "toy-teacher", "--seed", "3", "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 0, r.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["phenomenon"] == "toy-teacher" and cfg["train"]["seed"] == 3
    metrics = pd.read_parquet(run / "metrics.parquet")
    acc = metrics[metrics["key"] == "test/acc"].sort_values("step")["value"].to_numpy()
    assert acc[-1] > 0.8 and acc[-1] > acc[0] + 0.2  # the student learns the teacher
    cos = metrics[metrics["key"] == "progress/cos_to_final"].sort_values("step")["value"]
    assert len(cos) == 7 and abs(cos.iloc[-1] - 1.0) < 1e-6  # whole-run measure stored
    events = json.loads((run / "events.json").read_text())
    assert events["toy"] == {"checkpoints": 7}
    assert events["onsets"]["memorisation"]["key"] == "train/acc"

    r = cli("measure", str(run), "--signals", "hessian,gradients", "--every", "3")
    assert r.returncode == 0, r.stderr
    signals = pd.read_parquet(run / "signals.parquet")
    assert sorted(signals["step"].unique()) == [0, 30, 60]
    assert {"hessian", "gradients"} <= set(signals["signal"])

    r = cli("detect", str(run), "--threshold", "0.8")
    assert r.returncode == 0, r.stderr
    detect = json.loads((run / "events.json").read_text())["detect"]
    assert detect["target"]["key"] == "test/acc" and detect["target"]["step"] is not None
    assert (
        detect["target"]["threshold"] == 0.8 and (run / "tables" / "change_points.parquet").exists()
    )

    r = cli("report", str(run))
    assert r.returncode == 0, r.stderr
    html = (run / "report.html").read_text()
    assert "id='toy-section'" in html and "7 checkpoints compared" in html
