"""CLI start-up: CPU and wall time of ``phasewatch --help``, ``phasewatch runs ls`` (plain,
and with ``--where``/``--sort``/``--columns all``) on a directory of N synthetic runs, and
``phasewatch run grokking --help``, each a fresh process (``python -m phasewatch``), median
of ``--repeats``. CPU is the child's user + system time (``getrusage``), which a loaded
machine inflates far less than wall time. The target (issue 18) is ≤ 0.5 CPU s for
``--help`` and ``runs ls``.

``--baseline SRC`` measures another source tree side by side (e.g. the previous commit:
``git archive HEAD~1 src | tar -x -C /tmp/before`` and ``--baseline /tmp/before/src``): its
``phasewatch`` package comes first on ``PYTHONPATH``, each repeat times the baseline and
then this tree, and the table adds the baseline's CPU s and the ratio baseline / now.

A synthetic run is a finished grokking-like run folder written through the store
(config.json, env.json, status.json, events.json with one onset, metrics.parquet with
two headline keys and one numbered family at 11 steps): what ``runs ls`` reads, no
training and no checkpoints.

    python bench/cli.py [--repeats 5] [--synthetic 200] [--runs DIR]
                        [--commands help,ls,ls-query,run-help] [--baseline SRC]
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


def timed(args: list[str], src: str | None = None) -> tuple[float, float]:
    """(CPU s, wall s) of ``python -m phasewatch *args`` (output discarded), with the
    package from source tree ``src`` if given (else the installed one).

    Raises:
        RuntimeError: if the command exits non-zero.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "phasewatch", *args],
        capture_output=True,
        text=True,
        check=False,
        env=environment(src),
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"phasewatch {' '.join(args)}: exit {r.returncode}: {r.stderr[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def environment(src: str | None) -> dict[str, str] | None:
    """The child's environment: ours, with ``src`` first on ``PYTHONPATH`` if given."""
    if src is None:
        return None
    path = [src, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def package_dir(src: str | None) -> Path:
    """The ``phasewatch`` package directory a child process imports."""
    code = "import phasewatch, pathlib; print(pathlib.Path(phasewatch.__file__).parent)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment(src)
    )
    return Path(out.stdout.strip()).resolve()


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
    ap.add_argument("--baseline", default=None, help="a source tree (its src/) to compare")
    args = ap.parse_args()
    names = [c.strip() for c in args.commands.split(",") if c.strip()]
    bad = [c for c in names if c not in COMMANDS]
    if bad or args.repeats < 1 or args.synthetic < 0:
        ap.error(f"--commands {bad} / --repeats / --synthetic; allowed: {', '.join(COMMANDS)}")
    base = args.baseline
    if base is not None:
        base = str(Path(base).resolve())
        if package_dir(base) != Path(base, "phasewatch") or package_dir(None) == package_dir(base):
            ap.error(f"--baseline {base}: no phasewatch package there; allowed: a src/ directory")
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
        if base is not None:
            print(f"baseline: {base} | now: {package_dir(None).parent}")
            print(f"{'command':<48} {'base CPU s':>10} {'CPU s':>7} {'ratio':>6} {'wall s':>7}")
        else:
            print(f"{'command':<48} {'CPU s':>7} {'wall s':>7}")
        for name in names:
            cmd = [folder if c == "DIR" else c for c in COMMANDS[name]]
            then, now = [], []
            for _ in range(args.repeats):  # alternate, so that both see the same load
                if base is not None:
                    then.append(timed(cmd, base))
                now.append(timed(cmd))
            cpu, wall = (median(x) for x in zip(*now))
            shown = " ".join(COMMANDS[name]).replace(" ".join(QUERY), "--where/--sort/--columns")
            if base is not None:
                was = median(tuple(c for c, _ in then))
                print(
                    f"{'phasewatch ' + shown:<48} {was:>10.2f} {cpu:>7.2f} {was / cpu:>5.2f}x"
                    f" {wall:>7.2f}"
                )
            else:
                print(f"{'phasewatch ' + shown:<48} {cpu:>7.2f} {wall:>7.2f}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


def median(values: tuple[float, ...]) -> float:
    """The middle value (the upper one of an even count)."""
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    main()
