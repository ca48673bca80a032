"""CLI start-up: CPU and wall time of ``phasewatch --help``, ``phasewatch runs ls`` (plain,
and with ``--where``/``--sort``/``--columns all``) on a directory of N synthetic runs, and
``phasewatch run grokking --help``, each a fresh process (``python -m phasewatch``), median
of ``--repeats``. CPU is the child's user + system time (``getrusage``), which a loaded
machine inflates far less than wall time. The target (issue 18) is ≤ 0.5 CPU s for
``--help`` and ``runs ls``.

A synthetic run is a finished grokking-like run folder written through the store
(config.json, env.json, status.json, events.json with one onset, metrics.parquet with
two headline keys and one numbered family at 11 steps): what ``runs ls`` reads, no
training and no checkpoints.

    python bench/cli.py [--repeats 5] [--synthetic 200] [--runs DIR]
                        [--commands help,ls,ls-query,run-help]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phasewatch.store.env import _cpu_model  # the name env.json records

# base columns only, so that it runs on an empty directory too
QUERY = ["--where", "status='done' and seed >= 1", "--sort", "-seed", "--columns", "all"]
COMMANDS = {
    "help": ["--help"],
    "ls": ["runs", "ls", "DIR"],
    "ls-query": ["runs", "ls", "DIR", *QUERY],
    "run-help": ["run", "grokking", "--help"],
}


def timed(args: list[str]) -> tuple[float, float]:
    """(CPU s, wall s) of ``python -m phasewatch *args`` (output discarded).

    Raises:
        RuntimeError: if the command exits non-zero.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "phasewatch", *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"phasewatch {' '.join(args)}: exit {r.returncode}: {r.stderr[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def synthetic_runs(root: Path, n: int) -> None:
    """Write ``n`` finished grokking-like runs under ``root`` (``wd=<w>/s<seed>``, three
    weight decays), as described in the module docstring."""
    from phasewatch.store.run import create_run_at, tidy

    steps = range(0, 1001, 100)
    for seed in range(n):
        wd = (0.1, 0.3, 1.0)[seed % 3]
        task = {"p": 97, "train_frac": 0.3, "weight_decay": wd}
        train = {"seed": seed, "lr": 1e-3, "steps": 1000}
        cfg = {"phenomenon": "grokking", "preset": "quick", "task": task, "train": train}
        rd = create_run_at(root / f"wd={wd}" / f"s{seed}", cfg, {"python": "3"})
        onset = 300 + 10 * (seed % 40)
        rows = [(s, "test/acc", 1 / (1 + math.exp(-(s - onset) / 50))) for s in steps]
        rows += [(s, "train/loss", 3 * math.exp(-s / 200)) for s in steps]
        rows += [(s, "loss/pos/1", 1.0) for s in steps]  # numbered family: not a column
        rd.write_metrics(tidy(rows))
        rd.write_events({"onsets": {"generalisation": {"step": onset, "rule": "test/acc"}}})
        rd.set_status("done", 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs per command (median)")
    ap.add_argument("--synthetic", type=int, default=200, help="synthetic runs for runs ls")
    ap.add_argument("--runs", default=None, help="list this directory instead of synthetic runs")
    ap.add_argument("--commands", default=",".join(COMMANDS), help=", ".join(COMMANDS))
    args = ap.parse_args()
    names = [c.strip() for c in args.commands.split(",") if c.strip()]
    bad = [c for c in names if c not in COMMANDS]
    if bad or args.repeats < 1 or args.synthetic < 0:
        ap.error(f"--commands {bad} / --repeats / --synthetic; allowed: {', '.join(COMMANDS)}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.runs is None:
            synthetic_runs(Path(tmp), args.synthetic)
        folder = args.runs or tmp
        what = f"DIR = {folder}" if args.runs else f"DIR = {args.synthetic} synthetic runs"
        print(
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {_cpu_model()}, "
            f"{os.cpu_count()} CPUs | load average {os.getloadavg()[0]:.1f} | "
            f"median of {args.repeats} fresh processes | {what}"
        )
        print(f"{'command':<46} {'CPU s':>7} {'wall s':>7}")
        for name in names:
            cmd = [folder if c == "DIR" else c for c in COMMANDS[name]]
            cpu, wall = zip(*(timed(cmd) for _ in range(args.repeats)))
            shown = " ".join(COMMANDS[name]).replace(" ".join(QUERY), "--where/--sort/--columns")
            print(f"{'phasewatch ' + shown:<46} {median(cpu):>7.2f} {median(wall):>7.2f}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


def median(values: tuple[float, ...]) -> float:
    """The middle value (the upper one of an even count)."""
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    main()
