"""Threads on shared cores: the CLI makes OpenMP's idle threads sleep (``OMP_WAIT_POLICY``
set before torch loads, an explicit setting kept), and the default thread count is the
cores this process may run on (its CPU affinity), not the machine's CPU count."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from phasewatch.config import TrainConfig, available_cores

# In a fresh process: the policy torch's OpenMP saw when it loaded, through the CLI's own
# entry point (`run grokking --help` loads torch, for the phenomena's configs).
PROBE = """
import os, sys
from typer.testing import CliRunner
from phasewatch.cli import app as cli_app
assert "torch" not in sys.modules
r = CliRunner().invoke(cli_app.app, ["run", "grokking", "--help"])
assert r.exit_code == 0 and "torch" in sys.modules
print(os.environ.get("OMP_WAIT_POLICY"))
"""


def policy_seen(probe: str, env_value: str | None) -> str:
    """``OMP_WAIT_POLICY`` printed by ``probe`` run in a fresh process with the variable
    unset (None) or set to ``env_value``."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    r = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_cli_sets_passive_wait_policy_before_torch_loads():
    assert policy_seen(PROBE, None) == "PASSIVE"


def test_importing_phasewatch_sets_it_too():
    assert policy_seen("import os, phasewatch; print(os.environ['OMP_WAIT_POLICY'])", None) == (
        "PASSIVE"
    )


def test_an_explicit_wait_policy_is_kept():
    probe = "import os, phasewatch.cli; print(os.environ['OMP_WAIT_POLICY'])"
    assert policy_seen(probe, "ACTIVE") == "ACTIVE"


def test_default_threads_are_the_cores_this_process_may_use(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert available_cores() == 1
    assert TrainConfig().num_threads == 1 and TrainConfig(threads=3).num_threads == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 7})
    assert TrainConfig().num_threads == 3
