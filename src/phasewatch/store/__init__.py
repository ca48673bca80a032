"""Run directories: config, environment, metrics, checkpoints, events; atomic writes.

``RunDir``, ``create_run`` and ``open_run`` (:mod:`.run`) are imported on first use, so
that ``phasewatch.store.lock`` and friends load without pandas.
"""

__all__ = ["RunDir", "create_run", "open_run"]


def __getattr__(name: str):
    """``from phasewatch.store import RunDir`` without importing :mod:`.run` up front."""
    if name in __all__:
        from phasewatch.store import run

        return getattr(run, name)
    raise AttributeError(f"module 'phasewatch.store' has no attribute {name!r}")
