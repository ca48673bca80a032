"""The CLI starts without its heavy dependencies: ``phasewatch --help`` and ``runs ls``
(on an empty directory and on real runs, with ``--where``) import no torch, plotly,
inspect_ai, ray, transformers, pandas or pyarrow, nor ``http.server`` (``view``'s handler)
or the sweep runner (they load in the commands that need them), and the lazily imported
commands are listed with their own help line."""

from __future__ import annotations

import json
import subprocess
import sys

import typer.main
from typer.testing import CliRunner

HEAVY = ("torch", "plotly", "inspect_ai", "ray", "transformers", "matplotlib")
# loaded by some commands when they run, never by --help or runs ls
LATER = (*HEAVY, "pandas", "pyarrow", "http.server", "phasewatch.sweep.runner")
PROBE = """
import json, sys
from typer.testing import CliRunner
from phasewatch.cli import app as cli_app
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(cli_app.app, args)
    assert r.exit_code == {code}, (args, r.output)
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def loaded_after(*commands: list[str], heavy: tuple[str, ...] = HEAVY, code: int = 0) -> list[str]:
    """The modules of ``heavy`` in ``sys.modules`` after the CLI ran ``commands`` in one
    fresh process (each must exit with ``code``)."""
    r = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=heavy, code=code), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_help_and_runs_ls_import_nothing_heavy(tmp_path):
    commands = [["--help"], ["runs", "--help"], ["runs", "ls", "--help"], ["sweep", "--help"]]
    commands += [["view", "--help"], ["runs", "ls", str(tmp_path)]]
    assert loaded_after(*commands, heavy=LATER) == []


def test_the_probe_sees_what_a_command_imports(tmp_path):
    # the checks here can fail: view imports http.server before it reads ROOT, sweep its
    # runner before it checks its arguments (both refused here: exit 2, nothing written)
    commands = [["view", str(tmp_path / "nope")], ["sweep", "--out", str(tmp_path / "sw")]]
    loaded = loaded_after(*commands, heavy=LATER, code=2)
    assert {"http.server", "phasewatch.sweep.runner"} <= set(loaded)
    assert list(tmp_path.iterdir()) == []


def test_runs_ls_of_runs_imports_no_pandas(tmp_path):
    from phasewatch.store.run import create_run_at, tidy

    for seed in range(2):
        task = {"p": 17, "weight_decay": 0.5 + seed}
        cfg = {"phenomenon": "grokking", "preset": "quick", "task": task, "train": {"seed": seed}}
        rd = create_run_at(tmp_path / f"s{seed}", cfg, {"python": "3"})
        rd.write_metrics(tidy([(0, "test/acc", 0.1), (10, "test/acc", 0.9)]))
        rd.write_events({"onsets": {"generalisation": {"step": 5}}})
        rd.set_status("done", 10)
    query = ["--where", "final/test/acc > 0.5 and weight_decay > 1", "--sort", "-seed"]
    commands = [
        ["runs", "ls", str(tmp_path)],
        ["runs", "ls", str(tmp_path), *query, "--columns", "all"],
    ]
    assert loaded_after(*commands, heavy=LATER) == []


def test_top_level_help_lists_every_command_without_loading_lazy_ones():
    from phasewatch.cli.app import OneLineErrors, app

    group = typer.main.get_command(app)
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0
    for name in ("run", "measure", "calibrate", "sweep", "runs", "report", "eval"):
        assert f" {name} " in r.output
    assert not set(OneLineErrors.lazy) & set(group.commands)  # listed, not loaded


def test_lazy_help_lines_are_the_commands_own():
    from phasewatch.cli.app import OneLineErrors, app

    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="phasewatch")
    for name, lazy in OneLineErrors.lazy.items():
        real = group.get_command(ctx, name)
        assert real.name == name
        assert (real.help or "").split("\n\n")[0].strip() == lazy.help, name


def test_lazy_commands_run_and_reject_bad_input_as_before(tmp_path):
    runner = CliRunner()
    from phasewatch.cli.app import app

    r = runner.invoke(app, ["run", "grokking", "--help"])
    assert r.exit_code == 0 and "--train-frac" in r.output and "--threads" in r.output
    r = runner.invoke(app, ["run", "grokking", "--p", "1", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "p=1 is invalid" in r.output
    r = runner.invoke(app, ["measure", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "nope" in r.output
    r = runner.invoke(app, ["run", "no-such-phenomenon"])
    assert r.exit_code == 2
    assert list(tmp_path.iterdir()) == []
