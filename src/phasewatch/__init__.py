"""phasewatch: reproduce, measure and forecast emergence in neural networks."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from phasewatch import Watcher`` without importing torch for ``import phasewatch``."""
    if name == "Watcher":
        from phasewatch.watch.watcher import Watcher

        return Watcher
    raise AttributeError(f"module 'phasewatch' has no attribute {name!r}")
