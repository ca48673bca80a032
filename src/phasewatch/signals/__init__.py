"""Developmental signals: phenomenon-agnostic measurements of a checkpoint.

Built-in signals (each one decorated function, registered by name):
    ``llc`` (:mod:`.llc`): local learning coefficient by SGLD (Lau et al. 2023).
    ``hessian`` (:mod:`.hessian`): top-k / most negative eigenvalue, trace, SLQ density.
    ``gradients`` (:mod:`.gradients`): gradient norm, noise scale, cosine to previous.
    ``geometry`` (:mod:`.geometry`): norms, effective rank, participation ratio.
Precursor signals of transitions (:mod:`.precursors`, one module each) and trajectory
signals, measured at step t on what the run logged up to t (:mod:`.trajectory`).

:func:`phasewatch.signals.runner.measure` runs them over a run's checkpoints and writes
``signals.parquet``. Signals never import a phenomenon; only the runner builds tasks.
"""

from phasewatch.signals.base import Measurement, Probe, Signal, get, names, signal

# Importing a signal module registers it.
from phasewatch.signals import llc  # noqa: E402,F401  isort: skip
from phasewatch.signals import hessian  # noqa: E402,F401  isort: skip
from phasewatch.signals import gradients  # noqa: E402,F401  isort: skip
from phasewatch.signals import geometry  # noqa: E402,F401  isort: skip
from phasewatch.signals import precursors  # noqa: E402,F401  isort: skip

__all__ = ["Measurement", "Probe", "Signal", "get", "names", "signal"]
