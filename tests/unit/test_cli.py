"""The CLI: bad input exits 2 with one line naming the problem and nothing is written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from phasewatch import api


def phasewatch(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "phasewatch", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--preset", "nope"], "preset='nope' is invalid; allowed: forecast, forecast-subcritical"),
        (["--p", "1"], "p=1 is invalid; allowed: a prime >= 3"),
        (["--train-frac", "1.5"], "train_frac=1.5 is invalid; allowed: a float in (0, 1)"),
        (["--op", "pow"], "op='pow' is invalid; allowed: add, sub, mul, div, x2+y2"),
        (["--steps", "0"], "steps=0 is invalid; allowed: an integer >= 1"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, args, needle):
    out = tmp_path / "runs"
    r = phasewatch("run", "grokking", *args, "--out", str(out))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle in line
    assert not out.exists()


def test_unwritable_out_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    r = phasewatch("run", "grokking", "--out", str(blocker / "runs"), "--steps", "1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "not writable" in r.stderr and "allowed: a writable directory" in r.stderr
    assert blocker.read_text() == "keep me"


def test_resume_missing_or_corrupted_exits_2(tmp_path, tiny):
    r = phasewatch("run", "grokking", "--resume", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no such run directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    rd = api.run("grokking", "quick", tiny, out=tmp_path, progress=False, report=False)
    rd.set_status("running", 20)
    rd.checkpoint_path(40, "optim_step").write_bytes(b"garbage")
    before = {p.name: p.read_bytes() for p in rd.checkpoint_dir.iterdir()}
    r = phasewatch("run", "grokking", "--resume", str(rd.path))
    assert r.returncode == 2 and "corrupted checkpoint" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in rd.checkpoint_dir.iterdir()} == before


def test_nan_run_exits_1(tmp_path):
    r = phasewatch(
        "run",
        "grokking",
        "--p",
        "17",
        "--d-mlp",
        "16",
        "--lr",
        "1e30",
        "--warmup-steps",
        "0",
        "--steps",
        "100",
        "--out",
        str(tmp_path),
        "--no-progress",
    )
    assert r.returncode == 1 and "non-finite training loss" in r.stderr


def test_run_ls_and_report(tmp_path, tiny):
    rd = api.run("grokking", "quick", tiny, out=tmp_path, progress=False, report=False)
    r = phasewatch("runs", "ls", str(tmp_path), "--format", "csv")
    assert r.returncode == 0
    header, row = r.stdout.strip().splitlines()
    assert header.startswith("run,phenomenon,preset,seed,steps,status,onset/memorisation")
    assert ",grokking,quick,0,40,done," in row
    r = phasewatch("report", str(rd.path))
    assert r.returncode == 0 and r.stdout.strip() == str(rd.path / "report.html")
    rd.set_status("running", 20)  # this process is alive: still running
    assert api.list_runs(tmp_path)[0]["status"] == "running"
    status = rd.status() | {"pid": 2**22 + 7}  # no such process: the run was killed
    (rd.path / "status.json").write_text(__import__("json").dumps(status))
    assert api.list_runs(tmp_path)[0]["status"] == "interrupted"
    r = phasewatch("runs", "ls", str(tmp_path), "--format", "xml")
    assert r.returncode == 2 and "allowed: table, csv, json" in r.stderr


def test_runs_ls_tells_runs_apart_at_80_columns(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from phasewatch.cli.app import app
    from phasewatch.store import create_run

    cfg = {"phenomenon": "grokking", "preset": "forecast-subcritical", "seed": 1,
           "task": {}, "train": {"steps": 10}}  # fmt: skip
    names = ["kind=forecast-subcritical/s1000", "kind=forecast-subcritical/s1001"]
    (tmp_path / "kind=forecast-subcritical").mkdir()
    for name in names:
        create_run(tmp_path / name.split("/")[0], name.split("/")[1], cfg, {}).set_status(
            "done", 10
        )
    monkeypatch.setenv("COLUMNS", "80")
    r = CliRunner().invoke(app, ["runs", "ls", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    for name in names:
        assert name in r.output  # shown whole, relative to the listed directory
