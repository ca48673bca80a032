"""Runs logged elsewhere as ordinary run directories (metrics only, phenomenon
``imported``): TensorBoard event files (:mod:`.tensorboard`) and CSV files (:mod:`.csvfile`);
what they share, the keys and the run directory they write, is :mod:`.rundir`.

``phasewatch import tensorboard LOGDIR --out runs/x`` and ``phasewatch import csv FILE
--out runs/x`` (:mod:`phasewatch.cli.imports`) call :func:`import_tensorboard` and
:func:`import_csv`.
"""

from phasewatch.store.importers.csvfile import import_csv, read_csv
from phasewatch.store.importers.rundir import IMPORTED, Imported, metric_key, parse_onsets
from phasewatch.store.importers.tensorboard import import_tensorboard, read_tensorboard

__all__ = [
    "IMPORTED",
    "Imported",
    "import_csv",
    "import_tensorboard",
    "metric_key",
    "parse_onsets",
    "read_csv",
    "read_tensorboard",
]
