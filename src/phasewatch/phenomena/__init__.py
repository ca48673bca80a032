"""Phenomena: one module each (data, model, progress measures, presets), registered by name."""

from phasewatch.phenomena.base import Phenomenon, Preset, Task, get, names, register

# Importing a phenomenon module registers it.
from phasewatch.phenomena import grokking  # noqa: E402,F401  isort: skip
from phasewatch.phenomena import superposition  # noqa: E402,F401  isort: skip
from phasewatch.phenomena import induction  # noqa: E402,F401  isort: skip
from phasewatch.phenomena import base64  # noqa: E402,F401  isort: skip

__all__ = ["Phenomenon", "Preset", "Task", "get", "names", "register"]
