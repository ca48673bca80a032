"""The Ray executor against a real local Ray instance with 2 CPUs (started here, no mocks):
member runs, an unreachable address, and the retry of a failed task (a worker killed
with SIGKILL, a checkpoint write that fails)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tiny_configs import GROKKING as TINY
from typer.testing import CliRunner

from phasewatch.cli.app import app
from phasewatch.store import open_run
from phasewatch.sweep import runner as sweeping
from phasewatch.sweep import spec as sw

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
    result = sweeping.run_sweep(s, tmp_path, progress=False)
    assert sorted(result.done) == [f"weight_decay={wd}/s{i}" for wd in (0.5, 1.0) for i in (0, 1)]
    assert not result.failed and not result.unfinished
    assert json.loads((tmp_path / "sweep.json").read_text())["executor"] == "ray"
    for name in result.done:
        rd = open_run(tmp_path / name)
        assert rd.status()["status"] == "done" and rd.checkpoint_steps() == [0, 10, 20, 30, 40]
        assert "generalisation" in rd.events()["onsets"]
    again = sweeping.resume_sweep(tmp_path, progress=False)  # nothing left to do
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


# A victim member long enough to be caught mid-training (~1-2 s on a busy core).
LONG = TINY | {"steps": 300, "eval_every": 50, "checkpoint_every": 25}


def _running_pid(member: Path, min_step: int) -> int | None:
    """The pid training ``member`` once it has checkpointed at ``min_step`` or later."""
    try:
        st = json.loads((member / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    ok = st.get("status") == "running" and st.get("step", 0) >= min_step
    return st["pid"] if ok and st.get("pid") != os.getpid() else None


def _watch(member: Path, times: int, action, stop: threading.Event, log: Path) -> list[int]:
    """In a thread: each time a new process trains ``member`` (past step 50), apply
    ``action(pid)`` to it, ``times`` times at most; the pids are written to ``log``."""
    hit: list[int] = []

    def loop() -> None:
        while len(hit) < times and not stop.is_set():
            pid = _running_pid(member, 50)
            if pid is not None and pid not in hit:
                action(pid)
                hit.append(pid)
                log.write_text(json.dumps(hit))
            time.sleep(0.005)

    threading.Thread(target=loop, daemon=True).start()
    return hit


def _sweep_with(tmp_path: Path, times: int, action) -> tuple[sweeping.SweepResult, list[int]]:
    s = sw.build_spec(
        {"phenomenon": "grokking", "seeds": "0:2", "set": LONG, "executor": "ray"}
        | {"strategy": "single"}
    )
    stop = threading.Event()
    hit = _watch(tmp_path / "s1", times, action, stop, tmp_path / ".test-hits.json")
    try:
        result = sweeping.run_sweep(s, tmp_path, progress=False)
    finally:
        stop.set()
    return result, hit


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def _assert_complete(member: Path) -> None:
    rd = open_run(member)
    assert rd.status()["status"] == "done"
    assert rd.checkpoint_steps() == list(range(0, 301, 25))
    m = rd.metrics()
    assert not m.duplicated(["step", "key"]).any()
    assert sorted(m.loc[m["key"] == "train/loss", "step"]) == list(range(0, 301, 50))


def _member_dirs(out: Path) -> list[str]:
    return sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("config.json"))


def test_ray_retries_a_task_whose_worker_dies_once(tmp_path, ray_cluster):
    result, killed = _sweep_with(tmp_path, 1, _kill)
    assert len(killed) == 1  # s1's first attempt was killed mid-training
    assert sorted(result.done) == ["s0", "s1"] and not result.unfinished
    final = open_run(tmp_path / "s1").status()
    assert final["pid"] != killed[0]  # finished by the retry, in another worker
    for name in ("s0", "s1"):
        _assert_complete(tmp_path / name)
    assert _member_dirs(tmp_path) == ["s0", "s1"]  # no duplicates


def test_ray_task_failing_twice_is_reported_and_others_finish(tmp_path, ray_cluster):
    result, killed = _sweep_with(tmp_path, 2, _kill)
    assert len(killed) == 2  # the first attempt and the retry
    assert result.done == ["s0"] and not result.failed
    [(name, error)] = result.unfinished
    assert name == "s1" and error
    # Ray reports the task lost when the killed worker's socket closes, which the kernel
    # does while the process is still exiting; give it a moment to become a zombie.
    deadline = time.time() + 10
    while sweeping.member_status(tmp_path / "s1") == "running" and time.time() < deadline:
        time.sleep(0.05)
    assert sweeping.member_status(tmp_path / "s1") == "interrupted"
    again = sweeping.resume_sweep(tmp_path, progress=False)  # the member is resumable
    assert again.done == ["s1"] and again.skipped == ["s0"]
    _assert_complete(tmp_path / "s1")
    assert _member_dirs(tmp_path) == ["s0", "s1"]


def test_ray_task_raising_twice_leaves_no_live_running_member(tmp_path, ray_cluster):
    """A task that raises (here: its checkpoint write at step 250 fails, as on a failing
    disk: a folder stands at the file's path) while its Ray worker lives on fails on the
    retry too; it is reported unfinished, its member is not left "running" under that
    live worker's pid, and --resume finishes it once the disk is fixed."""
    obstacle = tmp_path / "s1" / "checkpoints" / "step_000250.safetensors"

    def break_disk(pid: int) -> None:
        obstacle.mkdir()

    result, hit = _sweep_with(tmp_path, 1, break_disk)
    assert len(hit) == 1
    assert result.done == ["s0"] and not result.failed
    [(name, error)] = result.unfinished
    assert name == "s1" and "Error" in error
    status = open_run(tmp_path / "s1").status()
    assert status["status"] == "interrupted" and status["step"] == 225 and status["error"]
    assert sweeping.member_status(tmp_path / "s1") == "interrupted"
    obstacle.rmdir()
    again = sweeping.resume_sweep(tmp_path, progress=False)
    assert again.done == ["s1"]
    _assert_complete(tmp_path / "s1")


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
