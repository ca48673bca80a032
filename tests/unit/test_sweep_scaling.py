"""Sweeps keep every worker busy and treat members like single runs: a worker takes the
next unit the moment it finishes one (uneven member lengths, recorded start/end times),
units go longest first, each member trains under the run lock a single run takes, and its
env.json records the torch thread count in force while it trained."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from tiny_configs import GROKKING as TINY

from phasewatch.store.lock import run_lock
from phasewatch.sweep.executors import LocalSession, longest_first, run_unit

LONG, SHORT, TOL = 2.5, 0.6, 0.5  # seconds; TOL absorbs wake-up delays on a loaded machine


def sleepy_unit(unit: dict) -> list[dict]:
    """A pool worker's unit that sleeps its length; records pid, start and end."""
    t0 = time.time()
    time.sleep(unit["members"][0][1]["sleep"])
    t1 = time.time()
    return [
        {"path": p, "status": "done", "pid": os.getpid(), "start": t0, "end": t1}
        for p, _ in unit["members"]
    ]


def unit(name: str, seconds: float) -> dict:
    cfg = {"sleep": seconds, "train": {"steps": int(seconds * 100)}}
    return {"members": [[name, cfg]], "batched": False, "report": False}


def test_longest_first_orders_by_member_steps():
    units = [unit("a", 0.1), unit("b", 1.0), unit("c", 0.1), unit("d", 0.5)]
    assert [u["members"][0][0] for u in longest_first(units)] == ["b", "d", "a", "c"]


def test_no_worker_idles_while_units_remain(tmp_path):
    units = [unit(f"short{i}", SHORT) for i in range(6)] + [unit("long", LONG)]
    rows = LocalSession(2, run=sleepy_unit).execute(units, tmp_path, progress=False)
    assert sorted(r["path"] for r in rows) == sorted(u["members"][0][0] for u in units)
    by_worker: dict[int, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["start"]):
        by_worker.setdefault(r["pid"], []).append(r)
    assert len(by_worker) == 2
    last_start = max(r["start"] for r in rows)
    for done in by_worker.values():
        gaps = [b["start"] - a["end"] for a, b in zip(done, done[1:])]
        assert all(g < TOL for g in gaps), gaps  # took the next unit at once
        assert done[-1]["end"] > last_start - TOL  # did not stop while units remained
    first = min(rows, key=lambda r: r["start"])
    long = next(r for r in rows if r["path"] == "long")
    assert long["start"] - first["start"] < TOL  # the longest unit started first
    # the other worker took the short units meanwhile: a static split (4 + 3 units, the
    # long one among them) would end >= LONG + 3 * SHORT after the first start
    assert max(r["end"] for r in rows) - first["start"] < LONG + 3 * SHORT - TOL


@pytest.fixture
def members(tmp_path):
    from phasewatch.sweep import spec as sw

    s = sw.build_spec(
        {"phenomenon": "grokking", "preset": "quick", "seeds": "0:2", "set": dict(TINY)}
    )
    short = {"steps": 10, "eval_every": 5, "checkpoint_every": 10}
    return [
        [str(m.path), m.config | {"train": m.config["train"] | short}]
        for m in sw.members(s, tmp_path / "sweep")
    ]


def test_member_trains_under_its_run_lock_and_a_locked_one_is_left_alone(members, monkeypatch):
    import phasewatch.api.runs as runs
    from phasewatch.errors import ConfigError

    held = []
    real = runs.train

    def train_checking_lock(run, task, cfg, **kwargs):
        with pytest.raises(ConfigError, match="another phasewatch process"), run_lock(run.path):
            pass  # a second taker (as `phasewatch run --resume` would) is refused
        held.append(run.path.name)
        return real(run, task, cfg, **kwargs)

    monkeypatch.setattr(runs, "train", train_checking_lock)
    busy = Path(members[0][0])
    busy.mkdir(parents=True)
    with run_lock(busy):  # e.g. `phasewatch run grokking --resume <member>` still training
        rows = run_unit({"members": members, "batched": False, "report": False})
    assert rows[0]["status"] == "error" and "another phasewatch process" in rows[0]["error"]
    assert rows[1]["status"] == "done" and held == ["s1"]
    assert sorted(p.name for p in busy.iterdir()) == [".run.lock"]  # nothing written
    with run_lock(members[1][0]):  # released when the unit ended
        pass


def test_member_env_records_the_threads_in_force(members, monkeypatch):
    import torch

    import phasewatch.api.runs as runs
    from phasewatch.store.run import create_run_at

    seen = []
    real = runs.train

    def recording_train(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(torch.get_num_threads())  # what the trainer set and trained with
        return out

    monkeypatch.setattr(runs, "train", recording_train)
    old = torch.get_num_threads()
    # created earlier by another process (a worker with other threads, another host)
    create_run_at(members[0][0], members[0][1], {"torch_threads": 7})
    torch.set_num_threads(2)  # this process runs with another count than the member's 1
    try:
        rows = run_unit({"members": members[:1], "batched": False, "report": False})
    finally:
        torch.set_num_threads(old)
    assert members[0][1]["train"]["threads"] == 1  # the sweep's default
    assert rows[0]["status"] == "done" and seen == [1]
    env = json.loads((Path(members[0][0]) / "env.json").read_text())
    assert env["torch_threads"] == 1
