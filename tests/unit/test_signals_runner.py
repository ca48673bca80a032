"""End to end: measure a tiny grokking run, rerun skips, bad input, CLI, report section."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass

import pandas as pd
import pytest
import torch
import typer
from tiny_configs import GROKKING
from typer.testing import CliRunner

from phasewatch import api
from phasewatch.api import calibrate, measure
from phasewatch.errors import ConfigError, StoreError
from phasewatch.signals import base, runner, signal
from phasewatch.signals.runner import select_steps
from phasewatch.store.signals import read_signals, read_signals_json

CHEAP = {
    "llc": {"epsilon": 1e-4, "gamma": 100.0, "chains": 2, "draws": 4, "burn_in": 2},
    "hessian": {"top_k": 2, "lanczos_steps": 4, "hutchinson_probes": 2},
    "gradients": {"noise_batches": 2, "noise_batch_size": 4},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tiny = GROKKING | {"threads": 1}
    out = tmp_path_factory.mktemp("runs")
    return api.run("grokking", "quick", tiny, out=out, progress=False, report=False)


@pytest.fixture
def run(tiny_run, tmp_path):
    """A fresh copy of the trained tiny run (checkpoints at steps 0, 10, 20, 30, 40)."""
    dst = tmp_path / tiny_run.path.name
    shutil.copytree(tiny_run.path, dst)
    return dst


def test_measure_writes_signals_and_rerun_skips(run):
    table = measure(run, every=2, settings=CHEAP, progress=False)
    assert sorted(table["step"].unique()) == [0, 20, 40]
    assert list(table.columns) == ["step", "key", "value", "signal", "settings"]
    last = table[table["step"] == 40].set_index("key")["value"]
    for key in (
        "llc/mean",
        "llc/std",
        "llc/chain/1",
        "llc/flag/diverged",
        "hessian/top_eig/0",
        "hessian/top_eig/1",
        "hessian/min_eig",
        "hessian/trace",
        "hessian/trace_se",
        "grad/norm",
        "grad/cos_prev",
        "geometry/norm/total",
        "geometry/eff_rank/W_E",
        "geometry/eff_rank/blocks.0.mlp.hook_post",
    ):
        assert key in last.index, key
    assert last["hessian/top_eig/0"] >= last["hessian/top_eig/1"]
    assert "grad/cos_prev" not in table[table["step"] == 0]["key"].values
    on_disk = pd.read_parquet(run / "signals.parquet")
    assert len(on_disk) == len(table)
    traces = pd.read_parquet(run / "tables" / "llc_traces.parquet")
    assert set(traces["step"]) == {0, 20, 40} and len(traces) == 3 * 2 * 6
    # rerun with the same settings: nothing recomputed, nothing rewritten
    mtime = (run / "signals.parquet").stat().st_mtime_ns
    again = measure(run, every=2, settings=CHEAP, progress=False)
    assert (run / "signals.parquet").stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(again, table)
    # new LLC settings: only the llc rows are replaced
    settings = dict(CHEAP, llc=dict(CHEAP["llc"], draws=5))
    third = measure(run, ["llc"], steps=[40], settings={"llc": settings["llc"]}, progress=False)
    llc40 = third[(third["step"] == 40) & (third["signal"] == "llc")]
    assert llc40["settings"].nunique() == 1
    assert (
        llc40["settings"].iloc[0]
        != table[(table["step"] == 40) & (table["signal"] == "llc")]["settings"].iloc[0]
    )
    assert len(third[third["signal"] == "hessian"]) == len(table[table["signal"] == "hessian"])


def test_unknown_signal_lists_the_available_ones(run):
    every = ", ".join(base.names())  # the registry's names, sorted
    assert {"geometry", "gradients", "hessian", "llc"} <= set(base.names())
    with pytest.raises(ConfigError) as e:
        measure(run, ["llc", "nope"], progress=False)
    assert str(e.value) == f"signal='nope' is invalid; allowed: {every}"
    assert not (run / "signals.parquet").exists()


def test_bad_settings_name_the_field(run):
    with pytest.raises(ConfigError, match="epsilon"):
        measure(run, ["llc"], settings={"llc": {"epsilon": -1}}, progress=False)
    with pytest.raises(ConfigError, match="unknown field"):
        measure(run, ["llc"], settings={"llc": {"stepsize": 1}}, progress=False)
    with pytest.raises(ConfigError, match="not measured: hessian"):
        measure(run, ["llc"], settings={"hessian": {}}, progress=False)


def test_threads_are_validated_used_and_restored(run, monkeypatch):
    with pytest.raises(ConfigError, match="threads=0 is invalid; allowed: an integer >= 1"):
        measure(run, ["geometry"], threads=0, progress=False)
    seen = []
    real = runner.measure_step
    monkeypatch.setattr(
        runner, "measure_step", lambda *a: seen.append(torch.get_num_threads()) or real(*a)
    )
    before = torch.get_num_threads()
    want = 2 if before != 2 else 1
    measure(run, ["geometry"], steps=[10], threads=want, progress=False)
    assert seen == [want]
    assert torch.get_num_threads() == before


def test_run_without_checkpoints(run):
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(StoreError, match="no checkpoints to measure"):
        measure(run, progress=False)
    with pytest.raises(StoreError, match="no such run directory"):
        measure(run / "missing", progress=False)


def test_select_steps():
    steps = [0, 10, 20, 30, 40]
    assert select_steps(steps, 1) == steps
    assert select_steps(steps, 3) == [0, 30, 40]
    assert select_steps(steps, 10) == [0, 40]
    assert select_steps(steps, 2, only=[30, 10]) == [10, 30]
    with pytest.raises(ConfigError, match="step=15"):
        select_steps(steps, 1, only=[15])
    assert select_steps(steps, 1, until=25) == [0, 10, 20]
    assert select_steps(steps, 2, until=30) == [0, 20, 30]  # the last selected is <= until


def test_cli_until_measures_only_checkpoints_up_to_that_step(run):
    from phasewatch.cli.app import app

    r = CliRunner().invoke(
        app, ["measure", str(run), "--signals", "gradients", "--every", "1", "--until", "25",
              "--no-progress"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert sorted(read_signals(_rd(run))["step"].unique()) == [0, 10, 20]


def test_a_new_signal_is_one_decorated_function(run):
    @dataclass(frozen=True)
    class Scale:
        factor: float = 2.0
        seed: int = 0

    @signal("test_double_loss", settings=Scale)
    def double_loss(probe, settings, *, generator):
        with torch.no_grad():
            return {"test/loss_x": settings.factor * float(probe.loss()), "test/n": probe.n}

    try:
        table = measure(
            run,
            ["test_double_loss"],
            steps=[40],
            settings={"test_double_loss": {"factor": 3.0}},
            progress=False,
        )
        v = table.set_index("key")["value"]
        assert v["test/n"] == int(0.5 * 17 * 17)  # the training pairs of the tiny run
        assert v["test/loss_x"] > 0
    finally:
        base._REGISTRY.pop("test_double_loss")


def test_parallel_workers_match_serial(run, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(run, other)
    serial = measure(
        run,
        ["geometry", "gradients"],
        steps=[10, 30],
        settings={"gradients": CHEAP["gradients"]},
        progress=False,
    )
    parallel = measure(
        other,
        ["geometry", "gradients"],
        steps=[10, 30],
        workers=2,
        settings={"gradients": CHEAP["gradients"]},
        progress=False,
    )
    merged = serial.merge(parallel, on=["step", "key", "signal", "settings"], suffixes=("_s", "_p"))
    assert len(merged) == len(serial) == len(parallel)
    assert (
        (merged["value_s"] - merged["value_p"]).abs() <= 1e-6 * (1 + merged["value_s"].abs())
    ).all()


def test_cli_exit_codes_and_report_section(run):
    from phasewatch.cli.app import handle_errors
    from phasewatch.cli.measure import measure as measure_cmd

    app = typer.Typer()
    app.command("measure")(handle_errors(measure_cmd))
    app.command("noop")(lambda: None)
    runner = CliRunner()
    r = runner.invoke(app, ["measure", str(run), "--signals", "llc,bogus"])
    assert r.exit_code == 2 and f"allowed: {', '.join(base.names())}" in r.output
    r = runner.invoke(
        app,
        ["measure", str(run), "--signals", "geometry,gradients", "--every", "4", "--no-progress"],
    )
    assert r.exit_code == 0, r.output
    assert sorted(read_signals(_rd(run))["step"].unique()) == [0, 40]
    summary, chosen = calibrate(
        run,
        grid={"epsilons": [1e-5, 1e-4], "gammas": [100.0], "chains": 2, "draws": 4, "burn_in": 2},
        progress=False,
    )
    assert len(summary) == 2 and {"passes", "reason", "recommended"} <= set(summary.columns)
    assert (run / "tables" / "llc_calibration_traces.parquet").exists()
    from phasewatch.report import build_report

    html = build_report(_rd(run)).read_text()
    assert "Developmental signals" in html and "LLC calibration" in html
    empty = runner.invoke(app, ["measure", str(run / "nope")])
    assert empty.exit_code == 2 and "no such run directory" in empty.output


def test_cli_calibrate_writes_the_grid_and_recommends_measure_flags(run):
    from phasewatch.cli.app import app

    # a 4-draw budget cannot pass the default rule; a lenient one makes a recommendation
    grid = ["--epsilons", "1e-5,1e-4", "--gammas", "100", "--chains", "2", "--draws", "4"]
    rule = ["--burn-in", "2", "--min-llc", "0", "--drift-tol", "100"]
    r = CliRunner().invoke(app, ["calibrate", str(run), "--no-progress", *grid, *rule])
    assert r.exit_code == 0, r.output
    meta = read_signals_json(_rd(run))["llc_calibration"]
    assert meta["grid"]["epsilons"] == [1e-5, 1e-4] and meta["grid"]["gammas"] == [100.0]
    assert (meta["grid"]["chains"], meta["grid"]["draws"], meta["grid"]["burn_in"]) == (2, 4, 2)
    assert (meta["grid"]["min_llc"], meta["grid"]["drift_tol"]) == (0.0, 100.0)
    table = pd.read_parquet(run / "tables" / "llc_calibration.parquet")
    assert sorted(table["epsilon"]) == [1e-5, 1e-4] and set(table["gamma"]) == {100.0}
    assert table["passes"].all() and table["recommended"].sum() == 1
    assert "llc_mean" in r.output and "reason" in r.output
    # the rule takes the smallest gamma, then the largest epsilon
    assert meta["recommended"] == {"epsilon": 1e-4, "gamma": 100.0, "nbeta": None}
    flags = "--epsilon 0.0001 --gamma 100"
    assert f"recommended: {flags}\n  phasewatch measure {run} --signals llc {flags}" in r.output


@pytest.mark.parametrize(
    "args,needle",
    [
        (
            ["--epsilons", "1e-5,big"],
            "epsilons='1e-5,big' is invalid; allowed: comma-separated floats",
        ),
        (["--gammas", "-1"], "gammas=(-1.0,) is invalid; allowed: floats >= 0"),
        (["--draws", "3"], "draws=3 is invalid; allowed: an integer >= 4"),
        (["--step", "15"], "step=15 is invalid; allowed: 0, 10, 20, 30, 40"),
    ],
)
def test_cli_calibrate_bad_flag_exits_2_with_one_line(run, args, needle):
    from phasewatch.cli.app import app

    r = CliRunner().invoke(app, ["calibrate", str(run), "--no-progress", *args])
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle in line
    assert not (run / "tables" / "llc_calibration.parquet").exists()


def test_cli_llc_flags_of_measure(run):
    from phasewatch.cli.app import app

    cli = CliRunner()
    r = cli.invoke(app, ["measure", str(run), "--signals", "geometry", "--draws", "4"])
    assert r.exit_code == 2 and "--draws need llc in --signals=geometry" in r.stderr
    r = cli.invoke(app, ["measure", str(run), "--signals", "llc", "--epsilon", "-1"])
    assert r.exit_code == 2 and "epsilon=-1.0 is invalid; allowed: a float > 0" in r.stderr
    args = ["--signals", "llc", "--chains", "2", "--draws", "4", "--burn-in", "2"]
    r = cli.invoke(app, ["measure", str(run), *args, "--every", "10", "--no-progress"])
    assert r.exit_code == 0, r.output
    (entry,) = read_signals_json(_rd(run))["settings"].values()
    llc = entry["settings"]
    assert entry["signal"] == "llc" and (llc["chains"], llc["draws"], llc["burn_in"]) == (2, 4, 2)


def _rd(path):
    from phasewatch.store import open_run

    return open_run(path)


def test_cli_measures_trajectory_signals_and_says_not_applicable_once(run):
    from phasewatch.cli.app import app

    r = CliRunner().invoke(
        app, ["measure", str(run), "--signals", "loss_spectrum", "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if "not applicable" in x]
    assert lines == [
        "warning: step 0: loss_spectrum: not applicable: needs >= 32 logged points of "
        "'train/loss', has 1 by step 0"
    ]
    # `samples` writes the per-sample table read by the distributional trajectory signals
    r = CliRunner().invoke(app, ["measure", str(run), "--signals", "samples", "--no-progress"])
    assert r.exit_code == 0, r.output
    per_sample = pd.read_parquet(run / "tables" / "per_sample_loss.parquet")
    table = read_signals(_rd(run))
    measured = sorted(table[table["key"] == "samples/loss_q50"]["step"])
    assert measured and sorted(per_sample["step"].unique()) == measured
    assert {"step", "sample", "loss"} <= set(per_sample.columns)


def test_post_training_analysis_shows_progress(run):
    # a fresh process: rich's console is global, and other tests' captures may hold it
    code = "import sys; from phasewatch import api; from phasewatch.store import open_run; "
    code += "api.analyse(open_run(sys.argv[1]), progress=True)"
    r = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "analysing checkpoints" in r.stdout and "5/5" in r.stdout
