"""Watch a user's own training loop: the :class:`Watcher` and its framework callbacks
(:mod:`.hf`, :mod:`.lightning`)."""

from phasewatch.watch.watcher import Watcher

__all__ = ["Watcher"]
