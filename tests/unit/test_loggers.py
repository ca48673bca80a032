"""Logging out (phasewatch.watch.loggers): the Watcher's signals and early warnings and
``phasewatch run --log-to``'s metrics in TensorBoard, W&B (offline) and MLflow (a local
file store), each read back from what the tracker wrote; bad names and missing packages."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_configs import GROKKING
from torch import nn
from typer.testing import CliRunner

from phasewatch import Watcher
from phasewatch.cli.app import app
from phasewatch.errors import ConfigError, MissingDependency
from phasewatch.watch.loggers import LOGGERS, WARNINGS, names

SIGNAL = "geometry/norm/total"


@pytest.fixture
def trackers(tmp_path, monkeypatch) -> Path:
    """W&B offline in tmp_path/wandb; MLflow's file store in tmp_path/mlruns."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow >= 3.7 wants a database
    return tmp_path


def _watch(out: Path, **kwargs) -> Watcher:
    """A tiny model watched for 300 steps (geometry every 10) on a metric whose variance
    grows, so an early warning fires (at step 89)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    watch = Watcher(model, out=out, steps=300, every=10, signals=["geometry"], **kwargs)
    rng, x = np.random.default_rng(0), 0.0
    for step in range(300):
        x = 0.5 * x + rng.normal() * (1 + (step / 40) ** 2)
        watch.step(step, {"val/loss": x})
    watch.close()
    assert watch.detector.warnings and watch.problems.messages == []
    return watch


def _tensorboard(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _tb_texts(acc, tag: str) -> list[tuple[int, str]]:
    from tensorboard.util import tensor_util

    events = acc.Tensors(f"{tag}/text_summary")
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode()) for e in events]


def _wandb_records(root: Path) -> list:
    """The records of the one offline run under ``root`` (W&B's LevelDB-style log: a
    7-byte header, 32 KiB blocks of chunks with a 7-byte crc/length/type header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = root.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, buf, out = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # block trailer
            pos += 32768 - pos % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        buf, pos = buf + data[pos + 7 : pos + 7 + n], pos + 7 + n
        if kind in (1, 4):  # a full record or a record's last chunk
            out.append(pb.Record.FromString(buf))
            buf = b""
    return out


def _wandb_history(records, key: str) -> list[tuple[int, float]]:
    """``(phasewatch/step, value)`` of ``key`` in the run's history rows."""
    out = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {"/".join(i.nested_key) or i.key: i.value_json for i in r.history.item}
            if key in row:
                out.append((int(row["phasewatch/step"]), float(row[key])))
    return out


def test_names_accept_lists_and_commas_and_refuse_unknown_ones():
    assert names(["mlflow", "tensorboard,mlflow"]) == ("mlflow", "tensorboard")
    assert names("wandb") == ("wandb",) and names(None) == ()
    with pytest.raises(ConfigError, match="unknown logger 'tb'; allowed: tensorboard, wandb, ml"):
        names("tensorboard,tb")


def test_watcher_logs_signals_and_warnings_to_all_three_trackers(trackers):
    from mlflow.tracking import MlflowClient
    from torch.utils.tensorboard import SummaryWriter

    mine = SummaryWriter(str(trackers / "my_tb"))  # a writer the user already has
    watch = _watch(trackers / "run", log_to="tensorboard,wandb,mlflow", loggers=[mine])
    sig_steps = list(range(0, 300, 10))
    warning = watch.detector.warnings[0]
    for log_dir in (trackers / "run" / "tensorboard", trackers / "my_tb"):
        acc = _tensorboard(log_dir)
        assert [e.step for e in acc.Scalars(SIGNAL)] == sig_steps
        assert _tb_texts(acc, WARNINGS)[0] == (warning.step, str(warning))
    mine.add_scalar("mine/after", 1.0, 0)  # the user's writer is still open

    records = _wandb_records(trackers)
    assert [s for s, _ in _wandb_history(records, SIGNAL)] == sig_steps
    alerts = [r.alert for r in records if r.WhichOneof("record_type") == "alert"]
    assert alerts[0].text == str(warning) and alerts[0].title.startswith(WARNINGS)

    assert not watch.out  # closed and emptied at close()
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("phasewatch").experiment_id])
    history = client.get_metric_history(run.info.run_id, SIGNAL)
    assert sorted(m.step for m in history) == sig_steps
    assert run.data.tags[WARNINGS] == str(warning) and run.info.status == "FINISHED"


def test_a_failing_logger_is_dropped_and_reported_never_raised(tmp_path):
    class Broken:
        def log_scalars(self, step, values):
            raise OSError("disk full")

        def log_text(self, step, tag, text):
            pass

        def close(self):
            pass

    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    watch = Watcher(model, out=tmp_path / "r", signals=["geometry"], every=1, loggers=[Broken()])
    for step in range(3):
        watch.step(step, {"x": 1.0})
    watch.close()
    (message,) = watch.problems.messages[-1:]
    assert "logger Broken dropped" in message and "disk full" in message
    assert not watch.out  # dropped: nothing else is called


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"log_to": "tensorboard,neptune"}, "log_to: unknown logger 'neptune'; allowed:"),
        ({"log_to": [3]}, "log_to=.*allowed: names among"),
        ({"loggers": [object()]}, "loggers: object is not a logger; allowed: a SummaryWriter"),
    ],
)
def test_watcher_refuses_bad_loggers_before_writing(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Watcher(nn.Linear(3, 2), out=tmp_path / "r", signals=["geometry"], **kwargs)
    assert not (tmp_path / "r").exists()


def test_a_missing_package_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # how Python marks a module unimportable
    with pytest.raises(MissingDependency, match=r"pip install 'phasewatch\[wandb\]'"):
        Watcher(nn.Linear(3, 2), out=tmp_path / "r", signals=["geometry"], log_to=["wandb"])
    assert not (tmp_path / "r").exists()
    flags = ["run", "grokking", "--preset", "quick", "--out", str(tmp_path / "c")]
    res = CliRunner().invoke(app, [*flags, "--log-to", "mlflow,wandb"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "logger 'wandb' needs the wandb package; install it with: pip install" in res.output
    assert not (tmp_path / "c").exists()


def test_cli_refuses_an_unknown_logger_in_one_line(tmp_path):
    flags = ["run", "grokking", "--preset", "quick", "--out", str(tmp_path)]
    res = CliRunner().invoke(app, [*flags, "--log-to", "tensorboard", "--log-to", "comet"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert f"--log-to: unknown logger 'comet'; allowed: {', '.join(LOGGERS)}" in res.output
    assert list(tmp_path.iterdir()) == []


def test_run_logs_its_metrics_live_to_the_trackers(trackers):
    from mlflow.tracking import MlflowClient

    tiny = [f"--{k.replace('_', '-')}={v}" for k, v in (GROKKING | {"threads": 1}).items()]
    out = trackers / "runs"
    flags = ["run", "grokking", "--preset", "quick", "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(
        app, [*flags, *tiny, "--log-to", "tensorboard,mlflow", "--log-to=wandb"]
    )
    assert res.exit_code == 0, res.output
    (rd,) = out.iterdir()
    evals = list(range(0, GROKKING["steps"] + 1, GROKKING["eval_every"]))
    acc = _tensorboard(rd / "tensorboard")
    assert [e.step for e in acc.Scalars("test/acc")] == evals
    ((step, summary),) = _tb_texts(acc, "phasewatch/summary")
    assert step == GROKKING["steps"] and summary.strip()

    assert [s for s, _ in _wandb_history(_wandb_records(trackers), "train/loss")] == evals
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("phasewatch").experiment_id])
    assert run.info.run_name == rd.name
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test/acc")] == evals
