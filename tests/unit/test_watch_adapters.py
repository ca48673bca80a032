"""The Hugging Face and Lightning callbacks and the examples, each trained for real on a
tiny model built locally (nothing is downloaded)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from phasewatch.cli.app import app
from phasewatch.store import open_run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))


def _check_measure(out: Path, checkpoints: list[int]) -> None:
    """``phasewatch measure`` rebuilds the model from the example's factory and finds the
    gradients the Watcher measured in the loop."""
    import pandas as pd

    live = pd.read_parquet(out / "signals.parquet").query("key == 'grad/norm'")
    live = live.set_index("step")["value"].loc[checkpoints]
    (out / "signals.parquet").unlink()
    args = ["measure", str(out), "--signals", "gradients", "--every", "1", "--no-progress"]
    args += ["--trust-run-factory"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    later = pd.read_parquet(out / "signals.parquet").query("key == 'grad/norm'")
    pd.testing.assert_series_equal(later.set_index("step")["value"], live, rtol=1e-4)


def _check_run(out: Path, metric: str, signal_steps: list[int]) -> None:
    rd = open_run(out)
    assert rd.status()["status"] == "done" and rd.config()["phenomenon"] == "watch"
    assert metric in set(rd.metrics()["key"])
    sig = rd.path / "signals.parquet"
    import pandas as pd

    steps = sorted(pd.read_parquet(sig).query("key == 'grad/norm'")["step"])
    assert steps == signal_steps
    w = rd.events()["watch"]
    assert w["disabled"] == {} and "detect" in rd.events()
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output


def test_hf_trainer_callback_watches_a_tiny_gpt2(tmp_path):
    pytest.importorskip("transformers")
    import watch_hf_trainer

    torch.set_num_threads(1)
    args = ["--steps", "40", "--every", "10", "--checkpoint-every", "20"]
    out = watch_hf_trainer.main([*args, "--out", str(tmp_path / "hf")])
    _check_run(out, "train/loss", [10, 20, 30, 40])
    assert open_run(out).config()["train"]["steps"] == 40  # the Trainer's max_steps
    _check_measure(out, [20, 40])


def test_lightning_callback_watches_a_tiny_mlp(tmp_path):
    pytest.importorskip("lightning")
    import watch_lightning

    torch.set_num_threads(1)
    args = ["--steps", "40", "--every", "10", "--checkpoint-every", "20"]
    out = watch_lightning.main([*args, "--out", str(tmp_path / "pl")])
    _check_run(out, "train/loss", [10, 20, 30, 40])
    assert open_run(out).config()["train"]["steps"] == 40
    _check_measure(out, [20, 40])


def test_plain_example_runs_with_tiny_settings(tmp_path):
    import watch_mlp_grokking

    out = watch_mlp_grokking.main(
        ["--p", "23", "--steps", "300", "--every", "50", "--lr", "1e-2", "--out", str(tmp_path)]
    )
    _check_run(out, "val/acc", [0, 50, 100, 150, 200, 250])


def test_hf_log_names_become_slash_keys():
    pytest.importorskip("transformers")
    from phasewatch.watch.hf import log_metrics

    logs = {"loss": 2.5, "grad_norm": 1.0, "eval_loss": 3.0, "epoch": 0.5, "train_loss": 2.0}
    assert log_metrics(logs) == {"train/loss": 2.5, "train/grad_norm": 1.0, "eval/loss": 3.0}
