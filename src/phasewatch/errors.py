"""Errors that the CLI turns into one line and exit code 2 (bad input) or 1 (failed run)."""


class PhasewatchError(Exception):
    """Base class of every error phasewatch raises on purpose."""


class ConfigError(PhasewatchError, ValueError):
    """An invalid configuration value; the message names the field and the allowed values."""


class StoreError(PhasewatchError):
    """A run directory that is missing, corrupted, or not writable."""


class RunFailed(PhasewatchError):
    """Training stopped (e.g. a non-finite loss); the run is marked ``failed`` in the store."""


class MissingDependency(PhasewatchError):
    """An optional extra is not installed; the message names the ``pip install`` to run."""
