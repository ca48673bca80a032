"""Phenomena: one package each (data, model, progress measures, presets), registered by name.

Every subpackage of ``phasewatch.phenomena`` is imported here (found by :mod:`pkgutil`),
and importing one registers it with :func:`register`. A phenomenon defined outside the
package (a user's, or a test's) registers itself the same way when it is imported.
"""

import importlib
import pkgutil

from phasewatch.phenomena.base import Findings, Phenomenon, Preset, get, names, register


def _discover() -> None:
    # Names come from this package's own directory listing, never from user data.
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")


_discover()

__all__ = ["Findings", "Phenomenon", "Preset", "get", "names", "register"]
