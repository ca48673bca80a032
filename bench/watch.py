"""Watcher overhead on the plain PyTorch example (examples/watch_mlp_grokking.py): in the
loop, and the whole wall-clock and CPU cost.

    python bench/watch.py                     # default settings, 2,000 steps, 3 repetitions
    python bench/watch.py --reps 5 --every 50 --steps 1000

Each repetition trains the example's MLP (p = 59, full batch of 1,740 pairs) from the same
initial weights twice, in fresh processes, one torch thread: without the Watcher and with
it at default settings (``geometry`` and ``gradients`` every ``--every`` steps on a
256-pair probe, online early warnings, metrics every 10 steps). The two runs alternate
which goes first, so on a loaded machine both see the same load. Printed, medians over the
repetitions:

- **in-loop**: the Watcher's own time inside ``step()`` as % of the loop's own time
  (``Watcher.overhead()``), wall and CPU of the training thread; target <= 5% at every=100.
- **wall / CPU**: (watched - plain) / plain for the whole run from just before the
  ``Watcher(...)`` call to just after ``close()`` (set-up, loop, background thread and
  close included), wall clock and process CPU time (every thread); the median of the
  per-repetition ratios. Target (issue 18.7): wall <= 10%.
- the one-off set-up and close seconds, and the time to ``import`` phasewatch's Watcher
  (paid once per process, not part of either run).

The load average before and after is printed, as wall times on a shared machine are noisy.
``--before SRC`` adds a third arm, interleaved with the others: the watched run with
phasewatch imported from ``SRC`` (e.g. ``git archive`` of an older commit's ``src``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(mode: str, steps: int, every: int, out: str) -> dict[str, float]:
    """One run in this process (``mode`` ``plain`` or ``watched``): its wall and CPU seconds
    and, when watched, the Watcher's own accounting."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "examples"))
    t = time.perf_counter()
    import watch_mlp_grokking as ex

    imported = time.perf_counter() - t
    args = ["--steps", str(steps), "--every", str(every), "--out", out]
    args += ["--no-watch"] if mode == "plain" else []
    w0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        run = ex.main(args)
    res = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0, "import": imported}
    if run is not None:
        from phasewatch.store import open_run

        block = open_run(run).events()["watch"]
        res |= {k: v for k, v in block["overhead"].items() if isinstance(v, (int, float))}
        res["warnings"] = len(block["warnings"])
    return res


def spawn(arm: str, steps: int, every: int, tmp: str, src: str | None) -> dict[str, float]:
    """:func:`child` in a fresh Python process (one torch/OpenMP thread); arm ``before``
    is ``watched`` with phasewatch imported from ``src``."""
    out = f"{tmp}/{arm}-{time.monotonic_ns()}"
    mode = "watched" if arm == "before" else arm
    cmd = [sys.executable, __file__, "--child", mode, "--steps", str(steps)]
    cmd += ["--every", str(every), "--out", out]
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if arm == "before":
        env["PYTHONPATH"] = os.pathsep.join([src or "", env.get("PYTHONPATH", "")])
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(label: str, plain: list[dict], watched: list[dict]) -> str:
    """The table row of one cadence and arm: medians over repetitions."""
    med, nan = statistics.median, float("nan")  # nan: a phasewatch without CPU accounting
    wall = med(100 * (w["wall"] / p["wall"] - 1) for p, w in zip(plain, watched))
    cpu = med(100 * (w["cpu"] / p["cpu"] - 1) for p, w in zip(plain, watched))
    once = med(w["setup_seconds"] + w["close_seconds"] for w in watched)
    return (
        f"{label:>12} {med(p['wall'] for p in plain):>8.2f} "
        f"{med(w['wall'] for w in watched):>8.2f} "
        f"{med(w['loop_seconds'] for w in watched):>9.2f} "
        f"{med(w['percent_of_step_time'] for w in watched):>7.2f}% "
        f"{med(w.get('percent_of_step_cpu', nan) for w in watched):>7.2f}% "
        f"{wall:>7.1f}% {cpu:>7.1f}% "
        f"{once:>10.2f} {med(w['import'] for w in watched):>8.2f} "
        f"{med(w['background_cpu_seconds'] for w in watched):>8.2f} "
        f"{med(w['warnings'] for w in watched):>5.0f}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, nargs="+", default=[100])
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians are printed)")
    ap.add_argument("--before", help="also the watched run with phasewatch from this src dir")
    ap.add_argument("--child", choices=("plain", "watched"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.every[0], args.out)))
        return
    import torch

    from phasewatch.store.env import describe

    load0 = os.getloadavg()
    print(
        f"machine: {describe('cpu')['cpu']} ({os.cpu_count()} cores) | 1 thread | torch "
        f"{torch.__version__} | {platform.system()} | {time.strftime('%Y-%m-%d %H:%M')} | "
        f"{args.steps} steps | {args.reps} repetitions, plain and watched interleaved | "
        f"load average {load0[0]:.2f}"
    )
    print(
        f"{'every':>12} {'plain s':>8} {'watch s':>8} {'in-loop s':>9} {'in-loop':>8} "
        f"{'loop CPU':>8} "
        f"{'wall Δ':>8} {'CPU Δ':>8} {'setup+close':>10} {'import s':>8} {'bg CPU s':>8} "
        f"{'warns':>5}"
    )
    arms = ["plain", "watched", *(["before"] if args.before else [])]
    with tempfile.TemporaryDirectory() as tmp:
        for every in args.every:
            got: dict[str, list[dict]] = {a: [] for a in arms}
            for rep in range(args.reps):  # alternate the order: both see the same load
                for arm in arms if rep % 2 == 0 else arms[::-1]:
                    got[arm].append(spawn(arm, args.steps, every, tmp, args.before))
            print(row(str(every), got["plain"], got["watched"]), flush=True)
            if args.before:
                print(row(f"{every} before", got["plain"], got["before"]), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
