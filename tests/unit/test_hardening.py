"""Hostile and damaged run folders (issue 20): no code runs from a run folder, ``runs ls
--where`` reads no file, a damaged run never breaks the index, ``--resume`` refuses what it
cannot continue and one run is trained by one process at a time."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from hostile import hostile_watched_run
from typer.testing import CliRunner

from phasewatch import api
from phasewatch.cli.app import app
from phasewatch.errors import ConfigError
from phasewatch.store import open_run
from phasewatch.store.lock import run_lock


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    (line,) = res.output.strip().splitlines()
    assert line.startswith("error: "), line
    return line


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def grokking_run(tmp_path_factory) -> Path:
    """One tiny finished grokking run; tests copy it before changing it."""
    from tiny_configs import GROKKING

    out = tmp_path_factory.mktemp("hardening")
    torch.set_num_threads(1)
    rd = api.run("grokking", "quick", GROKKING | {"threads": 1}, out=out, progress=False)
    return rd.path


def _copy(run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run, dest, ignore=shutil.ignore_patterns(".run.lock")))


# ---- 1. no code from a run folder -------------------------------------------------------
def test_measure_never_runs_the_factory_a_run_folder_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = hostile_watched_run(tmp_path / "gift")
    before = _files(run)
    base = ["measure", str(run), "--signals", "gradients", "--no-progress"]
    line = one_error_line(invoke(*base))
    assert "'os:system'" in line and "--factory os:system" in line
    assert "--trust-run-factory" in line
    line = one_error_line(invoke(*base, "--factory", "my_pkg.train:build"))
    assert "'my_pkg.train:build'" in line and "'os:system'" in line
    with pytest.raises(ConfigError, match="differs from the run's recorded factory"):
        api.measure(run, ["gradients"], factory="my_pkg.train:build", progress=False)
    with pytest.raises(ConfigError, match="--trust-run-factory"):
        api.measure(run, ["gradients"], progress=False)
    assert not (tmp_path / "PWNED").exists() and _files(run) == before
    # the gate is what stopped it: trusting the folder does run its factory
    line = one_error_line(invoke(*base, "--trust-run-factory"))
    assert (tmp_path / "PWNED").exists() and "returned int" in line


def test_factory_flag_is_for_watched_runs_only_and_kwargs_must_be_json(tmp_path, grokking_run):
    line = one_error_line(invoke("measure", str(grokking_run), "--factory", "a.b:c"))
    assert "watched runs only" in line
    run = hostile_watched_run(tmp_path / "odd")
    cfg = json.loads((run / "config.json").read_text())
    cfg["task"]["factory_kwargs"] = ["touch PWNED"]
    (run / "config.json").write_text(json.dumps(cfg))
    line = one_error_line(invoke("measure", str(run), "--factory", "os:system"))
    assert "factory_kwargs is invalid" in line


# ---- 2. --where is one expression, not SQL ------------------------------------------------
def _secret_run(grokking_run: Path, dest: Path) -> Path:
    """A copy whose config holds a text field only the run folder knows."""
    run = _copy(grokking_run, dest)
    cfg = json.loads((run / "config.json").read_text())
    cfg["task"]["note"] = "SECRET-7f3a"
    (run / "config.json").write_text(json.dumps(cfg))
    return run


@pytest.mark.parametrize(
    "where",
    [
        "1=0 UNION ALL SELECT content FROM read_text('/etc/passwd')",
        "true; COPY (SELECT 1) TO 'x.csv'",
        "read_text('/etc/passwd') is not null",
        "p in (select 1)",
        "p > 1 -- comment",
        "\"read_text\"('/etc/passwd') is null",
        "p > (1",
        "p + 1",
        "",
    ],
)
def test_where_rejects_anything_but_one_boolean_expression(
    tmp_path, monkeypatch, grokking_run, where
):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    _secret_run(grokking_run, root / "a")
    res = invoke("runs", "ls", str(root), "--columns", "run", "--where", where)
    line = one_error_line(res)
    assert "root:" not in res.output and "--where" in line
    assert not list(tmp_path.glob("*.csv"))


@pytest.mark.parametrize("where", ["cast(note as integer) > 0", "note::int > 0", "note + 1 > 0"])
def test_where_errors_never_echo_values_read_from_the_runs(tmp_path, grokking_run, where):
    root = tmp_path / "runs"
    _secret_run(grokking_run, root / "a")
    res = invoke("runs", "ls", str(root), "--columns", "run", "--where", where)
    one_error_line(res)
    assert "SECRET" not in res.output


def test_where_still_takes_ordinary_conditions(tmp_path, grokking_run):
    root = tmp_path / "runs"
    _secret_run(grokking_run, root / "a")
    for where, n in [
        ("status='done' and p = 17 and note = 'SECRET-7f3a'", 1),
        ("onset/memorisation is null and final/test/acc <= 1", 1),
        ("\"final/test/acc\" <= 1 and lower(preset) like 'qu%'", 1),
        ("lr > 1 or p between 18 and 20", 0),
    ]:
        res = invoke(
            "runs", "ls", str(root), "--columns", "run", "--format", "csv", "--where", where
        )
        assert res.exit_code == 0, res.output
        assert len(res.stdout.strip().splitlines()) == 1 + n, (where, res.stdout)


# ---- 3. damaged runs never break the rest ------------------------------------------------
def _truncate_metrics(run: Path) -> None:
    f = run / "metrics.parquet"
    f.write_bytes(f.read_bytes()[:100])


def _config_dir(run: Path) -> None:
    (run / "config.json").unlink()
    (run / "config.json").mkdir()


def _config_train_x(run: Path) -> None:
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(cfg | {"train": "x"}))


DAMAGE = {
    "truncated metrics.parquet": _truncate_metrics,
    "config.json a directory": _config_dir,
    'config "train": "x"': _config_train_x,
    "status.json []": lambda run: (run / "status.json").write_text("[]"),
    "events.json []": lambda run: (run / "events.json").write_text("[]"),
    "events.json onsets []": lambda run: (run / "events.json").write_text('{"onsets": [1]}'),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_run_is_skipped_with_one_warning(tmp_path, grokking_run, damage):
    root = tmp_path / "runs"
    good = _copy(grokking_run, root / "good")
    bad = _copy(grokking_run, root / "bad")
    DAMAGE[damage](bad)
    res = invoke("runs", "ls", str(root), "--columns", "run,status", "--format", "csv")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines() == ["run,status", f"{good},done"]
    (warning,) = res.stderr.strip().splitlines()
    assert warning.startswith(f"warning: skipped damaged run {bad}: ")
    lines: list[str] = []
    listed = [r["run"] for r in api.list_runs(root, warn=lines.append)]
    if damage == "truncated metrics.parquet":  # list_runs reads no metrics; the index does
        assert listed == [str(bad), str(good)] and not lines
    else:
        assert listed == [str(good)] and lines == [warning]


def test_odd_but_valid_json_values_are_listed_as_text(tmp_path, grokking_run):
    root = tmp_path / "runs"
    _copy(grokking_run, root / "a")
    odd = _copy(grokking_run, root / "b")
    cfg = json.loads((odd / "config.json").read_text())
    cfg["train"] |= {"seed": 2**70, "lr": [1, 2]}
    (odd / "config.json").write_text(json.dumps(cfg))
    res = invoke("runs", "ls", str(root), "--columns", "seed,lr", "--format", "json")
    assert res.exit_code == 0, res.output
    assert [r["seed"] for r in json.loads(res.stdout)] == ["0", str(2**70)]


def test_runs_ls_on_a_missing_path_or_a_file_exits_2(tmp_path):
    assert "no such directory" in one_error_line(invoke("runs", "ls", str(tmp_path / "none")))
    (tmp_path / "f").write_text("x")
    assert "not a directory" in one_error_line(invoke("runs", "ls", str(tmp_path / "f")))


# ---- 4. --resume refuses what it cannot continue; one trainer per run ---------------------
def _interrupted(grokking_run: Path, dest: Path) -> Path:
    run = _copy(grokking_run, dest)
    open_run(run).set_status("running", 20)
    return run


def _no_optimiser(run: Path) -> None:
    for f in (run / "checkpoints").glob("optim_step_*"):
        f.unlink()


def _checkpoints_file(run: Path) -> None:
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").write_text("not a folder")


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda run: shutil.rmtree(run / "checkpoints"), "no checkpoints"),
        (_no_optimiser, "no optimiser state"),
        (_checkpoints_file, "checkpoints is not a folder"),
    ],
)
def test_resume_refuses_what_it_cannot_continue(tmp_path, grokking_run, damage, needle):
    run = _interrupted(grokking_run, tmp_path / "run")
    damage(run)
    before = _files(run)
    line = one_error_line(invoke("run", "grokking", "--resume", str(run), "--no-progress"))
    assert needle in line and f"phasewatch run grokking --restart {run}" in line
    after = _files(run)
    after.pop(".run.lock", None)
    assert after == before


def test_resume_or_restart_of_another_phenomenon_exits_2(tmp_path, grokking_run):
    run = _interrupted(grokking_run, tmp_path / "run")
    before = _files(run)
    for flag in ("--resume", "--restart"):
        line = one_error_line(invoke("run", "superposition", flag, str(run)))
        assert "is a 'grokking' run, not 'superposition'" in line
        assert f"phasewatch run grokking {flag} {run}" in line
    assert _files(run) == before


def test_a_run_being_trained_cannot_be_resumed_or_restarted(tmp_path, grokking_run):
    run = _interrupted(grokking_run, tmp_path / "run")
    with run_lock(run):
        for flag in ("--resume", "--restart"):
            line = one_error_line(invoke("run", "grokking", flag, str(run), "--no-progress"))
            assert "another phasewatch process is training this run" in line
    assert open_run(run).status()["status"] == "running"


def test_restart_trains_the_run_again_from_step_0(tmp_path, grokking_run):
    run = _interrupted(grokking_run, tmp_path / "run")
    _checkpoints_file(run)
    (run / "signals.parquet").write_text("stale")
    res = invoke("run", "grokking", "--restart", str(run), "--no-progress")
    assert res.exit_code == 0, res.output
    rd = open_run(run)
    assert rd.status()["status"] == "done" and not (run / "signals.parquet").exists()
    assert rd.checkpoint_steps() == open_run(grokking_run).checkpoint_steps()
    a, b = rd.load_checkpoint(40), open_run(grokking_run).load_checkpoint(40)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same config trains the same run
    line = one_error_line(invoke("run", "grokking", "--restart", str(run), "--resume", str(run)))
    assert "exclude each other" in line


def test_a_vouched_factory_rebuilds_the_model_in_worker_processes(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    import watch_mlp_grokking as mlp

    torch.set_num_threads(1)
    args = ["--p", "23", "--steps", "40", "--every", "20", "--checkpoint-every", "20"]
    out = mlp.main([*args, "--out", str(tmp_path / "mlp")])
    (out / "signals.parquet").unlink()  # measure every checkpoint again, in 2 processes
    table = api.measure(
        out, ["gradients"], every=1, workers=2, progress=False, factory="watch_mlp_grokking:build"
    )
    assert sorted(table["step"].unique()) == open_run(out).checkpoint_steps() == [0, 20]
