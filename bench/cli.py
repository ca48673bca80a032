"""CLI start-up: CPU and wall time of ``phasewatch --help``, ``phasewatch runs ls`` and
``phasewatch run grokking --help``, each a fresh process (``python -m phasewatch``),
median of ``--repeats``. CPU is the child's user + system time (``getrusage``), which a
loaded machine inflates far less than wall time.

    python bench/cli.py [--repeats 5] [--runs DIR]   (runs ls lists DIR; default: an
                                                      empty temporary directory)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs per command (median)")
    ap.add_argument("--runs", default=None, help="directory for runs ls (default: empty)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        commands = [["--help"], ["runs", "ls", args.runs or empty], ["run", "grokking", "--help"]]
        load = os.getloadavg()[0]
        print(
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {os.cpu_count()} CPUs | "
            f"load average {load:.1f} | median of {args.repeats} fresh processes"
        )
        print(f"{'command':<34} {'CPU s':>7} {'wall s':>7}")
        for cmd in commands:
            cpu, wall = zip(*(timed(cmd) for _ in range(args.repeats)))
            name = "phasewatch " + " ".join("DIR" if c == empty else c for c in cmd)
            print(f"{name:<34} {median(cpu):>7.2f} {median(wall):>7.2f}")


def median(values: tuple[float, ...]) -> float:
    """The middle value (the upper one of an even count)."""
    return sorted(values)[len(values) // 2]


if __name__ == "__main__":
    main()
