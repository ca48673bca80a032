"""Watcher overhead on the plain PyTorch example (examples/watch_mlp_grokking.py).

    python bench/watch.py                 # default cheap signals, every=100, 2,000 steps
    python bench/watch.py --every 50 --steps 1000

Trains the example's MLP (p = 59, full batch of 1,740 pairs) from the same initial weights
without and with the Watcher (default cheap signals ``geometry`` and ``gradients`` on a
256-pair probe, online early warnings, metrics every 10 steps), one torch thread, and
prints the Watcher's own time inside the loop as % of the loop's own time (the Watcher's
measure, ``Watcher.overhead()``), the wall-clock difference between the two runs, and the
one-off set-up and close time. Target: <= 5% at every=100.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import watch_mlp_grokking as ex  # noqa: E402

from phasewatch.store.env import describe  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, nargs="+", default=[100])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    base = ["--steps", str(args.steps)]
    t = time.perf_counter()
    ex.main([*base, "--no-watch"])
    plain = time.perf_counter() - t
    print(
        f"machine: {describe('cpu')['cpu']} | 1 thread | torch {torch.__version__} | "
        f"{platform.system()} | "
        f"{time.strftime('%Y-%m-%d')} | {args.steps} steps, plain loop {plain:.1f} s "
        f"({1000 * plain / args.steps:.2f} ms/step)"
    )
    print(
        f"{'every':>6} {'in-loop s':>10} {'% of step time':>15} {'wall-clock Δ':>13} "
        f"{'set-up+close s':>15} {'warnings':>9}"
    )
    for every in args.every:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                out = ex.main([*base, "--every", str(every), "--out", f"{tmp}/run"])
            wall = time.perf_counter() - t
            from phasewatch.store import open_run

            w = open_run(out).events()["watch"]
            o = w["overhead"]
            print(
                f"{every:>6} {o['loop_seconds']:>10.2f} {o['percent_of_step_time']:>14.2f}% "
                f"{100 * (wall - plain) / plain:>12.1f}% "
                f"{o['setup_seconds'] + o['close_seconds']:>15.2f} {len(w['warnings']):>9}"
            )


if __name__ == "__main__":
    main()
