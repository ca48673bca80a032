"""``phasewatch import tensorboard|csv``: TensorBoard event files (written here with
``torch.utils.tensorboard.SummaryWriter``) and CSV files (tidy as MLflow's metric history,
wide as W&B's history export) round-trip into ordinary run directories on which detect,
leadtime, forecast apply, report and ``runs ls`` work; bad input exits 2 with one line
naming the file and writes nothing."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from phasewatch.cli.app import app
from phasewatch.errors import ConfigError
from phasewatch.store import open_run
from phasewatch.store.importers import IMPORTED, import_csv, import_tensorboard, metric_key

pytest.importorskip("tensorboard")
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

STEPS = list(range(0, 200, 10))


def _write_tb(path, series: dict[str, list[float]], steps=STEPS, new_style=()) -> None:
    """Scalars as torch writes them (simple_value), or as TF2 does (a scalar tensor of the
    scalars plugin) for the tags in ``new_style``."""
    w = SummaryWriter(str(path))
    for i, s in enumerate(steps):
        for tag, values in series.items():
            w.add_scalar(tag, values[i], s, new_style=tag in new_style)
    w.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    _write_tb(
        root / "a",
        {
            "train/loss": [math.exp(-s / 50) for s in STEPS],
            "Loss/train": [1 / (1 + s) for s in STEPS],
            "test acc": [0.1 if s < 120 else 1.0 for s in STEPS],
        },
        new_style={"test acc"},
    )
    _write_tb(root / "b" / "train", {"train/loss": [1.0] * 9 + [math.nan] + [0.5] * 10})
    return root


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_metric_keys():
    assert metric_key("train/loss") == "train/loss"
    assert metric_key("Loss/train") == "Loss/train"
    assert metric_key(" val  acc ") == "val_acc"
    assert metric_key("/eval//loss/") == "eval/loss"


def test_tensorboard_round_trip(logdir, tmp_path):
    r = _invoke("import", "tensorboard", logdir, "--out", tmp_path / "x")
    assert r.exit_code == 0, r.output
    assert "x/a: 3 key(s), 60 point(s), steps 0–190" in r.stdout
    assert "x/b-train: 1 key(s), 19 point(s)" in r.stdout and "skipped 1 non-finite" in r.stdout
    rd = open_run(tmp_path / "x" / "a")
    cfg = rd.config()
    assert cfg["phenomenon"] == IMPORTED and cfg["preset"] == "tensorboard"
    assert cfg["train"] == {"steps": 190} and cfg["task"]["source"] == str(logdir / "a")
    assert cfg["task"]["renamed"] == {"test acc": "test_acc"}
    assert rd.status()["status"] == "done" and rd.status()["step"] == 190
    assert rd.events() == {"onsets": {}}
    assert rd.env()["reader"].startswith("tensorboard ")
    m = rd.metrics()
    assert list(m.columns) == ["step", "key", "value"] and str(m["step"].dtype) == "int64"
    loss = m[m["key"] == "train/loss"].set_index("step")["value"]
    assert np.allclose(loss.to_numpy(), [math.exp(-s / 50) for s in STEPS], rtol=1e-6)
    assert sorted(m["key"].unique()) == ["Loss/train", "test_acc", "train/loss"]
    acc = m[m["key"] == "test_acc"].set_index("step")["value"]  # the TF2-style tag
    assert acc.loc[110] == pytest.approx(0.1) and acc.loc[120] == 1.0
    # a single run directory becomes --out itself
    one = import_tensorboard(logdir / "a", tmp_path / "one")
    assert len(one) == 1 and one[0].run.path == tmp_path / "one" and one[0].points == 60


def _wandb_csv(path, onset: int | None, seed: int = 0, n: int = 41) -> None:
    """W&B's history export: _step, _runtime, _timestamp and one column per metric; a
    metric logged every other step leaves blank cells."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n) * 50
    acc = np.where(steps >= onset, 1.0, 0.1) if onset else np.full(n, 0.1)
    rise = np.clip((steps - 300) / 600, 0, None) if onset else np.zeros(n)
    df = pd.DataFrame(
        {
            "_step": steps,
            "_runtime": steps * 0.1,
            "_timestamp": 1.7e9 + steps,
            "train/loss": np.exp(-steps / 800),
            "test/acc": acc,
            "precursor level": rise + rng.normal(0, 0.05, n),
            "eval/loss": [f"{v:.4f}" if i % 2 == 0 else "" for i, v in enumerate(1 - acc)],
        }
    )
    df.to_csv(path, index=False)


def test_csv_wide_wandb_round_trip(tmp_path):
    _wandb_csv(tmp_path / "h.csv", onset=1000)
    r = _invoke("import", "csv", tmp_path / "h.csv", "--out", tmp_path / "w",
                "--onset", "memorisation=100")  # fmt: skip
    assert r.exit_code == 0, r.output
    rd = open_run(tmp_path / "w")
    cfg = rd.config()
    assert cfg["preset"] == "csv" and cfg["task"]["format"] == "wide"
    assert cfg["task"]["step_column"] == "_step" and cfg["train"]["steps"] == 2000
    m = rd.metrics()
    assert sorted(m["key"].unique()) == ["eval/loss", "precursor_level", "test/acc", "train/loss"]
    assert (m["key"] == "eval/loss").sum() == 21  # blank cells are not rows
    assert rd.events()["onsets"]["memorisation"]["step"] == 100


def test_csv_tidy_mlflow_round_trip(tmp_path):
    # MLflow's metric history (get_metric_history -> key, value, timestamp, step)
    rows = [
        {"key": k, "value": v, "timestamp": 1700000000000 + s, "step": s}
        for s in range(0, 100, 10)
        for k, v in (("loss", 1 / (1 + s)), ("val acc", s / 100))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    done = import_csv(tmp_path / "m.csv", tmp_path / "t")
    assert (done.keys, done.points, done.first_step, done.last_step) == (2, 20, 0, 90)
    m = done.run.metrics()
    assert done.run.config()["task"]["format"] == "tidy"
    got = m[m["key"] == "val_acc"].set_index("step")["value"]
    assert got.loc[90] == 0.9 and m[m["key"] == "loss"]["value"].iloc[1] == 1 / 11


def test_detect_report_runs_ls_on_imported_run(tmp_path):
    from phasewatch.report import build_report
    from phasewatch.store.index import list_runs

    _wandb_csv(tmp_path / "h.csv", onset=1000)
    import_csv(tmp_path / "h.csv", tmp_path / "runs" / "r", onsets={"memorisation": 100})
    r = _invoke("detect", tmp_path / "runs" / "r", "--threshold", "0.5")
    assert r.exit_code == 0, r.output
    assert "onset (threshold) of test/acc >= 0.5: step 1,000" in r.stdout
    rd = open_run(tmp_path / "runs" / "r")
    assert rd.events()["detect"]["target"]["step"] == 1000
    assert build_report(rd).exists()
    assert list_runs(tmp_path / "runs")[0]["phenomenon"] == IMPORTED


def test_leadtime_and_forecast_apply_on_imported_runs(tmp_path):
    for i, onset in enumerate([1000, 1200, 1400, None, None, None]):
        _wandb_csv(tmp_path / f"{i}.csv", onset, seed=i)
        name = f"{'t' if onset else 'n'}{i}"
        import_csv(tmp_path / f"{i}.csv", tmp_path / "train" / name)
    _wandb_csv(tmp_path / "new.csv", 1300, seed=9)
    import_csv(tmp_path / "new.csv", tmp_path / "new" / "t")
    r = _invoke("leadtime", tmp_path / "train", "--threshold", "0.5", "--start-event", "")
    assert r.exit_code == 0, r.output
    assert "3 transition" in r.stdout and (tmp_path / "train" / "leadtime" / "report.html").exists()
    common = ["--threshold", "0.5", "--event", "", "--offset-frac", "0.4"]
    r = _invoke("forecast", "fit", tmp_path / "train", "--out", tmp_path / "model",
                "--features", "precursor_level|*", *common)  # fmt: skip
    assert r.exit_code == 0, r.output
    r = _invoke("forecast", "apply", tmp_path / "model", tmp_path / "new")
    assert r.exit_code == 0, r.output
    scored = [line for line in r.stdout.splitlines() if "new/t" in line]
    assert len(scored) == 1 and " True " in scored[0]  # scored (not excluded), and alarms


def _truncated(logdir, tmp_path):
    src = next((logdir / "a").glob("*tfevents*"))
    bad = tmp_path / "in" / "run"
    bad.mkdir(parents=True)
    (bad / src.name).write_bytes(src.read_bytes()[:-7])
    return tmp_path / "in", "truncated or corrupted (bad record at byte"


def _not_tensorboard(logdir, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "events.out.tfevents.1.host").write_text("step,loss\n0,1.0\n")
    return bad, "not a TensorBoard event file"


def _tb_duplicate(logdir, tmp_path):
    _write_tb(tmp_path / "in", {"loss": [1.0, 2.0]}, steps=[5, 5])
    return tmp_path / "in", "duplicate step 5 for key 'loss'"


def _second_run_bad(logdir, tmp_path):
    """The first run is fine, the second truncated: neither may be written."""
    _write_tb(tmp_path / "in" / "a", {"loss": [1.0, 2.0]}, steps=[0, 1])
    src = next((tmp_path / "in" / "a").glob("*tfevents*"))
    (tmp_path / "in" / "b").mkdir()
    (tmp_path / "in" / "b" / src.name).write_bytes(src.read_bytes()[:-3])
    return tmp_path / "in", "truncated or corrupted"


def _csv(text: str, problem: str):
    def make(logdir, tmp_path):
        (tmp_path / "in.csv").write_text(text)
        return tmp_path / "in.csv", problem

    return make


BAD = {
    "tb-truncated": ("tensorboard", _truncated),
    "tb-not-tensorboard": ("tensorboard", _not_tensorboard),
    "tb-duplicate-steps": ("tensorboard", _tb_duplicate),
    "tb-second-run-bad": ("tensorboard", _second_run_bad),
    "csv-no-step": ("csv", _csv("epoch_time,loss\n1,0.5\n", "no step column (columns: epoch")),
    "csv-non-numeric": ("csv", _csv("step,loss\n0,0.5\n1,abc\n", "line 3, column 'loss': value")),
    "csv-duplicate-steps": ("csv", _csv("step,loss\n0,0.5\n0,0.4\n", "duplicate step 0")),
    "csv-bad-step": ("csv", _csv("_step,loss\n0.5,1\n", "step '0.5' is not an integer")),
    "csv-tidy-text": ("csv", _csv("step,key,value\n0,loss,x\n", "value 'x' is not a number")),
    "csv-empty": ("csv", _csv("", "empty")),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, logdir, tmp_path):
    kind, make = BAD[case]
    src, problem = make(logdir, tmp_path)
    r = _invoke("import", kind, src, "--out", tmp_path / "out")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], lines
    assert str(src) in lines[0] or src.name in lines[0]
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp folder


def test_existing_out_and_bad_onset_exit_2(logdir, tmp_path):
    (tmp_path / "x").mkdir()
    r = _invoke("import", "tensorboard", logdir / "a", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = _invoke("import", "tensorboard", logdir / "a", "--out", tmp_path / "x", "--replace")
    assert r.exit_code == 0 and (tmp_path / "x" / "config.json").exists()
    r = _invoke("import", "tensorboard", logdir / "a", "--out", tmp_path / "y", "--onset", "x")
    assert r.exit_code == 2 and "--onset 'x' is invalid" in r.stderr
    with pytest.raises(ConfigError, match="both become key"):
        (tmp_path / "c.csv").write_text("step,a b,a_b\n0,1,2\n")
        import_csv(tmp_path / "c.csv", tmp_path / "z")
    assert json.loads((tmp_path / "x" / "config.json").read_text())["phenomenon"] == IMPORTED
