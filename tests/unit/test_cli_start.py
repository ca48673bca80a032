"""The CLI starts without its heavy dependencies: ``phasewatch --help`` and ``runs ls``
import no torch, plotly, inspect_ai, ray or transformers (they load in the commands that
need them), and the lazily imported commands are listed with their own help line."""

from __future__ import annotations

import json
import subprocess
import sys

import typer.main
from typer.testing import CliRunner

HEAVY = ("torch", "plotly", "inspect_ai", "ray", "transformers", "matplotlib")
PROBE = """
import json, sys
from typer.testing import CliRunner
from phasewatch.cli import app as cli_app
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(cli_app.app, args)
    assert r.exit_code == 0, (args, r.output)
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def loaded_after(*commands: list[str]) -> list[str]:
    """The heavy modules in ``sys.modules`` after the CLI ran ``commands`` in one fresh
    process."""
    r = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_help_and_runs_ls_import_nothing_heavy(tmp_path):
    commands = [["--help"], ["runs", "--help"], ["sweep", "--help"], ["runs", "ls", str(tmp_path)]]
    assert loaded_after(*commands) == []


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
