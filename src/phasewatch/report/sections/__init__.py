"""Report sections: one module per section, found by :mod:`pkgutil` and registered with
:func:`phasewatch.report.registry.section` when imported.

A phenomenon with its own section adds ``report/sections/<name>.py``; nothing else in
``report/`` changes.
"""

import importlib
import pkgutil


def _discover() -> None:
    # Names come from this package's own directory listing, never from user data.
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_discover()
