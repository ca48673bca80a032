"""The Watcher under torch.distributed, for real: ``torchrun --nproc_per_node 2`` on the
gloo backend (CPU) trains a tiny DDP model (tests/unit/watch_ddp_script.py); rank 0 writes
the one run directory, rank 1 writes nothing and receives rank 0's warnings; and the
single-process pieces (ranks from the environment, DDP unwrapping, FSDP refusal). The
torchrun test is ``slow`` (``pytest -m slow tests/unit/test_watch_distributed.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from phasewatch.errors import ConfigError
from phasewatch.store import open_run
from phasewatch.watch import ranks

SCRIPT = Path(__file__).with_name("watch_ddp_script.py")


@pytest.mark.slow  # ~14 s CPU in 3 processes (torch imported thrice); 38 s wall under load
def test_two_ranks_under_torchrun_write_one_run_from_rank_0(tmp_path):
    out, report = tmp_path / "run", tmp_path / "report"
    report.mkdir()
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPT.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    cmd += ["2", str(SCRIPT), str(out), str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["run_dir"], r1["run_dir"]) == (True, False)  # only rank 0 writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "run"]  # one run folder
    rd = open_run(out)
    cfg = rd.config()
    assert rd.status()["status"] == "done" and rd.status()["step"] == 199
    assert cfg["train"]["world_size"] == 2 and cfg["task"]["model"] == "Sequential"  # unwrapped
    m = rd.metrics().query("key == 'train/loss'").set_index("step")["value"]
    assert list(m.index) == list(range(200))
    mean = (pd.Series(r0["losses"]) + pd.Series(r1["losses"])) / 2  # the ranks' mean
    assert (m.to_numpy() - mean.to_numpy()).__abs__().max() < 1e-6
    assert r0["losses"] != r1["losses"]  # the ranks did differ
    sig = pd.read_parquet(out / "signals.parquet").query("key == 'grad/norm'")
    assert sorted(sig["step"]) == list(range(0, 200, 5))  # signals on rank 0's replica
    assert rd.checkpoint_steps() == [0, 50, 100, 150]
    # warnings fired on rank 0 and were broadcast to rank 1; close() agrees on both ranks
    assert r0["warnings"] and r1["warnings"] == r0["warnings"]
    assert r1["block_warnings"] == r0["block_warnings"] == r0["warnings"]
    assert r1["last_step"] == r0["last_step"] == 199


def test_ranks_come_from_the_environment_before_a_process_group(tmp_path, monkeypatch):
    from phasewatch import Watcher

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert ranks.ranks() == ranks.Ranks(1, 2, False)
    model = nn.Sequential(nn.Linear(4, 3))
    watch = Watcher(model, out=tmp_path / "r", signals=["geometry"], every=2)
    for step in range(6):
        watch.step(step, {"train/loss": 1.0})
    assert watch.close() == {} and not (tmp_path / "r").exists()  # rank 1 writes nothing
    monkeypatch.setenv("RANK", "0")
    watch = Watcher(model, out=tmp_path / "r", signals=["geometry"], every=2)
    watch.step(0, {"train/loss": 1.0})
    watch.close()
    assert open_run(tmp_path / "r").config()["train"]["world_size"] == 2


def test_sync_is_due_on_new_cadence_steps_only():
    sync = ranks.Sync(ranks.Ranks(0, 2, True), every=5)
    due = [s for s in (0, 0, 3, 5, 5, 4, 10, -1, True, 11, 15) if sync.due(s)]
    assert due == [0, 5, 10, 15]
    assert not ranks.Sync(ranks.Ranks(), every=5).due(0)  # one process: never


def test_a_ddp_wrapper_is_unwrapped_and_fsdp_is_refused_with_signals():
    inner = nn.Linear(2, 2)
    assert ranks.unwrap(nn.DataParallel(inner)) is inner and ranks.unwrap(inner) is inner
    assert not ranks.is_sharded(inner)
    ranks.check_sharded(inner, {"geometry": None})
    fsdp = pytest.importorskip("torch.distributed.fsdp")

    layer = nn.Linear(2, 2)  # given the class fully_shard gives a module (unsharded here)
    layer.__class__ = type("FSDPLinear", (fsdp.FSDPModule, nn.Linear), {})
    sharded = nn.Sequential(layer)
    assert ranks.is_sharded(sharded)
    with pytest.raises(ConfigError, match=r"signals=\['geometry'\].*allowed: \(\) for an FSDP"):
        ranks.check_sharded(sharded, {"geometry": None})
    ranks.check_sharded(sharded, {})


def test_mean_across_ranks_in_one_process_keeps_the_numbers():
    got = ranks.mean_across_ranks({"a": torch.tensor(2.0), "b": 3, "c": "x"})
    assert got == {"a": 2.0, "b": 3.0}
