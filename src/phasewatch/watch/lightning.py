"""A Lightning ``Callback`` that runs a :class:`~phasewatch.watch.Watcher`.

::

    from phasewatch.watch.lightning import WatcherCallback
    trainer = lightning.Trainer(max_steps=1000, callbacks=[
        WatcherCallback("runs/pl", probe_batch=(x, y), loss_fn=cross_entropy, every=50)])
    trainer.fit(module, loader)      # writes runs/pl; `phasewatch report runs/pl`

The Watcher is created at ``on_train_start`` with the LightningModule and the planned
steps (``trainer.max_steps``, else ``trainer.estimated_stepping_batches``), steps after
every training batch (step = ``trainer.global_step``, the optimiser updates so far) with
the logged ``trainer.callback_metrics`` (``self.log("train/loss", ...)`` keys as they are)
every ``log_every_n_steps`` steps, and is closed at ``on_train_end``.
``loss_fn(module, batch)`` is required by the signals that use the probe batch (a
LightningModule's ``training_step`` cannot run outside the loop). Needs the optional
extra ``phasewatch[lightning]``.

Under a distributed strategy (DDP) every rank runs the callback: rank 0 writes the run and
the others follow (:mod:`phasewatch.watch.ranks`); the ``callback_metrics`` handed over
are averaged over the ranks (:func:`~phasewatch.watch.ranks.mean_across_ranks`), so
values logged without ``sync_dist=True`` (each rank's own loss) are the ranks' mean.
Under FSDP give ``replica=`` (:mod:`phasewatch.watch.sharded`). Tested under ``torchrun
--nproc_per_node 2`` (gloo, CPU; ``strategy="ddp"``) in tests/unit/test_watch_distributed.py.

Raises:
    MissingDependency: on import, if ``lightning`` is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phasewatch.errors import MissingDependency

try:
    from lightning.pytorch import Callback
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise MissingDependency(
        "phasewatch.watch.lightning needs lightning: pip install 'phasewatch[lightning]'"
    ) from e

from phasewatch.watch.probe import LossFn
from phasewatch.watch.ranks import mean_across_ranks
from phasewatch.watch.watcher import Watcher


def planned_steps(trainer: Any) -> int | None:
    """``trainer.max_steps`` if set (> 0), else the estimated stepping batches, else None."""
    if trainer.max_steps and trainer.max_steps > 0:
        return int(trainer.max_steps)
    est = trainer.estimated_stepping_batches
    return int(est) if est and est != float("inf") else None


class WatcherCallback(Callback):
    """Watch a Lightning ``Trainer.fit`` (see module docstring).

    Args:
        out: the run directory to create.
        probe_batch: a fixed batch on the module's device.
        loss_fn: ``loss_fn(module, batch)`` per-sample losses or their mean (nats).
        **kwargs: any other :class:`~phasewatch.watch.Watcher` argument: ``on_warning``,
            ``config=WatchConfig(...)`` or WatchConfig fields (``signals``, ``every``, ...).
    """

    def __init__(
        self,
        out: str | Path,
        *,
        probe_batch: Any = None,
        loss_fn: LossFn | None = None,
        **kwargs: Any,
    ) -> None:
        self.out, self.probe_batch, self.loss_fn, self.kwargs = out, probe_batch, loss_fn, kwargs
        self.watch: Watcher | None = None

    def on_train_start(self, trainer, pl_module):
        """Create the Watcher on ``pl_module``, planned steps :func:`planned_steps` (unless
        ``steps=`` was given).

        Raises:
            ConfigError: on an invalid Watcher argument (see :class:`~phasewatch.watch.Watcher`).
        """
        self.watch = Watcher(
            pl_module,
            out=self.out,
            steps=self.kwargs.pop("steps", None) or planned_steps(trainer),
            probe_batch=self.probe_batch,
            loss_fn=self.loss_fn,
            **self.kwargs,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        """Step the Watcher (step = ``trainer.global_step``) with the logged
        ``callback_metrics`` (averaged over ranks) every ``log_every_n_steps`` steps."""
        if self.watch is not None:
            step = int(trainer.global_step)
            due = step % max(1, trainer.log_every_n_steps) == 0  # fresh logs, not stale ones
            self.watch.step(step, mean_across_ranks(trainer.callback_metrics) if due else {})

    def on_train_end(self, trainer, pl_module):
        """Close the Watcher: the run directory is complete."""
        if self.watch is not None:
            self.watch.close()
