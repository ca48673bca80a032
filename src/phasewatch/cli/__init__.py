"""The ``phasewatch`` command line (typer): :mod:`.app` builds the app, one module per verb
group (:mod:`.measure`, :mod:`.detect`, :mod:`.sweep`, :mod:`.forecast`, :mod:`.eval`,
:mod:`.superposition`); :mod:`.flags` generates flags from config dataclasses.

Importing this package sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already
sets it: OpenMP reads it once, when torch loads (so it must be set before, and every
command imports torch lazily, after this), and torch's default policy makes idle threads
spin, which on cores shared with other jobs slowed 2-thread training several-fold
(``bench/threads.py``; figures in the README). Sweep workers and Ray inherit it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    """The ``phasewatch`` console script (``phasewatch.cli:main``, as before the split)."""
    from phasewatch.cli.app import main as app_main

    app_main()
