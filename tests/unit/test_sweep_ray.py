"""The Ray executor against a real local Ray instance with 2 CPUs (started here, no mocks)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time

import pytest
from tiny_configs import GROKKING as TINY
from typer.testing import CliRunner

from phasewatch import sweep as sw
from phasewatch.cli import app
from phasewatch.store import open_run

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    ctx = ray.init(
        num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False
    )
    yield ctx.address_info["gcs_address"]
    ray.shutdown()


def test_sweep_on_ray_writes_ordinary_member_runs(tmp_path, ray_cluster):
    data = {"phenomenon": "grokking", "seeds": "0:2", "grid": {"weight_decay": [0.5, 1.0]}}
    s = sw.build_spec(data | {"set": TINY, "executor": "ray", "strategy": "batched"})
    result = sw.run_sweep(s, tmp_path, progress=False)
    assert sorted(result.done) == [f"weight_decay={wd}/s{i}" for wd in (0.5, 1.0) for i in (0, 1)]
    assert not result.failed and not result.unfinished
    assert json.loads((tmp_path / "sweep.json").read_text())["executor"] == "ray"
    for name in result.done:
        rd = open_run(tmp_path / name)
        assert rd.status()["status"] == "done" and rd.checkpoint_steps() == [0, 10, 20, 30, 40]
        assert "generalisation" in rd.events()["onsets"]
    again = sw.resume_sweep(tmp_path, progress=False)  # nothing left to do
    assert not again.done and len(again.skipped) == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_address_one_line_within_30s_nothing_written(tmp_path):
    out = tmp_path / "sweep"
    t0 = time.time()
    r = CliRunner().invoke(
        app,
        ["sweep", "grokking", "--executor", "ray", "--address", f"127.0.0.1:{_free_port()}"]
        + ["--out", str(out), "--no-progress"],
    )
    assert time.time() - t0 < 30
    assert r.exit_code == 2
    (line,) = r.stderr.strip().splitlines()
    assert "no Ray cluster reachable" in line and "allowed: auto, or host:port" in line
    assert not out.exists()


@pytest.mark.slow
def test_cli_sweep_connects_to_the_cluster_address(tmp_path, ray_cluster):
    sets = [f"{k}={v}" for k, v in TINY.items()]
    r = subprocess.run(
        [sys.executable, "-m", "phasewatch", "sweep", "grokking", "--seeds", "0:2", "--set"]
        + sets
        + ["--executor", "ray", "--address", ray_cluster, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "2 done, 0 failed" in r.stdout
    assert {open_run(tmp_path / f"s{i}").status()["status"] for i in (0, 1)} == {"done"}
