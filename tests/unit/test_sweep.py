"""Sweeps: spec parsing and type checks, member directories, NaN members, resume after
kill -9 (a real subprocess), and bad input exiting 2 with nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from tiny_configs import GROKKING as TINY
from typer.testing import CliRunner

from phasewatch import api
from phasewatch.cli.app import app
from phasewatch.errors import ConfigError
from phasewatch.store import open_run
from phasewatch.sweep import runner as sweeping
from phasewatch.sweep import spec as sw
from phasewatch.training import batched

SET = [f"{k}={v}" for k, v in TINY.items()]


def invoke(*args: str):
    return CliRunner().invoke(app, ["sweep", *args, "--no-progress"])


def spec(**kw) -> sw.SweepSpec:
    data = {"phenomenon": "grokking", "preset": "quick", "set": dict(TINY), "workers": 1}
    return sw.build_spec(data | kw)


def test_seeds_grid_types_and_member_names(tmp_path):
    assert sw.parse_seeds("0:4") == (0, 1, 2, 3)
    assert sw.parse_seeds("7,3,3") == (3, 7) and sw.parse_seeds([2]) == (2,)
    s = spec(seeds="0:2", grid={"weight_decay": "0.3,1", "op": ["add", "sub"]})
    assert s.grid == {"op": ("add", "sub"), "weight_decay": (0.3, 1.0)}
    assert s.fixed["threads"] == 1 and s.fixed["p"] == 17
    found = sw.members(s, tmp_path)
    assert len(found) == 8
    assert [m.name for m in found[:3]] == [
        "op=add,weight_decay=0.3/s0",
        "op=add,weight_decay=0.3/s1",
        "op=add,weight_decay=1.0/s0",
    ]
    m = found[-1]
    assert m.path == tmp_path / "op=sub,weight_decay=1.0" / "s1"
    assert m.config["task"]["op"] == "sub" and m.config["train"]["weight_decay"] == 1.0
    assert m.config["train"]["seed"] == 1 and m.config["task"]["p"] == 17
    assert sw.member_name({}, 4) == "s4"
    assert sw.member_name({"op": "a/b c"}, 0) == "op=a_b_c/s0"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--grid", "wd=0.1"], "unknown field 'wd' in --grid; allowed: beta1, beta2, checkpoint"),
        (["--grid", "p=17,abc"], "--grid p='abc' is invalid; allowed: integers"),
        (["--grid", "lr=fast"], "--grid lr='fast' is invalid; allowed: numbers"),
        (["--grid", "fast=maybe"], "--grid fast='maybe' is invalid; allowed: true or false"),
        (["--grid", "train_frac=0.3,1.5"], "train_frac=1.5 is invalid; allowed: a float in (0, 1)"),
        (["--grid", "op=add,pow"], "op='pow' is invalid; allowed: add, sub, mul, div"),
        (["--grid", "seed=1,2"], "give seeds with --seeds"),
        (["--set", "steps=0"], "steps=0 is invalid; allowed: an integer >= 1"),
        (["--set", "nope=1"], "unknown field 'nope' in --set; allowed:"),
        (["--seeds", "a:b"], "--seeds='a:b' is invalid; allowed: A:B"),
        (["--executor", "dask"], "--executor='dask' is invalid; allowed: local, ray"),
        (["--bogus"], "option='--bogus' is invalid"),
    ],
)
def test_bad_input_exits_2_one_line_nothing_written(tmp_path, args, needle):
    out = tmp_path / "sweep"
    r = invoke("grokking", *args, "--out", str(out))
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle in line, line
    assert not out.exists()


def test_spec_file_yaml_and_different_sweep_in_out(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(
        "phenomenon: grokking\nseeds: 0:2\ngrid:\n  weight_decay: [0.5, 1.0]\n"
        f"set: {json.dumps(TINY)}\nworkers: 1\nstrategy: single\n"
    )
    out = tmp_path / "sweep"
    r = invoke("--spec", str(f), "--out", str(out))
    assert r.exit_code == 0, r.output
    stored = json.loads((out / "sweep.json").read_text())
    assert stored["grid"] == {"weight_decay": [0.5, 1.0]} and stored["seeds"] == [0, 1]
    assert stored["plan"]["strategy"] == "single"
    rows = api.list_runs(out)
    assert sorted(r["run"].split("sweep/")[1] for r in rows) == [
        "weight_decay=0.5/s0",
        "weight_decay=0.5/s1",
        "weight_decay=1.0/s0",
        "weight_decay=1.0/s1",
    ]
    assert {r["status"] for r in rows} == {"done"}
    # a single run of the same config stores the same config.json (indistinguishable)
    overrides = TINY | {"threads": 1, "weight_decay": 0.5}
    rd = api.run("grokking", "quick", overrides, out=tmp_path, progress=False, report=False)
    assert json.loads((out / "weight_decay=0.5/s0/config.json").read_text()) == rd.config()
    r = invoke("grokking", "--grid", "weight_decay=0.1", *SET, "--out", str(out))
    assert r.exit_code == 2 and "holds a different sweep" in r.stderr
    r = invoke("--resume", str(out), "--seeds", "0:3")
    assert r.exit_code == 2 and "drop" not in r.stderr and "only --executor" in r.stderr


@pytest.mark.parametrize("strategy", ["single", "batched"])
def test_nan_member_is_failed_and_others_finish(tmp_path, strategy):
    s = spec(
        seeds="0:2", grid={"lr": [1e-3, 1e30]}, strategy=strategy, set=TINY | {"warmup_steps": 0}
    )
    result = sweeping.run_sweep(s, tmp_path, progress=False)
    assert result.plan["strategy"] == strategy
    assert sorted(result.failed) == ["lr=1e+30/s0", "lr=1e+30/s1"]
    assert sorted(result.done) == ["lr=0.001/s0", "lr=0.001/s1"] and not result.unfinished
    status = json.loads((tmp_path / "lr=1e+30/s0/status.json").read_text())
    assert status["status"] == "failed" and "non-finite training loss" in status["error"]
    again = sweeping.resume_sweep(tmp_path, progress=False)  # failed members are not retried
    assert not again.done and not again.failed and len(again.skipped) == 4


def test_batched_resume_after_interrupt_matches_uninterrupted(tmp_path, monkeypatch):
    """A batched sweep interrupted mid-way resumes (one member through the ordinary
    single-run resume, the rest batched) to the metrics of an uninterrupted one."""
    s = spec(seeds="0:3", strategy="batched")
    straight = sweeping.run_sweep(s, tmp_path / "a", progress=False)
    assert straight.plan["strategy"] == "batched" and len(straight.done) == 3

    real, calls = batched.StackedAdamW.step, {"n": 0}

    def dying_step(self, step):
        calls["n"] += 1
        if calls["n"] == 25:  # between the checkpoints at steps 20 and 30
            raise KeyboardInterrupt
        real(self, step)

    monkeypatch.setattr(batched.StackedAdamW, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        sweeping.run_sweep(s, tmp_path / "b", progress=False)
    monkeypatch.setattr(batched.StackedAdamW, "step", real)
    assert {sweeping.member_status(tmp_path / "b" / f"s{i}") for i in range(3)} == {"interrupted"}
    api.run("grokking", resume=tmp_path / "b" / "s1", progress=False, report=False)
    result = sweeping.resume_sweep(tmp_path / "b", progress=False)
    assert sorted(result.done) == ["s0", "s2"] and result.skipped == ["s1"]
    for i in range(3):
        a = open_run(tmp_path / "a" / f"s{i}").metrics()
        b = open_run(tmp_path / "b" / f"s{i}").metrics()
        assert (a[["step", "key"]].values == b[["step", "key"]].values).all()
        pd.testing.assert_series_equal(a["value"], b["value"], rtol=1e-5, atol=1e-5)


def _wait_for(pred, timeout: float) -> None:
    t0 = time.time()
    while not pred():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.2)


def test_kill_9_then_resume_every_member_done_exactly_once(tmp_path):
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "phasewatch", "sweep", "grokking", "--seeds", "0:3"]
    args += ["--grid", "weight_decay=0.5,1.0", "--set", *SET, "steps=120", "checkpoint_every=20"]
    args += ["--out", str(out), "--workers", "2", "--strategy", "single", "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    names = [f"weight_decay={wd}/s{i}" for wd in (0.5, 1.0) for i in range(3)]

    def state():
        return {n: sweeping.member_status(out / n) for n in names}

    _wait_for(lambda: list(state().values()).count("done") >= 2, 240)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = state()
    assert "done" in before.values() and set(before.values()) != {"done"}, before
    done_before = {
        n: (out / n / "status.json").read_text() for n, st in before.items() if st == "done"
    }
    _wait_for(lambda: "running" not in state().values(), 10)  # workers exit with the sweep

    r = subprocess.run(
        [sys.executable, "-m", "phasewatch", "sweep", "--resume", str(out), "--workers", "1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert set(state().values()) == {"done"}
    for n, text in done_before.items():  # finished members were not redone
        assert (out / n / "status.json").read_text() == text
    runs = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("config.json"))
    assert runs == sorted(names)  # no duplicate directories
    for n in names:
        rd = open_run(out / n)
        m = rd.metrics()
        assert not m.duplicated(["step", "key"]).any()
        assert sorted(m["step"].unique()) == list(range(0, 121, 5))
        assert rd.checkpoint_steps() == list(range(0, 121, 20))
        assert "generalisation" in rd.events()["onsets"]


def test_resume_refuses_a_member_trained_by_a_live_process(tmp_path):
    s = spec(seeds="0:1", strategy="single")
    sweeping.run_sweep(s, tmp_path, progress=False)
    status = tmp_path / "s0" / "status.json"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # another live process on this host "is training" it
        status.write_text(
            json.dumps(json.loads(status.read_text()) | {"status": "running", "pid": other.pid})
        )
        with pytest.raises(ConfigError, match="being trained by a live process"):
            sweeping.resume_sweep(tmp_path, progress=False)
    finally:
        other.kill()
        other.wait()


def test_runs_ls_queries_the_index_with_duckdb(tmp_path):
    s = spec(seeds="0:2", grid={"weight_decay": [0.5, 1.0]}, strategy="batched")
    sweeping.run_sweep(s, tmp_path, progress=False)
    r = invoke_ls(str(tmp_path), "--format", "csv")
    header = r.stdout.splitlines()[0]
    assert header.startswith("run,phenomenon,preset,seed,steps,status,onset/memorisation")
    cols = "seed,weight_decay,onset/test_loss_peak,final/test/acc"
    where = "status='done' and weight_decay > 0.7 and onset/test_loss_peak >= 0"
    r = invoke_ls(
        str(tmp_path), "--where", where, "--sort=-seed", "--columns", cols, "--format", "json"
    )
    rows = json.loads(r.stdout)
    assert [(x["seed"], x["weight_decay"]) for x in rows] == [(1, 1.0), (0, 1.0)]
    final = open_run(tmp_path / "weight_decay=1.0/s1").metrics()
    acc = final[final["key"] == "test/acc"].sort_values("step")["value"].iloc[-1]
    assert rows[0]["final/test/acc"] == pytest.approx(acc)
    r = invoke_ls(str(tmp_path), "--columns", "seed,wd")
    assert r.exit_code == 2 and "column='wd' is invalid; allowed: run, phenomenon" in r.stderr
    r = invoke_ls(str(tmp_path), "--where", "nope > 1")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "nope" in r.stderr


def invoke_ls(*args: str):
    return CliRunner().invoke(app, ["runs", "ls", *args])
