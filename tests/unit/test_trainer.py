"""The training loop: resume equivalence, NaN stop, checkpoints and metrics on disk."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
import torch

from phasewatch import api
from phasewatch.errors import ConfigError, RunFailed
from phasewatch.phenomena.grokking.task import GrokkingTask
from phasewatch.store import open_run
from phasewatch.training.updates import GAP_CAP, STATE_KEY, WINDOW, split_state


def _final_weights(rd):
    return rd.load_checkpoint(rd.checkpoint_steps()[-1])


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, tiny, monkeypatch):
    straight = api.run("grokking", "quick", tiny, out=tmp_path / "a", progress=False)

    real_loss, calls = GrokkingTask.train_loss, {"n": 0}

    def dying_loss(self, step):
        calls["n"] += 1
        if calls["n"] == 26:  # mid-way between the checkpoints at steps 20 and 30
            raise KeyboardInterrupt
        return real_loss(self, step)

    monkeypatch.setattr(GrokkingTask, "train_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        api.run("grokking", "quick", tiny, out=tmp_path / "b", progress=False)
    monkeypatch.setattr(GrokkingTask, "train_loss", real_loss)
    (killed,) = (tmp_path / "b").iterdir()
    rd = open_run(killed)
    assert rd.status()["status"] == "running" and rd.checkpoint_steps()[-1] == 20

    resumed = api.run("grokking", resume=killed, progress=False)
    assert resumed.status()["status"] == "done"
    a, b = _final_weights(straight), _final_weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ma, mb = straight.metrics(), resumed.metrics()
    pd.testing.assert_frame_equal(ma, mb)
    assert resumed.events()["onsets"] == straight.events()["onsets"]


def test_resume_rejects_config_flags(tmp_path, tiny):
    rd = api.run("grokking", "quick", tiny, out=tmp_path, progress=False, report=False)
    with pytest.raises(ConfigError, match="drop: lr"):
        api.run("grokking", resume=rd.path, overrides={"lr": 0.1}, progress=False)


def test_nan_loss_marks_run_failed_and_keeps_last_checkpoint(tmp_path, tiny):
    tiny.update(lr=1e30, warmup_steps=0, steps=200)
    with pytest.raises(RunFailed, match="non-finite training loss"):
        api.run("grokking", "quick", tiny, out=tmp_path, progress=False)
    (path,) = tmp_path.iterdir()
    rd = open_run(path)
    status = rd.status()
    assert status["status"] == "failed" and status["step"] > 0
    steps = rd.checkpoint_steps()
    assert steps and steps[-1] <= status["step"]
    for t in rd.load_checkpoint(steps[-1]).values():
        assert torch.isfinite(t).all()
    assert rd.metrics()["step"].max() <= status["step"]


def test_store_layout_and_tidy_metrics(tmp_path, tiny):
    rd = api.run("grokking", "quick", tiny, out=tmp_path, progress=False)
    for name in (
        "config.json",
        "env.json",
        "status.json",
        "metrics.parquet",
        "events.json",
        "report.html",
        "figures/curves.png",
    ):
        assert (rd.path / name).is_file(), name
    assert rd.checkpoint_steps() == [0, 10, 20, 30, 40]
    assert len(list(rd.checkpoint_dir.glob("optim_step_*"))) == 1  # resume point only
    df = pd.read_parquet(rd.path / "metrics.parquet")
    assert list(df.columns) == ["step", "key", "value"]
    assert set(df["step"]) == set(range(0, 41, 5))
    con = duckdb.connect()
    n = con.execute(
        f"select count(*) from '{rd.path / 'metrics.parquet'}' where key = 'test/acc'"
    ).fetchone()[0]
    assert n == 9
    env = rd.env()
    assert env["torch"] == torch.__version__ and env["torch_threads"] == 1 and env["cpu"]
    ev = rd.events()
    assert set(ev["onsets"]) == {
        "memorisation",
        "generalisation_50",
        "generalisation",
        "test_loss_peak",
    }


def test_tiny_run_logs_the_update_gram_at_eval_steps(tmp_path, tiny):
    """``updates/gram_*`` at every eval step from W = 10 on (the window needs 10 updates)."""
    rd = api.run("grokking", "quick", tiny, out=tmp_path, progress=False, report=False)
    m = rd.metrics()
    gap = m[m["key"] == "updates/gram_gap"].set_index("step")["value"]
    frac = m[m["key"] == "updates/gram_top_frac"].set_index("step")["value"]
    assert gap.index.tolist() == frac.index.tolist() == list(range(10, 41, 5))
    assert (gap >= 1).all() and (gap < GAP_CAP).all()
    assert ((frac >= 1 / WINDOW) & (frac <= 1)).all()
    _, _, optim = rd.resume_point()
    assert optim["state"][STATE_KEY]["ring"].numel() == WINDOW * sum(
        v.numel() for v in _final_weights(rd).values() if v.is_floating_point()
    )


def test_resume_without_a_stored_window_is_exact_but_for_the_next_w_steps(
    tmp_path, tiny, monkeypatch
):
    """A resume point without the update window (written before it existed): the first W
    steps after the resume have no ``updates/…`` value; everything else is bit-exact."""
    straight = api.run("grokking", "quick", tiny, out=tmp_path / "a", progress=False)
    real_loss, calls = GrokkingTask.train_loss, {"n": 0}

    def dying_loss(self, step):
        calls["n"] += 1
        if calls["n"] == 26:
            raise KeyboardInterrupt
        return real_loss(self, step)

    monkeypatch.setattr(GrokkingTask, "train_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        api.run("grokking", "quick", tiny, out=tmp_path / "b", progress=False)
    monkeypatch.setattr(GrokkingTask, "train_loss", real_loss)
    (killed,) = (tmp_path / "b").iterdir()
    rd = open_run(killed)
    start, weights, optim = rd.resume_point()
    rd.save_checkpoint(start, weights, split_state(optim)[0])  # drop the window
    resumed = api.run("grokking", resume=killed, progress=False, report=False)
    ma, mb = straight.metrics(), resumed.metrics()
    gap = (ma["key"].str.startswith("updates/")) & ma["step"].between(start, start + WINDOW - 1)
    assert set(ma[gap]["step"]) == {20, 25}
    pd.testing.assert_frame_equal(ma[~gap].reset_index(drop=True), mb.reset_index(drop=True))
