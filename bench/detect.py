"""Seconds for ``detect`` and ``leadtime`` over a 50-run sweep (target: detect <= 1 min).

By default builds a synthetic sweep of 50 runs (40 transition, 10 null; 401 logged points
each: phasewatch.detect.synthetic) in a temporary directory; ``--sweep DIR`` times a real
one instead (e.g. the grokking ``small`` lead-time sweep).

    python bench/detect.py [--sweep runs/leadtime] [--window-frac 0.05]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from phasewatch.api import leadtime
from phasewatch.detect.run import DetectConfig
from phasewatch.detect.sweep import detect_sweep
from phasewatch.detect.synthetic import write_sweep
from phasewatch.detect.transitions import Target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, default=None)
    ap.add_argument("--window-frac", type=float, default=0.05)
    args = ap.parse_args()
    cfg = DetectConfig(window_frac=args.window_frac)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.sweep or write_sweep(Path(tmp) / "sweep", 40, 10)
        t0 = time.perf_counter()
        sweep = detect_sweep(root, Target(), cfg)
        t_detect = time.perf_counter() - t0
        t0 = time.perf_counter()
        leadtime(root, Target(), cfg, out=Path(tmp) / "lt")
        t_lead = time.perf_counter() - t0
    n = len(sweep.runs)
    series = sum(len(a.scored) for a in sweep.runs)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print(f"sweep: {root} ({n} runs, {series} series with indicators)")
    print(f"{'stage':<10} {'seconds':>8} {'ms/run':>8}")
    for name, t in (("detect", t_detect), ("leadtime", t_lead)):
        print(f"{name:<10} {t:8.1f} {1000 * t / max(n, 1):8.0f}")
    print(f"target: detect on a 50-run sweep <= 60 s -> {'met' if t_detect <= 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
