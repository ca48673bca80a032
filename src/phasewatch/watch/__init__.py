"""Watch a user's own training loop: the :class:`Watcher`, its :class:`WatchConfig`, and
its framework callbacks (:mod:`.hf`, :mod:`.lightning`)."""

from phasewatch.watch.config import WatchConfig
from phasewatch.watch.watcher import Watcher

__all__ = ["WatchConfig", "Watcher"]
