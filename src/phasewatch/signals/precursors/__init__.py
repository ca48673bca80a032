"""Precursor signals from the 2023–2026 literature on forecasting transitions, one module
each, found by :mod:`pkgutil` (importing a module registers its signal): per-checkpoint
signals (:func:`phasewatch.signals.base.signal`) and trajectory signals
(:func:`phasewatch.signals.trajectory.trajectory`), all causal.
"""

import importlib
import pkgutil


def _discover() -> None:
    # Names come from this package's own directory listing, never from user data.
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_discover()
