"""phasewatch: reproduce, measure and forecast emergence in neural networks.

Importing phasewatch sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets
it (OpenMP reads it once, when torch loads; so it applies when phasewatch is imported
before torch): torch's default policy makes idle threads spin, which on cores shared with
other jobs slowed 2-thread training several-fold (``bench/threads.py``; docs/results/speed.md).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from phasewatch import Watcher`` without importing torch for ``import phasewatch``."""
    if name == "Watcher":
        from phasewatch.watch.watcher import Watcher

        return Watcher
    raise AttributeError(f"module 'phasewatch' has no attribute {name!r}")
