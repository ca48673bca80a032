"""Atomic writes and corrupted-store detection."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch

from phasewatch.errors import StoreError
from phasewatch.store import RunDir, atomic, create_run, open_run


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    f = tmp_path / "events.json"
    atomic.write_json(f, {"v": 1})

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic.atomic_path(f) as tmp:
            tmp.write_text('{"v": 2, "trunc')  # a partial write...
            raise Boom  # ...then the process dies
    assert json.loads(f.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["events.json"]


def test_parquet_and_safetensors_roundtrip(tmp_path):
    df = pd.DataFrame({"step": [0, 1], "key": ["a/b", "a/b"], "value": [0.5, 0.25]})
    atomic.write_parquet(tmp_path / "m.parquet", df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "m.parquet"), df)
    rd = RunDir(tmp_path)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    rd.save_checkpoint(7, {"w": torch.arange(3.0)}, opt.state_dict())
    step, model, optim = rd.resume_point()
    assert step == 7 and torch.equal(model["w"], torch.arange(3.0))
    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    fresh.load_state_dict(optim)
    torch.testing.assert_close(
        fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )


def test_create_run_never_clobbers(tmp_path):
    a = create_run(tmp_path, "r", {"phenomenon": "x", "task": {}, "train": {}}, {})
    b = create_run(tmp_path, "r", {"phenomenon": "x", "task": {}, "train": {}}, {})
    assert a.path != b.path and a.path.exists() and b.path.exists()


def test_corrupted_or_missing_runs_raise_store_error(tmp_path):
    with pytest.raises(StoreError, match="no such run"):
        open_run(tmp_path / "nope")
    rd = create_run(tmp_path, "r", {"phenomenon": "x", "task": {}, "train": {}}, {})
    (rd.path / "config.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupted config.json"):
        open_run(rd.path)
    rd2 = create_run(tmp_path, "s", {"phenomenon": "x", "task": {}, "train": {}}, {})
    rd2.save_checkpoint(3, {"w": torch.ones(2)}, {"state": {}, "param_groups": []})
    rd2.checkpoint_path(3).write_bytes(b"\x00garbage")
    with pytest.raises(StoreError, match="corrupted checkpoint"):
        rd2.resume_point()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_live_status_treats_an_unreaped_killed_process_as_interrupted():
    import socket
    import subprocess
    import time

    from phasewatch.store.index import live_status

    child = subprocess.Popen(["sleep", "30"])
    status = {"status": "running", "pid": child.pid, "host": socket.gethostname()}
    try:
        assert live_status(status) == "running"
        child.kill()  # exits but stays a zombie until waited for: signal 0 still reaches it
        for _ in range(100):
            if open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0] == "Z":
                break
            time.sleep(0.01)
        assert live_status(status) == "interrupted"
    finally:
        child.kill()
        child.wait()
    assert live_status(status) == "interrupted"  # reaped: the pid is gone
    assert live_status({**status, "host": "elsewhere"}) == "running"  # other hosts: as written
